//! The live web view of the testbed (`ferry web`, `ferry demo --web`): an axum HTTP server
//! with server-sent events showing the topology (servers, radios, primary and shadow), the
//! cell's state and Control, ping's last second, a scrolling chart of round-trip time and
//! losses with migrations marked, and the last migration's phases.
//!
//! [`model`] is the pure view and its update rules; [`hub`] owns the view on one thread and
//! publishes it; [`poll`] asks the real sources (link control, the agents); [`server`] is
//! the HTTP side. The page (`assets/`) is plain JavaScript and SVG served from the binary.

pub mod hub;
pub mod model;
pub mod poll;
pub mod server;

pub use hub::{Hub, Input};
pub use model::{PoolServerView, PoolView, View};
pub use poll::Targets;
pub use server::{router, WebError, WebServer, MAX_LIVE_CLIENTS};
