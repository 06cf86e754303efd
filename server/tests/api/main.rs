//! The HTTP API through poem's `TestClient`: every endpoint, every problem
//! case, and the access matrix (no credentials / API key / another account /
//! owner) on every endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access;
mod browsers;
#[path = "../common/mod.rs"]
mod common;
mod decisions;
mod deployment;
mod experiments;
mod export;
mod harness;
mod problems;
mod records;
mod users;
mod webhooks;
