use reliability::{bulkhead, rate_limit};

#[rate_limit(rate = 0)]
async fn no_quota() -> Result<(), reliability::Error> {
    Ok(())
}

#[rate_limit(rate = 10, burst = 0)]
async fn no_burst() -> Result<(), reliability::Error> {
    Ok(())
}

#[rate_limit(rate = 10, permits_per_second = 5)]
async fn unknown_option() -> Result<(), reliability::Error> {
    Ok(())
}

#[bulkhead(max = 0)]
async fn no_slot() -> Result<(), reliability::Error> {
    Ok(())
}

#[bulkhead(max = 4, wait = "1s")]
async fn wait_without_queue() -> Result<(), reliability::Error> {
    Ok(())
}

fn main() {}
