use reliability::{circuit_breaker, fallback, retry};

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

async fn canned(_q: String) -> usize {
    0
}

async fn cheaper(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

// The last fallback never fails, so nothing below the retry ever fails: the retry could never act.
#[retry(max = 3)]
#[fallback(cheaper, canned)]
//~^ ERROR: `#[retry]` above this `#[fallback]` can never retry: its last fallback returns a plain `usize`, so the call below the retry never fails
//~| LABEL: never fails
//~| NOTE: put `#[retry]` below `#[fallback]` (retry the primary, then fall back), or make the last fallback return `Result<usize, MyError>`
//~| SPAN: canned
//~| ALONE
async fn retried(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

// Likewise a breaker above it could never open.
#[circuit_breaker]
#[fallback(canned)]
//~^ ERROR: `#[circuit_breaker]` above this `#[fallback]` can never open: its last fallback returns a plain `usize`, so the call below the breaker never fails
//~| LABEL: never fails
//~| SPAN: canned
//~| ALONE
async fn guarded(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

// Fine: the retry below the fallback, or a `when` that lets some errors through to the retry.
#[fallback(canned)]
#[retry(max = 3)]
async fn retry_below(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

#[retry(max = 3)]
#[fallback(canned, when = |_: &MyError| false)]
async fn fallback_with_when(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {
    let _ = (retried, guarded, retry_below, fallback_with_when);
}
