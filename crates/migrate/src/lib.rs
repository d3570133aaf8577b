//! Ferry's migration core, sans-IO: validated state that moves ([`control`]), the agent wire
//! protocol ([`protocol`], [`auth`]), the thesis' operator sequences ([`console`]) and
//! destination handlers ([`agent`]), Ferry's make-before-break cutover ([`mbb`]), all as
//! state machines on one engine ([`machine`]) that record a [`timeline`].
//!
//! No sockets, threads, clocks or processes: the IO shells (`ferry agent`, `ferry ctl`)
//! execute the [`machine::Action`]s and feed back [`machine::Event`]s with the time.

pub mod agent;
pub mod auth;
pub mod console;
pub mod control;
pub mod machine;
pub mod mbb;
pub mod protocol;
pub mod timeline;

pub use agent::{Agent, AgentAction, AgentConfig};
pub use console::{ConsoleCommand, LegacyConfig};
pub use control::{Control, Route, RouteList, ValidationError, WarmStart};
pub use machine::{
    Action, Event, Level, LocalOp, LocalValue, Millis, Outcome, Peer, RadioClock, RadioOp,
    RadioValue, Report, Sequence, Timeouts,
};
pub use mbb::MbbConfig;
pub use protocol::{ErrorKind, HostStatus, ModemMode, ModemStatus, Reply, Request};
pub use timeline::{Phase, Timeline};
