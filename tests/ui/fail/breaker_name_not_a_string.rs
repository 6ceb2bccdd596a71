use reliability::circuit_breaker;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[circuit_breaker(name = gpt4)]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
