// Issue 17, item 6: a `when` function taking the error by value. The compiler reports the
// mismatch at our `predicate` (which shapes `when` as `Fn(&E) -> bool`), and no longer again at
// the retry loop's or the hedge's internals.
use reliability::{hedge, retry};

#[derive(Debug)]
pub struct MyError {
    transient: bool,
}

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError { transient: false }
    }
}

fn is_transient(e: MyError) -> bool {
    e.transient
}

#[retry(max = 3, when = is_transient)]
//~^ ERROR[E0631]
//~| NOTE: required by a bound in `reliability::__private::predicate`
async fn f() -> Result<u32, MyError> {
    //~^ ERROR[E0631]
    Ok(1)
}

#[hedge(after = "10ms", when = is_transient)]
//~^ ERROR[E0631]
//~| NOTE: required by a bound in `reliability::__private::predicate`
async fn g() -> Result<u32, MyError> {
    //~^ ERROR[E0631]
    Ok(1)
}

fn main() {}
