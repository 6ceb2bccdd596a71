//! The LLM gateway behind `cargo run --example llm_gateway`: an embedded, flaky OpenAI-compatible
//! service, a real HTTP client, and the reliability ladder measured against it; then the same
//! service with a quota per API key, and four ways for the client to live under it.

pub mod cli;
pub mod client;
pub mod faults;
pub mod ladder;
pub mod load;
pub mod metrics;
pub mod plot;
pub mod quota;
pub mod replicas;
pub mod report;
pub mod server;
pub mod stack;
