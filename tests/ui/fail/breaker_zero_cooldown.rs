use reliability::circuit_breaker;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[circuit_breaker(cooldown = "0s")]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
