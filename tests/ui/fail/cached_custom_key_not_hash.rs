use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[cached(key = q * 2.0)]
async fn f(q: f64) -> Result<f64, MyError> {
    Ok(q)
}

fn main() {}
