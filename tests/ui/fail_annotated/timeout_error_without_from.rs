use reliability::timeout;

#[derive(Debug)]
pub struct PlainError;

#[timeout(secs = 1)]
async fn f() -> Result<u32, PlainError> {
//~^ ERROR: `PlainError` cannot carry a `reliability::Error`
//~| LABEL: `#[timeout]`, `#[circuit_breaker]`, `#[rate_limit]` and `#[bulkhead]` return `Err(E::from(reliability::Error))`, so this error type needs `impl From<reliability::Error>`
//~| NOTE: with thiserror, add a variant: `#[error(transparent)] Reliability(#[from] reliability::Error)`; `anyhow::Error` works as is
//~| SPAN: Result
//~| ALONE
    Ok(1)
}

fn main() {}
