//! A deterministic multi-node harness in the spirit of quinn-proto's `Pair`: several [`Mac`]s
//! exchange transport blocks over a link matrix with a virtual subframe clock. Blocked
//! pairs, collisions (two transmitters heard on one carrier in one subframe destroy each
//! other) and injected TB losses are modelled; nothing here touches a socket or a clock.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::addr::NodeId;
use crate::mac::{Delivery, Mac, TxBlock};

/// What the harness observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    /// TBs transmitted by all nodes.
    pub tbs_sent: u64,
    /// TB receptions handed to a MAC (after the decode latency).
    pub tbs_delivered: u64,
    /// TB receptions destroyed by a collision.
    pub collisions: u64,
    /// TB receptions dropped by the loss rule.
    pub injected_losses: u64,
}

/// Decides whether a TB from `tx` to `rx` in subframe `n` is lost.
pub type LossRule = Box<dyn FnMut(u64, usize, usize) -> bool>;

/// Nodes, links and a virtual clock.
pub struct Sim {
    /// The MACs, by index.
    pub nodes: Vec<Mac>,
    links: Vec<Vec<bool>>,
    now: u64,
    tb_capacity: usize,
    loss: LossRule,
    stats: SimStats,
    lead: u64,
    latency: u64,
    on_air: BTreeMap<u64, Vec<(usize, TxBlock)>>,
    decoding: BTreeMap<u64, Vec<(u64, usize, Vec<u8>)>>,
    /// Every delivery so far: (step it happened in, receiving node index, delivery).
    pub log: Vec<(u64, usize, Delivery)>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Sim {
    /// Fully connected nodes starting at subframe `start`, every TB `tb_capacity` bytes.
    pub fn new(nodes: Vec<Mac>, tb_capacity: usize, start: u64) -> Self {
        let k = nodes.len();
        Sim {
            nodes,
            links: vec![vec![true; k]; k],
            now: start,
            tb_capacity,
            loss: Box::new(|_, _, _| false),
            stats: SimStats::default(),
            lead: 0,
            latency: 0,
            on_air: BTreeMap::new(),
            decoding: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// The next subframe to run.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Change the TB size.
    pub fn set_tb_capacity(&mut self, bytes: usize) {
        self.tb_capacity = bytes;
    }

    /// Install a TB loss rule.
    pub fn set_loss(&mut self, rule: LossRule) {
        self.loss = rule;
    }

    /// Block or unblock the air path between two nodes (both directions).
    pub fn set_link(&mut self, a: usize, b: usize, up: bool) {
        if let Some(x) = self.links.get_mut(a).and_then(|r| r.get_mut(b)) {
            *x = up;
        }
        if let Some(x) = self.links.get_mut(b).and_then(|r| r.get_mut(a)) {
            *x = up;
        }
    }

    /// Index of the node with ID `id`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|m| m.config().node == id)
    }

    /// Replace node `i` (e.g. by the same task restarted elsewhere); returns the old MAC.
    pub fn replace(&mut self, i: usize, mac: Mac) -> Option<Mac> {
        self.nodes
            .get_mut(i)
            .map(|slot| std::mem::replace(slot, mac))
    }

    /// Model the modem's real-time pipeline: each node prepares the TB for subframe
    /// `now + lead` (transmit lead), and a TB on the air in subframe `n` is handed to the
    /// receivers `decode_latency` subframes later (still labelled `n`). Default 0 / 0.
    pub fn set_timing(&mut self, lead: u64, decode_latency: u64) {
        self.lead = lead;
        self.latency = decode_latency;
    }

    /// Run one subframe: every node prepares its transmission, the air carries what was
    /// prepared for this subframe, and due receptions are handed to the receivers.
    pub fn step(&mut self) -> Vec<(usize, Delivery)> {
        let s = self.now;
        let cap = self.tb_capacity;
        let prep = s + self.lead;
        for (i, m) in self.nodes.iter_mut().enumerate() {
            if let Some(t) = m.on_subframe(prep, cap) {
                self.stats.tbs_sent += 1;
                self.on_air.entry(prep).or_default().push((i, t));
            }
        }
        let txs = self.on_air.remove(&s).unwrap_or_default();
        for rx in 0..self.nodes.len() {
            // A node cannot receive on a carrier it is transmitting on.
            let busy: Vec<u8> = txs
                .iter()
                .filter(|(i, _)| *i == rx)
                .map(|(_, t)| t.carrier)
                .collect();
            let heard: Vec<&(usize, TxBlock)> = txs
                .iter()
                .filter(|(i, t)| {
                    *i != rx
                        && !busy.contains(&t.carrier)
                        && self
                            .links
                            .get(*i)
                            .and_then(|r| r.get(rx))
                            .copied()
                            .unwrap_or(false)
                })
                .collect();
            for (tx, t) in &heard {
                if heard.iter().filter(|(_, o)| o.carrier == t.carrier).count() > 1 {
                    self.stats.collisions += 1;
                    continue;
                }
                if (self.loss)(s, *tx, rx) {
                    self.stats.injected_losses += 1;
                    continue;
                }
                self.decoding
                    .entry(s + self.latency)
                    .or_default()
                    .push((s, rx, t.bytes.clone()));
            }
        }
        let mut out = Vec::new();
        for (n, rx, bytes) in self.decoding.remove(&s).unwrap_or_default() {
            self.stats.tbs_delivered += 1;
            if let Some(node) = self.nodes.get_mut(rx) {
                for d in node.on_received(n, &bytes) {
                    self.log.push((s, rx, d.clone()));
                    out.push((rx, d));
                }
            }
        }
        self.now += 1;
        out
    }

    /// Run `subframes` subframes.
    pub fn run(&mut self, subframes: u64) {
        for _ in 0..subframes {
            self.step();
        }
    }

    /// Run until `done` holds (checked after each subframe) or `max` subframes passed;
    /// returns the subframe at which it first held.
    pub fn run_until(&mut self, max: u64, mut done: impl FnMut(&Sim) -> bool) -> Option<u64> {
        for _ in 0..max {
            self.step();
            if done(self) {
                return Some(self.now);
            }
        }
        None
    }
}
