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

#[fallback(canned, on = |_e: &MyError| true)]
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
