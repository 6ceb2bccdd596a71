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

    // A fallback of a method is called with the same receiver first: one error of ours at the
    // fallback, saying to take the receiver (rustc would only count the arguments).
    #[fallback(Self::canned)]
    //~^ ERROR[E0277]: a fallback of a method must take the receiver first, like the method it stands in for
    //~| LABEL: takes the method's arguments without the receiver
    //~| NOTE: declare it `async fn name(&self, ...)`
    //~| SPAN: Self
    //~| ALONE
    async fn ask(&self, q: String) -> Result<usize, MyError> {
        Ok(q.len())
    }
}

fn main() {
    let _ = Client.ask(String::new());
}
