use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[cached(key = q * 2.0)]
//~^ ERROR: `f64` cannot be a cache key: it must be `Hash + Eq + Clone + Send + Sync + 'static`
//~| LABEL: the `#[cached]` key
//~| NOTE: choose the key with `#[cached(key = ...)]`, e.g. `key = query.to_string()`
//~| SPAN: q * 2.0
async fn f(q: f64) -> Result<f64, MyError> {
    Ok(q)
}

fn main() {}
