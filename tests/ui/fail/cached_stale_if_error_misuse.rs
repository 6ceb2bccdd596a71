use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

// An entry turns stale when its ttl has passed: without one it never does.
#[cached(stale_if_error = "1h")]
async fn no_ttl(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

#[cached(ttl = 60, stale_if_error = 0)]
async fn zero(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

#[cached(ttl = 60, stale = "1h")]
async fn misspelled(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
