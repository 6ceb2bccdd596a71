use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

async fn cheaper(q: String) -> Result<String, MyError> {
    Ok(q)
}

#[fallback(cheaper)]
//~^ ERROR: a fallback must return `Result<usize, MyError>` or `usize`, but this one returns `Result<String, MyError>`
//~| LABEL: returns `Result<String, MyError>`
//~| SPAN: cheaper
//~| ALONE
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
