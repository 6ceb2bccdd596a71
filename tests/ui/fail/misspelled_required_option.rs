// A misspelled required option is one error, at the misspelling: not also "needs a deadline".
use reliability::{bulkhead, hedge, rate_limit, timeout};

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[timeout(seconds = 30)]
async fn a() -> Result<(), MyError> {
    Ok(())
}

#[rate_limit(rps = 10)]
async fn b() -> Result<(), MyError> {
    Ok(())
}

#[bulkhead(max_concurrent = 4)]
async fn c() -> Result<(), MyError> {
    Ok(())
}

#[hedge(delay = "100ms")]
async fn d() -> Result<(), MyError> {
    Ok(())
}

fn main() {}
