use reliability::retry;

#[retry]
async fn f() -> String {
    String::new()
}

fn main() {}
