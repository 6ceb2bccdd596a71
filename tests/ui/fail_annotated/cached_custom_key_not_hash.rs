use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[cached(key = q * 2.0)]
//~^ ERROR[E0277]: `f64` cannot be part of the cache key: it is not `Eq`
//~| LABEL: part of the `#[cached]` key
//~| NOTE: choose the key with `#[cached(key = ...)]`, e.g. `key = query.to_string()` (a float: `x.to_bits()`)
//~| SPAN: q
//~| ALONE
async fn f(q: f64) -> Result<f64, MyError> {
    Ok(q)
}

fn main() {}
