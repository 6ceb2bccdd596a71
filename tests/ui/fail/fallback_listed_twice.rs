use reliability::fallback;

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

#[fallback(canned, canned)]
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
