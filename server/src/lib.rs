//! myna-server: the Myna v2 HTTP API (poem on tokio) over durable storage
//! (SQLite by default, PostgreSQL to scale out), thin around `myna-core`.
//!
//! A handler reads the request, asks core to parse and validate, asks the
//! commit writer or storage to commit, asks core to build the answer, and
//! hands it to [`answer`], the one place that makes HTTP responses. Modules:
//!
//! - [`routes`]: the endpoints, built by [`app`];
//! - [`answer`]: JSON / JSONP responses and problems;
//! - [`auth`]: API keys, Basic (argon2id), Bearer tokens, the access rules;
//! - [`request`]: query parameters, bodies (1 MiB), path uuids;
//! - [`cors`]: preflights and allowed origins;
//! - [`listen`]: the serve loop (hyper, HTTP/1.1): timeouts, the connection
//!   cap and eviction, the HTTP layer's problems;
//! - [`dashboard`]: the site owners' web pages (session cookie, no script);
//! - [`cache`]: experiments in memory, weights refreshed at most every 250 ms;
//! - [`commit`]: the writer task and its group commits;
//! - [`storage`]: the storage trait and its SQLite and PostgreSQL implementations;
//! - [`state`], [`clock`], [`accounts`], [`config`], [`serve`]: the rest.

pub mod accounts;
pub mod answer;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod commit;
pub mod config;
pub mod cors;
pub mod dashboard;
pub mod listen;
pub mod request;
pub mod routes;
pub mod serve;
pub mod state;
pub mod storage;

pub use routes::app;
pub use state::{AppState, Background, Options};
