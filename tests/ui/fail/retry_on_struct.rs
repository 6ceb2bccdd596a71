use reliability::retry;

#[retry]
pub struct Client;

fn main() {}
