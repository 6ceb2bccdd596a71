use reliability::timeout;

#[derive(Debug)]
pub struct PlainError;

#[timeout(secs = 1)]
async fn f() -> Result<u32, PlainError> {
    Ok(1)
}

fn main() {}
