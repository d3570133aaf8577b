//! `ferry agent`, the per-server daemon (thesis 3.5): answers the destination commands over
//! authenticated ZeroMQ ([`server`]), supervises the modem as a child process ([`modem`]),
//! runs the Control / route collector ([`collector`]) and performs every local step on the
//! host ([`host`]): eth3 and tun addresses through netlink, the radio link as the USRP.
//! [`load`] measures a modem's CPU for the pool.
//! The decisions (step order, rollbacks, replies) are the pure `ferry_migrate::Agent`.

pub mod collector;
pub mod deathwatch;
pub mod garp;
pub mod host;
pub mod load;
pub mod modem;
pub mod server;

pub use host::{Addressing, HostConfig, HostExec, RadioAccess, StepError};
pub use modem::{ModemCommand, ModemProcess, ModemStart};
pub use server::{spawn, AgentError, AgentServer, AgentSettings, ServeSummary};
