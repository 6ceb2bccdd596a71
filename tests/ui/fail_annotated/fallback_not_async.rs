use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

fn canned(_q: String) -> usize {
    0
}

#[fallback(canned)]
//~^ ERROR: a fallback must be an `async fn`; calling this one gives `usize`, which is not a future
//~| LABEL: this fallback is not async
//~| NOTE: declare it `async fn` with the same arguments as the function it stands in for
//~| SPAN: canned
//~| ALONE
async fn f(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

fn main() {}
