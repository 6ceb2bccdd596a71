use reliability::{retry, timeout};

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[retry(max = 0, backoff = "fixd", jiter = "none")]
#[timeout(secs = -1)]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
