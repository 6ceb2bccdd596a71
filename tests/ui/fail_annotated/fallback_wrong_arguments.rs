use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

async fn cheaper(q: String, extra: u32) -> Result<usize, MyError> {
    Ok(q.len() + extra as usize)
}

#[fallback(cheaper)]
//~^ ERROR[E0593]: function is expected to take 1 argument, but it takes 2 arguments
//~| SPAN: cheaper
//~| ALONE
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
