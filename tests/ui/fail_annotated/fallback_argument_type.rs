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
    async fn cheap(&self, q: &str) -> Result<usize, MyError> {
        Ok(q.len())
    }

    // One error, at the fallback, showing both signatures (not a suggestion to edit `ask`'s).
    #[fallback(Self::cheap)]
    //~^ ERROR[E0631]: type mismatch in function arguments
    //~| NOTE: expected function signature `fn(&Client, String) -> _`
    //~| ALONE
    async fn ask(&self, q: String) -> Result<usize, MyError> {
        Ok(q.len())
    }
}

fn main() {
    let _ = Client.ask(String::new());
}
