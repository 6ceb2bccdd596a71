use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

pub struct Client;

impl Client {
    async fn canned(q: String) -> Result<usize, MyError> {
        Ok(q.len())
    }

    // A fallback of a method is called with the same receiver first: one error at the fallback,
    // whose note shows the receiver expected first.
    #[fallback(Self::canned)]
    //~^ ERROR[E0593]: function is expected to take 2 arguments, but it takes 1 argument
    //~| NOTE: to implement `reliability::__private::FallbackFn<(&Client, String)>`
    //~| ALONE
    async fn ask(&self, q: String) -> Result<usize, MyError> {
        Ok(q.len())
    }
}

fn main() {
    let _ = Client.ask(String::new());
}
