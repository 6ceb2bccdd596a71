use reliability::retry;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[retry(multiplier = 1.0)]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
