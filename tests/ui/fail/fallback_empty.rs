use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[fallback]
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
