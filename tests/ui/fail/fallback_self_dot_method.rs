// Issue 17, item 4: `#[fallback(self.cheap)]`, as the compiler's help suggests for a free-function
// path, is one error that says to write `Self::cheap`.
use reliability::fallback;

#[derive(Debug)]
pub struct MyError;

pub struct Client;

impl Client {
    async fn cheap(&self, q: String) -> usize {
        q.len()
    }

    #[fallback(self.cheap)]
    pub async fn ask(&self, q: String) -> Result<usize, MyError> {
        Ok(q.len())
    }
}

fn main() {}
