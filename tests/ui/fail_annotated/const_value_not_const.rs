use reliability::{retry, timeout};

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
async fn from_a_function() -> Result<u32, MyError> {
    Ok(1)
}

const TIMEOUT: u32 = 30;

#[timeout(secs = TIMEOUT)]
//~^ ERROR: a duration given as a constant is a `std::time::Duration`, or a number of seconds as `u64` (or `f64` for fractions), not `u32`
//~| SPAN: TIMEOUT
async fn wrong_type() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
