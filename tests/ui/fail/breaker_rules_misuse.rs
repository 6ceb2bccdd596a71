use reliability::circuit_breaker;

#[circuit_breaker(failure_threshold = 5, failure_rate = 0.5)]
async fn two_rules() -> Result<(), reliability::Error> {
    Ok(())
}

#[circuit_breaker(window = 20, min_calls = 50)]
async fn min_calls_above_the_window() -> Result<(), reliability::Error> {
    Ok(())
}

#[circuit_breaker(failure_rate = 0)]
async fn zero_rate() -> Result<(), reliability::Error> {
    Ok(())
}

#[circuit_breaker(failure_rate = 0.5, slow_call_rate = 0.5)]
async fn slow_rate_without_slow_call() -> Result<(), reliability::Error> {
    Ok(())
}

fn main() {}
