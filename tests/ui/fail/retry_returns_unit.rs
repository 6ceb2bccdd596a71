use reliability::retry;

#[retry]
async fn f() {}

fn main() {}
