use std::time::Duration;

use reliability::{cached, circuit_breaker, hedge, rate_limit, retry, timeout};

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

const MAX: u32 = 0;
const TTL: Duration = Duration::ZERO;
const DEADLINE_SECS: u64 = 0;
const HEDGES: u32 = 6;
const DELAY: Duration = Duration::from_secs(60);
const CALLS: u32 = 10;
const QUOTA: u32 = 1_000;
const BUDGET: f64 = 1.5;

#[retry(max = MAX)]
//~^ ERROR: #[retry]: `max` counts every attempt, the first included, so it must be at least 1
//~| SPAN: MAX
//~| ALONE
async fn attempts() -> Result<u32, MyError> {
    Ok(1)
}

#[cached(ttl = TTL)]
//~^ ERROR: #[cached]: `ttl` must be longer than zero
//~| SPAN: TTL
//~| ALONE
async fn cached_zero() -> u32 {
    1
}

#[timeout(secs = DEADLINE_SECS)]
//~^ ERROR: #[timeout]: the deadline must be longer than zero
//~| SPAN: DEADLINE_SECS
//~| ALONE
async fn no_time() -> Result<u32, MyError> {
    Ok(1)
}

#[timeout(secs = TTL)]
//~^ ERROR: #[timeout]: the deadline must be longer than zero
//~| SPAN: TTL
//~| ALONE
async fn no_duration() -> Result<u32, MyError> {
    Ok(1)
}

#[hedge(after = "10ms", max = HEDGES)]
//~^ ERROR: #[hedge]: `max` is the extra attempts a hedge may start: 1 to 5
//~| SPAN: HEDGES
//~| ALONE
async fn too_many() -> Result<u32, MyError> {
    Ok(1)
}

#[retry(delay = DELAY)]
//~^ ERROR: #[retry]: `delay` is longer than the default `max_delay` (30 s); add a `max_delay` at least as long
//~| SPAN: DELAY
//~| ALONE
async fn long_delay() -> Result<u32, MyError> {
    Ok(1)
}

#[circuit_breaker(window = CALLS, min_calls = 20)]
//~^ ERROR: #[circuit_breaker]: `min_calls` is above the window's size
//~| SPAN: 20
//~| ALONE
async fn window_too_small() -> Result<u32, MyError> {
    Ok(1)
}

#[rate_limit(rate = QUOTA, per = "100ns")]
//~^ ERROR: #[rate_limit]: `per` is too short for this `rate`: one permit must take at least a nanosecond
//~| SPAN: QUOTA
//~| ALONE
async fn quota_too_fast() -> Result<u32, MyError> {
    Ok(1)
}

#[retry(budget = BUDGET)]
//~^ ERROR: #[retry]: `budget` is the share of calls that retries may add: above 0 and at most 1
//~| SPAN: BUDGET
//~| ALONE
async fn budget_above_one() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
