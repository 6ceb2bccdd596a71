use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

pub struct Answer(String);

#[cached]
async fn f(q: String) -> Result<Answer, MyError> {
    Ok(Answer(q))
}

fn main() {}
