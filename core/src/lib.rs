//! myna-core: every rule the Myna server and SDK must agree on.
//!
//! Pure logic: no I/O, no clock, no randomness source. Callers pass `now` (epoch
//! milliseconds), so every function here is deterministic. Modules by concept:
//!
//! - [`model`]: experiments, variants, visibility, access levels;
//! - [`account`]: login, token and API key wire forms;
//! - [`decision`]: when an experiment is done (probability of being best,
//!   expected loss, the verdict) and whether its data is healthy (SRM against
//!   the weights served, and other checks), and the decision form;
//! - [`deployment`]: the deployment form (every published experiment of
//!   an account, for a page's one script tag);
//! - [`event`]: the record batch wire form, its parsing and validation;
//! - [`experiment`]: create and update bodies;
//! - [`limits`]: the limits on every stored input (settings depth and size,
//!   paths, variants, names, ids, no U+0000);
//! - [`read_form`]: the read form (complete, summary) and the search answer;
//! - [`search`]: search parameters, filtering and order;
//! - [`query`]: query parameters each given once (record, search, export);
//! - [`settings`]: settings paths and `settingsUpdates`;
//! - [`stats`]: conversion rates and their 95 % credible intervals;
//! - [`json`]: request bodies read strictly (a key twice refused, a byte
//!   order mark skipped, a number out of range located);
//! - [`jsonp`]: callback validation and wrapping;
//! - [`problem`]: the problem form and its stable codes;
//! - [`timestamp`]: timestamp parsing and formatting;
//! - [`weights`]: Thompson-sampling weights;
//! - [`webhook`]: webhook URLs, the events a change of decision makes,
//!   and the event form a delivery posts;
//! - [`wire`]: the wire codec both sides share (decimals, uuid text, JSON
//!   strings, percent-encoding, walking a parsed JSON value).
//!
//! The `std` feature (on by default; the server's build) holds all of it.
//! Without it the crate is `no_std` with `alloc` and holds what the browser
//! SDK compiles into its wasm: [`event::new_event`] and the event's wire form
//! (its JSON, the record body, the JSONP record query), [`wire`],
//! [`problem`]'s codes, messages and reader, and [`weights::choose`].

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod account;
#[cfg(feature = "std")]
pub mod decision;
#[cfg(feature = "std")]
pub mod deployment;
pub mod event;
#[cfg(feature = "std")]
pub mod experiment;
#[cfg(feature = "std")]
pub mod export;
#[cfg(feature = "std")]
pub mod json;
#[cfg(feature = "std")]
pub mod jsonp;
#[cfg(feature = "std")]
pub mod limits;
#[cfg(feature = "std")]
pub mod model;
pub mod problem;
#[cfg(feature = "std")]
pub mod query;
#[cfg(feature = "std")]
pub mod read_form;
#[cfg(feature = "std")]
pub mod search;
#[cfg(feature = "std")]
pub mod settings;
#[cfg(feature = "std")]
pub mod stats;
#[cfg(feature = "std")]
pub mod timestamp;
#[cfg(feature = "std")]
pub mod webhook;
pub mod weights;
pub mod wire;

#[cfg(feature = "std")]
pub use event::RecordBatch;
pub use event::{Event, EventType};
#[cfg(feature = "std")]
pub use model::{Access, Experiment, Variant, Visibility};
pub use problem::{BODY_PATH, Code, Message, Problem};
#[cfg(feature = "std")]
pub use read_form::ReadForm;
