use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[derive(Clone, PartialEq)]
pub struct Query(f64);

// The key is the tuple `(Query,)`, so no message of ours applies: rustc reports the missing
// `Hash` and `Eq` of `Query` in its own words, at the attribute.
#[cached]
//~^ ERROR[E0277]
//~| SPAN: #[cached]
async fn f(q: Query) -> Result<f64, MyError> {
    Ok(q.0)
}

fn main() {}
