//! `ferry-pool`: the pool scheduler, without IO.
//!
//! Servers (cores, boot time, idle and busy power) host cells (modem tasks) whose CPU
//! demand follows a tidal day; a policy (`static`, `spread`, `consolidate`) turns the demand
//! into make-before-break moves to warm servers and power actions. Time and demand are passed
//! in; the simulator (`ferry pool simulate`) and the etcd-backed controller
//! (`ferry-pool-etcd`) are the IO shells.
//!
//! - [`cost`]: CPU per subframe of a cell from the measured PHY benches.
//! - [`profile`]: office / residential / mixed daily activity, compressed days.
//! - [`scheduler`]: the pool, the policies, decisions.
//! - [`ledger`]: server-hours and energy against static; the snapshot views read.

pub mod cost;
pub mod ledger;
pub mod profile;
pub mod scheduler;
pub mod sim;

pub use cost::{cell_cores, cell_cpu_us, Bandwidth, Modulation};
pub use ledger::{CellView, DayLedger, PoolSnapshot, ServerView};
pub use profile::{AreaKind, CompressedDay};
pub use scheduler::{
    Cell, CellDemand, CellId, Decision, Move, Policy, Pool, PoolError, Power, PowerAction,
    SchedulerConfig, Server, ServerId, ServerSpec,
};
pub use sim::CellTraffic;
