use reliability::{rate_limit, timeout};

// The timeout above always ends the wait for a permit first.
#[timeout(secs = 1)]
#[rate_limit(rate = 1, wait = "2s")]
async fn never_gets_its_wait() -> Result<(), reliability::Error> {
    Ok(())
}

fn main() {}
