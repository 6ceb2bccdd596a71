// An annotated function that is never used is reported by `dead_code`, as it would be without the
// attributes: the expansion keeps the user's spans.
#![deny(dead_code)]

use reliability::{retry, timeout};

#[retry(max = 2)]
#[timeout(secs = 1)]
async fn never_called() -> Result<(), reliability::Error> {
    Ok(())
}

fn main() {}
