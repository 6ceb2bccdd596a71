//! Code shared by the examples.

pub mod axum_service;
pub mod gateway;
