use reliability::circuit_breaker;

/// An error type that cannot hold a `reliability::Error`.
#[derive(Debug)]
pub enum ApiError {
    Status(u16),
}

#[circuit_breaker]
async fn f() -> Result<u32, ApiError> {
//~^ ERROR: `ApiError` cannot carry a `reliability::Error`
//~| LABEL: `#[timeout]`, `#[circuit_breaker]`, `#[rate_limit]` and `#[bulkhead]` return `Err(E::from(reliability::Error))`, so this error type needs `impl From<reliability::Error>`
//~| NOTE: with thiserror, add a variant: `#[error(transparent)] Reliability(#[from] reliability::Error)`; `anyhow::Error` works as is
//~| SPAN: Result
//~| ALONE
    Err(ApiError::Status(503))
}

fn main() {}
