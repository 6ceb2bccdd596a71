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

async fn cheaper(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

#[fallback(canned, cheaper)]
//~^ ERROR: a fallback before the last must return `Result<usize, MyError>`, but this one returns `usize`
//~| LABEL: returns `usize`
//~| NOTE: a fallback returning a plain `usize` never fails, so it must come last in `#[fallback(...)]`
//~| SPAN: canned
//~| ALONE
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
