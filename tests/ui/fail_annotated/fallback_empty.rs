use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[fallback]
//~^ ERROR: `#[fallback]` needs at least one function to fall back to: `#[fallback(cheaper_model, canned_answer)]`
//~| SPAN: #[fallback]
//~| ALONE
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
