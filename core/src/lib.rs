//! myna-core: every rule the Myna server and SDK must agree on.
//!
//! Pure logic: no I/O, no clock, no randomness source. Callers pass `now` (epoch
//! milliseconds), so every function here is deterministic. Modules by concept:
//!
//! - [`model`]: experiments, variants, visibility, access levels;
//! - [`account`]: login, token and API key wire forms;
//! - [`event`]: the record batch wire form, its parsing and validation;
//! - [`experiment`]: create and update bodies;
//! - [`read_form`]: the read form (complete, summary) and the search answer;
//! - [`search`]: search parameters, filtering and order;
//! - [`settings`]: settings paths and `settingsUpdates`;
//! - [`jsonp`]: callback validation and wrapping;
//! - [`problem`]: the problem form and its stable codes;
//! - [`timestamp`]: timestamp parsing and formatting;
//! - [`weights`]: Thompson-sampling weights.

pub mod account;
pub mod event;
pub mod experiment;
pub mod jsonp;
pub mod model;
pub mod problem;
pub mod read_form;
pub mod search;
pub mod settings;
pub mod timestamp;
pub mod weights;

pub use event::{Event, EventType, RecordBatch};
pub use model::{Access, Experiment, Variant, Visibility};
pub use problem::{Code, Message, Problem};
pub use read_form::ReadForm;
