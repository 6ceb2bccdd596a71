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
//~^ ERROR: `Prompt` must be `Clone`: `#[retry]` and `#[fallback]` hand each argument to more than one call
//~| LABEL: cloned for every attempt and every fallback
//~| NOTE: derive or implement `Clone`, or take the argument by reference
//~| SPAN: #[retry]
//~| ALONE
async fn f(prompt: Prompt) -> Result<usize, MyError> {
    Ok(prompt.0.len())
}

fn main() {}
