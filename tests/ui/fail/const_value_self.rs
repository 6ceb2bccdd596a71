use reliability::retry;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

pub struct Client;

impl Client {
    const MAX: u32 = 3;

    #[retry(max = Self::MAX)]
    pub async fn call(&self) -> Result<u32, MyError> {
        Ok(Self::MAX)
    }
}

fn main() {}
