use reliability::circuit_breaker;

/// An error type that cannot hold a `reliability::Error`.
#[derive(Debug)]
pub enum ApiError {
    Status(u16),
}

#[circuit_breaker]
async fn f() -> Result<u32, ApiError> {
    Err(ApiError::Status(503))
}

fn main() {}
