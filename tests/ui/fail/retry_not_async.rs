use reliability::retry;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[retry]
fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
