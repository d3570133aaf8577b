//! The agent-backed [`MoveExecutor`]: every move is the make-before-break migration `ferry
//! ctl migrate --method mbb` performs — the pure `ferry_migrate::mbb` sequence run by
//! `ferry_ctl::Driver` against the cell's agent on the source and on the destination server
//! and the cell's radio link control. Where to find them comes from etcd (each server's
//! [`AgentSlot`] per cell, each cell's [`CellRadio`]); the key is the agents' shared key.
//!
//! Never claims: a move is done only when, after the sequence, the destination's agent
//! reports its modem `active`, no other slot's does, and the radio streams to the
//! destination's fronthaul address. `locate` asks every slot's agent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ferry_auth::AuthKey;
use ferry_ctl::{AgentClient, Driver, RadioControl};
use ferry_migrate::{mbb, MbbConfig, ModemMode, Peer, Request};
use ferry_radio::{ControlClient, LinkAuth};
use tracing::{info, warn};

use crate::controller::MoveExecutor;
use crate::layout::{AgentSlot, CellRadio};
use crate::store::PoolState;

/// How the agent-backed executor reaches the agents and radios.
#[derive(Clone)]
pub struct AgentExecutorConfig {
    /// The agents' shared key (the same 0600 file as `ferry ctl --key`).
    pub key: AuthKey,
    /// The radios' link-control key and the air's identity (`None`: an open link control).
    pub radio_auth: Option<LinkAuth>,
    /// Deadline of one agent request.
    pub request_timeout: Duration,
    /// How far ahead of the radio clock T is placed (`ferry ctl migrate --margin-ms`).
    pub margin_ms: u64,
}

/// Moves cells through their agents (see the module doc).
pub struct AgentExecutor {
    config: AgentExecutorConfig,
    /// Per cell: (server, slot) for every server that can host it.
    slots: BTreeMap<String, Vec<(String, AgentSlot)>>,
    radios: BTreeMap<String, CellRadio>,
}

/// What one slot's agent says about the cell's modem there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Serving,
    NotServing,
    NoAnswer,
}

impl AgentExecutor {
    pub fn new(config: AgentExecutorConfig) -> AgentExecutor {
        AgentExecutor {
            config,
            slots: BTreeMap::new(),
            radios: BTreeMap::new(),
        }
    }

    fn slot(&self, cell: &str, server: &str) -> Result<&AgentSlot, String> {
        self.slots
            .get(cell)
            .and_then(|v| v.iter().find(|(s, _)| s == server))
            .map(|(_, slot)| slot)
            .ok_or_else(|| format!("server {server} registered no agent slot for cell {cell}"))
    }

    fn client(&self, slot: &AgentSlot, timeout: Duration) -> AgentClient {
        AgentClient::named(
            slot.name.clone(),
            slot.agent.clone(),
            self.config.key.clone(),
            timeout,
        )
        .with_retries(1)
    }

    fn radio(&self, cell: &str) -> Result<RadioControl, String> {
        let r = self
            .radios
            .get(cell)
            .ok_or_else(|| format!("cell {cell} has no radio in etcd"))?;
        Ok(RadioControl {
            client: ControlClient::new(r.control.clone(), Duration::from_millis(500))
                .with_auth(self.config.radio_auth.clone())
                .with_name("pool"),
            radio: r.name.clone(),
        })
    }

    fn slot_state(&self, slot: &AgentSlot) -> SlotState {
        let mut c = self.client(slot, Duration::from_millis(1500));
        match c.call(&Request::Observe).map(|r| r.status()) {
            Ok(Ok(st)) => {
                let active = st.d2d
                    && st
                        .modem
                        .as_ref()
                        .is_some_and(|m| m.mode == ModemMode::Active);
                if active {
                    SlotState::Serving
                } else {
                    SlotState::NotServing
                }
            }
            _ => SlotState::NoAnswer,
        }
    }

    /// The fronthaul address the cell's radio streams to now.
    fn radio_primary(&self, cell: &str) -> Result<Option<SocketAddr>, String> {
        let rc = self.radio(cell)?;
        let (_, st) = rc.client.status(&rc.radio).map_err(|e| e.to_string())?;
        Ok(st.linked)
    }
}

impl MoveExecutor for AgentExecutor {
    fn observe(&mut self, state: &PoolState) {
        self.slots.clear();
        for (server, rec) in &state.servers {
            for (cell, slot) in &rec.slots {
                self.slots
                    .entry(cell.clone())
                    .or_default()
                    .push((server.clone(), slot.clone()));
            }
        }
        self.radios = state
            .cells
            .iter()
            .filter_map(|(c, r)| r.radio.clone().map(|radio| (c.clone(), radio)))
            .collect();
    }

    fn execute(&mut self, cell: &str, from: &str, to: &str, epoch: u64) -> Result<(), String> {
        let source = self.slot(cell, from)?.clone();
        let destination = self.slot(cell, to)?.clone();
        let forward: SocketAddr = destination.forward.parse().map_err(|_| {
            format!(
                "forward address {:?} of {cell} on {to} is not ip:port",
                destination.forward
            )
        })?;
        let mut cfg = MbbConfig::new(
            Peer::Local,
            Peer::Remote,
            destination.fronthaul.clone(),
            forward,
        );
        cfg.margin_ms = self.config.margin_ms;
        let timeout = self.config.request_timeout;
        let mut driver = Driver::new(
            None,
            Some(self.client(&source, timeout)),
            Some(self.client(&destination, timeout)),
            Some(self.radio(cell)?),
        );
        info!(%cell, %from, %to, epoch, "make-before-break");
        let seq = mbb::migrate(cfg, driver.now());
        let outcome = driver.run(seq, &mut |r| tracing::debug!(%cell, "{}", r.text));
        if !outcome.ok {
            return Err(format!("make-before-break failed: {}", outcome.summary));
        }
        // Verify, never claim: the destination serves, alone, and the radio streams to it.
        let at = self.locate(cell)?;
        if at.as_deref() != Some(to) {
            return Err(format!(
                "the sequence ended ok but the cell is served at {at:?}, not {to}"
            ));
        }
        let primary = self.radio_primary(cell)?;
        if primary.map(|a| a.to_string()) != Some(destination.fronthaul.clone()) {
            return Err(format!(
                "the radio streams to {primary:?}, not {to}'s {}",
                destination.fronthaul
            ));
        }
        Ok(())
    }

    fn locate(&mut self, cell: &str) -> Result<Option<String>, String> {
        let Some(slots) = self.slots.get(cell) else {
            return Ok(None);
        };
        let mut serving = Vec::new();
        let mut silent = Vec::new();
        for (server, slot) in slots {
            match self.slot_state(slot) {
                SlotState::Serving => serving.push(server.clone()),
                SlotState::NotServing => {}
                SlotState::NoAnswer => silent.push(server.clone()),
            }
        }
        match serving.as_slice() {
            [one] => Ok(Some(one.clone())),
            [] if silent.is_empty() => Ok(None),
            [] => Err(format!(
                "no agent of cell {cell} reports it serving and {} did not answer",
                silent.join(", ")
            )),
            many => {
                warn!(%cell, servers = ?many, "more than one agent reports the cell active");
                Err(format!(
                    "cell {cell} reported active on {}",
                    many.join(", ")
                ))
            }
        }
    }
}
