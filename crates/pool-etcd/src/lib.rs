//! `ferry-pool-etcd`: the pool's durable state in etcd, the IO shell around the
//! `ferry-pool` scheduler.
//!
//! - [`layout`]: the keys and their JSON records.
//! - [`store`]: reads, and writes as transactions (CAS on a cell's epoch, fenced by the
//!   controller's leader key).
//! - [`controller`]: election, the scheduling rounds, interrupted moves finished exactly once,
//!   the [`controller::MoveExecutor`] seam.
//! - [`agents`]: the executor that moves cells through the agents (make-before-break).
//! - [`local`]: a real single-node etcd on loopback for tests and the demo.

pub mod agents;
pub mod controller;
pub mod layout;
pub mod local;
pub mod store;

pub use agents::{AgentExecutor, AgentExecutorConfig};
pub use controller::{run_controller, ControllerConfig, DryRunLog, MoveExecutor};
pub use local::LocalEtcd;
pub use store::{Fence, PoolState, PoolStore};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("etcd: {0}")]
    Etcd(Box<etcd_client::Error>),
    #[error("record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("corrupt pool state: {0}")]
    Corrupt(String),
    #[error("no cell {0:?} in the pool")]
    NoSuchCell(String),
    #[error("bad name {0:?} (letters, digits, '-', '_', '.'; at most 64)")]
    BadName(String),
    #[error("this controller is no longer the leader")]
    LostLeadership,
    #[error("scheduler: {0}")]
    Pool(#[from] ferry_pool::PoolError),
    #[error("executor: {0}")]
    Executor(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the etcd binary is not installed (scripts/deps installs Debian's etcd-server)")]
    NoEtcd,
    #[error("etcd exited: {0}")]
    EtcdExited(String),
}

impl From<etcd_client::Error> for StoreError {
    fn from(e: etcd_client::Error) -> Self {
        StoreError::Etcd(Box::new(e))
    }
}
