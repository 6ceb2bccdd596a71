use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[cached(max_size = 0)]
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
