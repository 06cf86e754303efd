//! myna-server: the Myna v2 HTTP API (poem on tokio) over durable storage
//! (SQLite by default, PostgreSQL to scale out), thin around `myna-core`.
//!
//! An API handler's extractors read the caller and the answer's format; it
//! converts the rest of the request (core parses and validates), calls
//! [`service`], and returns an [`answer::Answer`]; [`answer`] is the one
//! place that makes HTTP responses. Modules:
//!
//! - [`routes`]: the endpoints and their extractors, built by [`app`];
//! - [`dashboard`]: the site owners' web pages (session cookie, no script);
//! - [`service`]: what both do once a request is read (experiments, API
//!   keys, accounts, webhooks), knowing nothing of HTTP;
//! - [`answer`]: JSON / JSONP responses and problems;
//! - [`access`]: request ids and the access log;
//! - [`metrics`]: Prometheus metrics and their listener (`--metrics-listen`);
//! - [`auth`]: API keys, Basic (argon2id), Bearer tokens, the access rules;
//! - [`request`]: query parameters, bodies (1 MiB), path uuids;
//! - [`cors`]: preflights and allowed origins;
//! - [`listen`]: the serve loop (hyper, HTTP/1.1): timeouts, the connection
//!   cap and eviction, the HTTP layer's problems;
//! - [`outbound`]: the HTTP client of webhook deliveries;
//! - [`cache`]: experiments in memory, weights refreshed at most every 250 ms;
//! - [`commit`]: the commit writer (a thread of its own on SQLite, a task on
//!   PostgreSQL) and its group commits;
//! - [`storage`]: the storage trait and its SQLite and PostgreSQL implementations;
//! - [`state`], [`clock`], [`config`], [`serve`]: the rest.

pub mod access;
pub mod answer;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod commands;
pub mod commit;
pub mod config;
pub mod cors;
pub mod dashboard;
pub mod health;
pub mod listen;
pub mod log_queue;
pub mod metrics;
pub mod outbound;
pub mod proxy;
pub mod request;
pub mod routes;
pub mod sdk;
pub mod serve;
pub mod service;
pub mod state;
pub mod storage;

pub use routes::app;
pub use service::accounts;
pub use state::{AppState, Background, Options};
