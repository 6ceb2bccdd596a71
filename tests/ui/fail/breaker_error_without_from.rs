use reliability::circuit_breaker;

#[circuit_breaker]
async fn f() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {}
