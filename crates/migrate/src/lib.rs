//! Ferry's migration core, sans-IO: validated state that moves ([`control`]), the agent wire
//! protocol ([`protocol`], [`auth`]), the thesis' operator sequences ([`console`]) and
//! destination handlers ([`agent`]), Ferry's make-before-break cutover ([`mbb`]) and the
//! agents' [`lease`] on what an interrupted migration leaves, as
//! state machines on one engine ([`machine`]) that record a [`timeline`].
//!
//! No sockets, threads, clocks or processes: the IO shells (`ferry agent`, `ferry ctl`)
//! execute the [`machine::Action`]s and feed back [`machine::Event`]s with the time.
//!
//! ```
//! use ferry_migrate::{Action, ConsoleCommand, Event, LegacyConfig, LocalValue};
//!
//! // The operator typed `DS`; every local step succeeds at once.
//! let mut seq = ConsoleCommand::parse("DS").start(&LegacyConfig::default(), 0).unwrap();
//! let mut now = 0;
//! let outcome = loop {
//!     match seq.poll_action() {
//!         Some(Action::Local(_op)) => {
//!             now += 3; // ... perform `_op`, then report its result:
//!             seq.handle(now, Event::LocalDone(Ok(LocalValue::Unit)));
//!         }
//!         Some(Action::Report(r)) => println!("{}", r.text),
//!         Some(Action::Done(o)) => break o,
//!         Some(_) => unreachable!("DS only takes local steps"),
//!         None => seq.handle(seq.poll_timeout().unwrap(), Event::Tick),
//!     }
//! };
//! assert!(outcome.ok);
//! println!("{}", outcome.timeline.render_table());
//! ```

pub mod agent;
pub mod auth;
pub mod console;
pub mod control;
pub mod lease;
pub mod machine;
pub mod mbb;
pub mod protect;
pub mod protocol;
pub mod reprotect;
pub mod timeline;

pub use agent::{Agent, AgentAction, AgentConfig};
pub use console::{ConsoleCommand, LegacyConfig};
pub use control::{Control, Route, RouteList, ValidationError, WarmStart};
pub use machine::{
    Action, Event, Level, LocalOp, LocalValue, Millis, Outcome, Pause, PausePoint, Peer,
    RadioClock, RadioOp, RadioValue, Report, Sequence, Timeouts, PAUSE_PHASE,
};
pub use mbb::MbbConfig;
pub use protocol::{ErrorKind, ForwardToken, HostStatus, ModemMode, ModemStatus, Reply, Request};
pub use timeline::{Phase, Timeline};
