// Issue 17, item 7: a key part that cannot be a key is one error, at that argument (or element of
// `key = (..)`), naming the missing trait and what to write instead.
use std::rc::Rc;

use reliability::cached;

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Region(String);

#[cached]
async fn not_hash(q: String, region: Region) -> Result<usize, MyError> {
    //~^ ERROR[E0277]: `Region` cannot be part of the cache key: it is not `Hash`
    //~| SPAN: Region
    //~| NOTE: choose the key with `#[cached(key = ...)]`
    //~| ALONE
    Ok(q.len() + region.0.len())
}

#[cached]
async fn not_shared(q: Rc<str>) -> Result<usize, MyError> {
    //~^ ERROR[E0277]: `Rc<str>` cannot be part of the cache key: it is not `Send`
    //~| SPAN: Rc
    //~| ALONE
    Ok(q.len())
}

#[cached(key = (q.clone(), temperature))]
//~^ ERROR[E0277]: `f32` cannot be part of the cache key: it is not `Eq`
//~| SPAN: temperature
//~| NOTE: (a float: `x.to_bits()`)
//~| ALONE
async fn float_in_key(q: String, temperature: f32) -> Result<usize, MyError> {
    Ok(q.len() + temperature as usize)
}

#[cached]
async fn into_string(q: impl Into<String>) -> Result<usize, MyError> {
    //~^ ERROR: `#[cached]` keys on every argument, and `q`, an `impl Trait` argument, cannot be part of the key
    //~| SPAN: impl
    //~| ALONE
    Ok(q.into().len())
}

fn main() {}
