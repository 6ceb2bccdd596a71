use reliability::timeout;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[timeout(secs = 1, ms = 500)]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
