use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[fallback(cheaper_model)]
//~^ ERROR[E0425]
//~| SPAN: cheaper_model
//~| ALONE
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
