use reliability::retry;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[retry]
async fn f() -> Result<impl std::fmt::Display, MyError> {
    Ok(1)
}

fn main() {}
