use reliability::{retry, timeout};

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[retry(max = 3)]
#[timeout(secs = 1)]
#[retry(max = 5)]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
