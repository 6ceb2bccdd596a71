// Issue 17, item 6: a `when` function taking the error by value is one error, at the function's
// name, with rustc's help to borrow the argument; not again at the retry loop's or the hedge's
// internals.
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
//~^ ERROR[E0631]: type mismatch in function arguments
//~| SPAN: is_transient
//~| NOTE: required for `fn(MyError) -> bool {is_transient}` to implement `reliability::__private::ErrorPredicate<MyError>`
//~| ALONE
async fn f() -> Result<u32, MyError> {
    Ok(1)
}

#[hedge(after = "10ms", when = is_transient)]
//~^ ERROR[E0631]: type mismatch in function arguments
//~| SPAN: is_transient
//~| ALONE
async fn g() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {}
