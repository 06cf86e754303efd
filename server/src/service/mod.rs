//! The service layer: what the API's endpoints (`routes`) and the
//! dashboard's pages do once a request is read and its caller known, so
//! both do it the same way. It calls storage, the cache, the commit writer
//! and core, and knows nothing of HTTP: no request, no response, no page.
//!
//! - [`decisions`]: an experiment's decision (verdict and health);
//! - [`deployments`]: an API key's deployment (every published experiment
//!   of its account, for pages);
//! - [`experiments`]: reading (which experiments a caller sees), searching,
//!   creating, updating, deleting, resetting, recording;
//! - [`keys`]: API keys;
//! - [`accounts`]: account creation, the first start, login and logout;
//! - [`webhooks`]: webhooks and the watcher of decisions;
//! - [`sender`]: the sender of webhook deliveries.

pub mod accounts;
pub mod decisions;
pub mod deployments;
pub mod experiments;
pub mod keys;
pub mod sender;
pub mod webhooks;
