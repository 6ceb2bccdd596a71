use reliability::timeout;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[timeout]
//~^ ERROR: `#[timeout]` needs a deadline: `#[timeout(secs = 30)]`, `#[timeout(secs = "1m30s")]` or `#[timeout(ms = 250)]`
//~| SPAN: #[timeout]
//~| ALONE
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
