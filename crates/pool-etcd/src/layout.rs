//! The pool's keys in etcd and the JSON records under them.
//!
//! ```text
//! /ferry/pool/servers/<server>   ServerRecord, under the registrant's lease (gone when it dies)
//! /ferry/pool/power/<server>     Power the controller decided (off, booting, on, draining)
//! /ferry/pool/drain/<server>     "1": the operator asked for a drain
//! /ferry/pool/cells/<cell>       CellRecord: desired and actual server, epoch, demand
//! /ferry/pool/epochs/<cell>      the cell's epoch, decimal: every move is a transaction that
//!                                compares it and bumps it (compare-and-swap)
//! /ferry/pool/policy             "static" | "spread" | "consolidate"
//! /ferry/pool/snapshot           ferry_pool::PoolSnapshot the leader writes every round (views)
//! /ferry/pool/election/...       etcd's election API (v3election): the controller's leader key
//! ```

use ferry_pool::Power;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const ROOT: &str = "/ferry/pool/";
pub const SERVERS: &str = "/ferry/pool/servers/";
pub const POWER: &str = "/ferry/pool/power/";
pub const DRAIN: &str = "/ferry/pool/drain/";
pub const CELLS: &str = "/ferry/pool/cells/";
pub const EPOCHS: &str = "/ferry/pool/epochs/";
pub const POLICY: &str = "/ferry/pool/policy";
pub const SNAPSHOT: &str = "/ferry/pool/snapshot";
pub const ELECTION: &str = "/ferry/pool/election";

pub fn server_key(name: &str) -> String {
    format!("{SERVERS}{name}")
}
pub fn power_key(name: &str) -> String {
    format!("{POWER}{name}")
}
pub fn drain_key(name: &str) -> String {
    format!("{DRAIN}{name}")
}
pub fn cell_key(name: &str) -> String {
    format!("{CELLS}{name}")
}
pub fn epoch_key(name: &str) -> String {
    format!("{EPOCHS}{name}")
}

/// What a server registers (with its lease).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub cores: u32,
    pub boot_ms: u64,
    pub idle_w: f64,
    pub busy_w: f64,
    /// Measured CPU load, cores.
    pub load_cores: f64,
    /// The agent's ZeroMQ endpoint (the executor of moves on this server).
    pub agent: String,
    /// Per cell this server can host: the agent that supervises that cell's modem here (an
    /// agent runs one modem task) and the modem's fronthaul and forward addresses. What
    /// the agent-backed executor needs for a make-before-break move onto or off this server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, AgentSlot>,
}

/// Where a cell's task runs on one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSlot {
    /// The agent's ZeroMQ endpoint, e.g. `tcp://10.99.0.2:5601`.
    pub agent: String,
    /// The agent's identity (`ferry agent --name`), e.g. `server2-cell1`.
    pub name: String,
    /// The modem's radio (fronthaul) endpoint, ip:port (`ferry ctl migrate --dest-port`).
    pub fronthaul: String,
    /// The modem's forwarding endpoint, ip:port (`ferry ctl migrate --forward-to`).
    pub forward: String,
}

/// A cell's radio under link control (`ferry air`'s control endpoint and the radio's name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellRadio {
    /// Link-control endpoint, e.g. `tcp://10.99.0.10:5550`.
    pub control: String,
    /// The radio's name there, e.g. `cell1`.
    pub name: String,
}

/// A cell's placement. `desired != actual` while a move is under way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    pub desired: String,
    pub actual: String,
    pub epoch: u64,
    /// Measured (or forecast) CPU demand, cores.
    pub demand_cores: f64,
    /// The cell's radio (needed to move it through the agents; absent for recorded moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio: Option<CellRadio>,
}

/// Power as stored (the scheduler's own type, serialised).
pub fn power_text(p: Power) -> String {
    serde_json::to_string(&p).unwrap_or_else(|_| "\"on\"".into())
}

/// Server and cell names are path segments: no slash, not empty, printable.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
