use reliability::{circuit_breaker, retry, timeout};

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

fn attempts() -> u32 {
    3
}

#[retry(max = attempts())]
//~^ ERROR[E0015]
//~| SPAN: attempts()
//~| ALONE
async fn from_a_function() -> Result<u32, MyError> {
    Ok(1)
}

const TIMEOUT: u32 = 30;

#[timeout(secs = TIMEOUT)]
//~^ ERROR: a duration given as a constant is a `std::time::Duration`, or a number of seconds as `u64` (or `f64` for fractions), not `u32`
//~| SPAN: TIMEOUT
//~| ALONE
async fn wrong_type() -> Result<u32, MyError> {
    Ok(1)
}

const WINDOW: u64 = 100;

#[circuit_breaker(failure_rate = 0.5, window = WINDOW)]
//~^ ERROR: a window given as a constant is a number of calls as `u32`, or a `std::time::Duration`, not `u64`
//~| SPAN: WINDOW
//~| ALONE
async fn wrong_window_type() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
