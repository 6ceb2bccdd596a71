use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

pub struct Client {
    id: u64,
}

impl Client {
    #[cached(key = (self.id, q))]
    async fn ask(&self, q: &str) -> Result<usize, MyError> {
        Ok(q.len())
    }
}

fn main() {}
