use reliability::circuit_breaker;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[circuit_breaker(failure_threshold = 0, success_threshold = 0)]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
