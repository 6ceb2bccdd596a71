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
//~^ ERROR: `Answer` cannot be cached: it must be `Clone + Send + Sync + 'static`
//~| LABEL: the value `#[cached]` stores
//~| NOTE: wrap it in `Arc` to share it without `Clone`
//~| SPAN: #[cached]
//~| ALONE
async fn f(q: String) -> Result<Answer, MyError> {
    Ok(Answer(q))
}

#[cached]
//~^ ERROR: `Answer` cannot be cached: it must be `Clone + Send + Sync + 'static`
//~| ALONE
async fn plain(q: String) -> Answer {
    Answer(q)
}

fn main() {}
