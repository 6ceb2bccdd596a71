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

// Every argument is a part of the key, checked on its own: one error at the argument's type,
// naming the first trait it lacks.
#[cached]
async fn f(q: Query) -> Result<f64, MyError> {
    //~^ ERROR[E0277]: `Query` cannot be part of the cache key: it is not `Eq`
    //~| LABEL: part of the `#[cached]` key
    //~| NOTE: a cache key must be `Hash + Eq + Clone + Send + Sync + 'static`
    //~| SPAN: Query
    //~| ALONE
    Ok(q.0)
}

fn main() {}
