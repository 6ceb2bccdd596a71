use reliability::retry;

#[retry]
async fn f() -> (u32, u32) {
    (1, 2)
}

fn main() {}
