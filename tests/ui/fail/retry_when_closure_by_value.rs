// Issue 17, item 6: `when` takes the error by reference; a closure taking it by value is one
// error of ours, which says so, instead of the compiler's mismatches.
use reliability::{circuit_breaker, retry};

#[derive(Debug)]
pub struct MyError {
    transient: bool,
}

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError { transient: false }
    }
}

#[retry(max = 3, when = |e: MyError| e.transient)]
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

#[circuit_breaker(when = |e: MyError| !e.transient)]
async fn g() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
