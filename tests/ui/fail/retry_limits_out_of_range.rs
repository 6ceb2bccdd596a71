use reliability::retry;

#[retry(budget = 1.5)]
async fn budget_above_one() -> Result<(), reliability::Error> {
    Ok(())
}

#[retry(budget = 0)]
async fn budget_zero() -> Result<(), reliability::Error> {
    Ok(())
}

#[retry(delay = "2s", deadline = "1s")]
async fn deadline_shorter_than_delay() -> Result<(), reliability::Error> {
    Ok(())
}

#[retry(deadline = 0)]
async fn deadline_zero() -> Result<(), reliability::Error> {
    Ok(())
}

fn main() {}
