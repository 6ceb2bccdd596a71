use reliability::retry;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

pub struct Prompt(String);

#[retry]
async fn f(prompt: Prompt) -> Result<usize, MyError> {
    Ok(prompt.0.len())
}

fn main() {}
