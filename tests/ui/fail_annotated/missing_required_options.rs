use reliability::{bulkhead, hedge, rate_limit};

#[rate_limit(per = "1s")]
//~^ ERROR: `#[rate_limit]` needs a quota: `#[rate_limit(rate = 500, per = "1m")]` (permits per period)
//~| SPAN: #[rate_limit(per = "1s")]
//~| ALONE
async fn rate_missing() -> Result<(), reliability::Error> {
    Ok(())
}

#[bulkhead(queue = 2)]
//~^ ERROR: `#[bulkhead]` needs a bound: `#[bulkhead(max = 8)]` (calls running at once)
//~| SPAN: #[bulkhead(queue = 2)]
//~| ALONE
async fn max_missing() -> Result<(), reliability::Error> {
    Ok(())
}

#[hedge(max = 2)]
//~^ ERROR: `#[hedge]` needs `after`: a delay (`after = "200ms"`) or a percentile of recent latencies (`after = "p95"`)
//~| SPAN: #[hedge(max = 2)]
//~| ALONE
async fn after_missing() -> Result<(), reliability::Error> {
    Ok(())
}

fn main() {}
