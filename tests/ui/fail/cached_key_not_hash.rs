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

#[cached]
async fn f(q: Query) -> Result<f64, MyError> {
    Ok(q.0)
}

fn main() {}
