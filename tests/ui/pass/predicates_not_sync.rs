#![deny(warnings)]
//! `when` and `retry_after` functions need only be `Fn(&E)`: one that borrows state that is not
//! `Sync` (a `Cell` of the receiver) compiles, for every attribute that takes one; the future is
//! then not `Send`, as the same code without the attributes would be.

use std::cell::Cell;
use std::time::Duration;

use reliability::{circuit_breaker, fallback, hedge, retry};

#[derive(Debug)]
pub struct MyError {
    transient: bool,
}

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError { transient: false }
    }
}

pub struct Client {
    retry_all: Cell<bool>,
    wait: Cell<Option<Duration>>,
}

impl Client {
    #[retry(max = 2, when = |e| self.retry_all.get() || e.transient, retry_after = |_| self.wait.get())]
    pub async fn ask(&self) -> Result<u32, MyError> {
        Ok(1)
    }

    #[circuit_breaker(name = "pass-not-sync", when = |e| !self.retry_all.get() && !e.transient)]
    pub async fn guarded(&self) -> Result<u32, MyError> {
        Ok(2)
    }

    #[hedge(after = "10ms", when = |e| self.retry_all.get() || e.transient)]
    pub async fn hedged(&self) -> Result<u32, MyError> {
        Ok(3)
    }

    async fn spare(&self) -> Result<u32, MyError> {
        Ok(0)
    }

    #[fallback(Self::spare, when = |e| self.retry_all.get() || e.transient)]
    pub async fn degraded(&self) -> Result<u32, MyError> {
        Ok(4)
    }
}

fn main() {
    let client = Client {
        retry_all: Cell::new(false),
        wait: Cell::new(None),
    };
    let _ = (client.ask(), client.guarded(), client.hedged(), client.degraded());
}
