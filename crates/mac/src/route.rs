//! The relay's route table (the thesis' `route_t { destID, nexthop }`), its forwarding
//! decision, and route discovery: a distance-vector protocol with periodic beacons, triggered
//! updates, poisoned reverse adapted to a broadcast medium, route expiry and a hop limit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::addr::NodeId;
use crate::error::{ConfigError, RouteError};
use crate::wire::{Beacon, BeaconEntry, RelayHeader, INFINITY};

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteOrigin {
    /// Learned from beacons.
    Discovered,
    /// Set from a (migrated) `route_list`, not yet confirmed by a beacon.
    Installed,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// Final destination.
    pub dest: NodeId,
    /// Neighbour to hand packets for `dest` to.
    pub next_hop: NodeId,
    /// Hops to `dest`; [`INFINITY`] = unreachable (kept a while to poison it downstream).
    pub metric: u8,
    /// Subframe of the last refresh (or of becoming unreachable).
    pub updated: u64,
    /// Discovered or installed.
    pub origin: RouteOrigin,
}

/// The route table of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    me: NodeId,
    capacity: usize,
    entries: BTreeMap<NodeId, RouteEntry>,
}

impl RouteTable {
    /// An empty table for node `me` holding at most `capacity` destinations.
    pub fn new(me: NodeId, capacity: usize) -> Self {
        RouteTable {
            me,
            capacity,
            entries: BTreeMap::new(),
        }
    }

    /// The owning node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The next hop towards `dest`, if it is reachable.
    pub fn next_hop(&self, dest: NodeId) -> Option<NodeId> {
        self.entries
            .get(&dest)
            .filter(|e| e.metric < INFINITY)
            .map(|e| e.next_hop)
    }

    /// All rows, including unreachable ones being aged out.
    pub fn entries(&self) -> impl Iterator<Item = &RouteEntry> {
        self.entries.values()
    }

    /// The row for `dest`.
    pub fn get(&self, dest: NodeId) -> Option<&RouteEntry> {
        self.entries.get(&dest)
    }

    /// The usable routes as the thesis' `route_list = [(destID, nexthop), ...]`, by destID.
    pub fn route_list(&self) -> Vec<(NodeId, NodeId)> {
        self.entries
            .values()
            .filter(|e| e.metric < INFINITY)
            .map(|e| (e.dest, e.next_hop))
            .collect()
    }

    /// Check a `route_list` for this node without applying it.
    pub fn validate(&self, list: &[(NodeId, NodeId)]) -> Result<(), RouteError> {
        if list.len() > self.capacity {
            return Err(RouteError::TooMany {
                len: list.len(),
                max: self.capacity,
            });
        }
        for (i, &(dest, nh)) in list.iter().enumerate() {
            if dest == self.me {
                return Err(RouteError::RouteToSelf(dest.0));
            }
            if nh == self.me {
                return Err(RouteError::NextHopIsSelf {
                    dest: dest.0,
                    node: self.me.0,
                });
            }
            if list.iter().skip(i + 1).any(|&(d, _)| d == dest) {
                return Err(RouteError::DuplicateDest(dest.0));
            }
            if let Some(&(_, via)) = list.iter().find(|&&(d, _)| d == nh) {
                if via != nh {
                    return Err(RouteError::IndirectNextHop {
                        dest: dest.0,
                        next_hop: nh.0,
                        via: via.0,
                    });
                }
            }
        }
        Ok(())
    }

    /// Replace the table with a validated `route_list` (e.g. migrated with the relay).
    /// Installed routes are usable at once; their metric is a guess (1 for a direct
    /// neighbour, 2 otherwise) that the next beacon from the next hop corrects, and like any
    /// route they expire if no beacon confirms them.
    pub fn set_route_list(
        &mut self,
        now: u64,
        list: &[(NodeId, NodeId)],
    ) -> Result<(), RouteError> {
        self.validate(list)?;
        self.entries = list
            .iter()
            .map(|&(dest, next_hop)| {
                let metric = if dest == next_hop { 1 } else { 2 };
                (
                    dest,
                    RouteEntry {
                        dest,
                        next_hop,
                        metric,
                        updated: now,
                        origin: RouteOrigin::Installed,
                    },
                )
            })
            .collect();
        Ok(())
    }
}

/// What to do with a received data PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardDecision {
    /// This node is the destination.
    Deliver,
    /// Send on to `next_hop` with the TTL decremented.
    Forward {
        /// Neighbour to send to.
        next_hop: NodeId,
    },
    /// No usable route to the destination.
    DropNoRoute,
    /// The TTL would reach zero.
    DropTtl,
}

/// The relay's forwarding decision for a received relay header.
pub fn forward_decision(table: &RouteTable, h: &RelayHeader) -> ForwardDecision {
    if h.dst == table.me() {
        return ForwardDecision::Deliver;
    }
    if h.ttl <= 1 {
        return ForwardDecision::DropTtl;
    }
    match table.next_hop(h.dst) {
        Some(next_hop) => ForwardDecision::Forward { next_hop },
        None => ForwardDecision::DropNoRoute,
    }
}

/// Beacon period of 1 s (in subframes).
pub const DEFAULT_BEACON_PERIOD: u64 = 1000;

/// Timing of route discovery; all values in subframes (= ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryConfig {
    /// Send beacons at all. Without, routes are static: installed ones never age.
    pub enabled: bool,
    /// Period of the regular beacon.
    pub period: u64,
    /// A route not refreshed for this long becomes unreachable.
    pub route_timeout: u64,
    /// An unreachable route is advertised (poisoned) this long, then removed.
    pub gc_time: u64,
    /// Minimum spacing of triggered beacons after a route change; `None`: periodic only.
    pub triggered_min_gap: Option<u64>,
    /// Destinations the table holds.
    pub max_routes: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig::with_period(DEFAULT_BEACON_PERIOD)
    }
}

impl DiscoveryConfig {
    /// Constants scaled to a beacon period: timeout 3.5 periods (three lost beacons are
    /// tolerated), garbage collection 2 periods later, triggered beacons at most every
    /// period/5.
    pub fn with_period(period: u64) -> Self {
        DiscoveryConfig {
            enabled: true,
            period,
            route_timeout: period * 7 / 2,
            gc_time: period * 2,
            triggered_min_gap: Some((period / 5).max(1)),
            max_routes: 64,
        }
    }

    /// Reject values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.period == 0 {
            return Err(ConfigError::Invalid {
                field: "beacon period",
                value: "0".into(),
                allowed: "> 0 subframes",
            });
        }
        if self.route_timeout <= self.period {
            return Err(ConfigError::Invalid {
                field: "route_timeout",
                value: self.route_timeout.to_string(),
                allowed: "more than one beacon period",
            });
        }
        if self.max_routes == 0 || self.max_routes > 255 {
            return Err(ConfigError::Invalid {
                field: "max_routes",
                value: self.max_routes.to_string(),
                allowed: "1-255",
            });
        }
        Ok(())
    }
}

/// Counters of the discovery protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryStats {
    /// Beacons sent.
    pub beacons_sent: u64,
    /// Of those, triggered by a route change.
    pub triggered: u64,
    /// Beacons received and applied.
    pub beacons_received: u64,
    /// Route rows added, changed (next hop or metric) or made unreachable.
    pub route_changes: u64,
    /// Routes that became unreachable because no beacon refreshed them.
    pub routes_expired: u64,
    /// Unreachable rows removed after garbage collection.
    pub routes_removed: u64,
    /// Beacons refused (e.g. sender claims to be this node).
    pub beacons_rejected: u64,
}

/// The discovery state machine of one node. Time is the subframe number passed in.
#[derive(Debug, Clone)]
pub struct Discovery {
    cfg: DiscoveryConfig,
    table: RouteTable,
    neighbours: BTreeMap<NodeId, u64>,
    seq: u16,
    next_periodic: Option<u64>,
    changed: bool,
    last_sent: Option<u64>,
    cursor: usize,
    stats: DiscoveryStats,
}

impl Discovery {
    /// Discovery for node `me`.
    pub fn new(me: NodeId, cfg: DiscoveryConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Discovery {
            cfg,
            table: RouteTable::new(me, cfg.max_routes),
            neighbours: BTreeMap::new(),
            seq: 0,
            next_periodic: None,
            changed: false,
            last_sent: None,
            cursor: 0,
            stats: DiscoveryStats::default(),
        })
    }

    /// The route table.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// Counters.
    pub fn stats(&self) -> DiscoveryStats {
        self.stats
    }

    /// Configuration.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.cfg
    }

    /// Neighbours heard within the route timeout, with the subframe last heard.
    pub fn neighbours(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.neighbours.iter().map(|(n, t)| (*n, *t))
    }

    /// Install a migrated `route_list` (replaces the table) and advertise it promptly.
    pub fn set_route_list(
        &mut self,
        now: u64,
        list: &[(NodeId, NodeId)],
    ) -> Result<(), RouteError> {
        self.table.set_route_list(now, list)?;
        for &(_, nh) in list {
            self.neighbours.insert(nh, now);
        }
        self.changed = true;
        Ok(())
    }

    fn change(&mut self) {
        self.changed = true;
        self.stats.route_changes += 1;
    }

    /// Apply a beacon heard at `now`. Returns whether the table changed.
    pub fn on_beacon(&mut self, now: u64, beacon: &Beacon) -> bool {
        let me = self.table.me;
        let from = beacon.node;
        if from == me {
            self.stats.beacons_rejected += 1;
            return false;
        }
        self.stats.beacons_received += 1;
        self.neighbours.insert(from, now);
        let before = self.stats.route_changes;
        // The sender itself is one hop away.
        self.offer(now, from, from, 1);
        for e in &beacon.entries {
            if e.dest == me || e.dest == from {
                continue;
            }
            // Poisoned reverse, receiver side: a route the sender reaches through us is no
            // route for us.
            let metric = if e.next_hop == me {
                INFINITY
            } else {
                e.metric.saturating_add(1).min(INFINITY)
            };
            self.offer(now, e.dest, from, metric);
        }
        self.stats.route_changes != before
    }

    /// Bellman–Ford relaxation of one advertised (dest, via, metric).
    fn offer(&mut self, now: u64, dest: NodeId, via: NodeId, metric: u8) {
        let full = self.table.entries.len() >= self.table.capacity;
        match self.table.entries.get_mut(&dest) {
            None => {
                if metric < INFINITY && !full {
                    self.table.entries.insert(
                        dest,
                        RouteEntry {
                            dest,
                            next_hop: via,
                            metric,
                            updated: now,
                            origin: RouteOrigin::Discovered,
                        },
                    );
                    self.change();
                }
            }
            Some(e) if e.next_hop == via => {
                // News from the current next hop is authoritative, better or worse.
                let was = (e.metric, e.origin);
                if metric < INFINITY {
                    e.updated = now;
                    e.origin = RouteOrigin::Discovered;
                } else if e.metric < INFINITY {
                    e.updated = now; // start of the garbage-collection wait
                }
                e.metric = metric;
                if was.0 != metric {
                    self.change();
                }
            }
            Some(e) => {
                if metric < e.metric {
                    *e = RouteEntry {
                        dest,
                        next_hop: via,
                        metric,
                        updated: now,
                        origin: RouteOrigin::Discovered,
                    };
                    self.change();
                }
            }
        }
    }

    /// Age routes: unrefreshed ones become unreachable, old unreachable ones are removed.
    pub fn poll(&mut self, now: u64) {
        if !self.cfg.enabled {
            return; // static routes: nothing refreshes them, so nothing ages them
        }
        let (timeout, gc) = (self.cfg.route_timeout, self.cfg.gc_time);
        let mut expired = 0;
        let mut removed = 0;
        self.table.entries.retain(|_, e| {
            let age = now.saturating_sub(e.updated);
            if e.metric < INFINITY {
                if age > timeout {
                    e.metric = INFINITY;
                    e.updated = now;
                    expired += 1;
                }
                true
            } else if age > gc {
                removed += 1;
                false
            } else {
                true
            }
        });
        self.neighbours
            .retain(|_, heard| now.saturating_sub(*heard) <= timeout);
        self.stats.routes_expired += expired;
        self.stats.routes_removed += removed;
        if expired > 0 {
            self.stats.route_changes += expired;
            self.changed = true;
        }
    }

    /// Whether a beacon should go out at the next transmit opportunity at or after `now`.
    pub fn beacon_due(&self, now: u64) -> bool {
        if !self.cfg.enabled {
            return false;
        }
        let periodic = self.next_periodic.is_none_or(|t| now >= t);
        let triggered = self.changed
            && match (self.cfg.triggered_min_gap, self.last_sent) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(gap), Some(last)) => now >= last.saturating_add(gap),
            };
        periodic || triggered
    }

    /// Build the beacon to send at `now` with room for at most `max_entries` routes, and
    /// note it as sent. When the table does not fit, successive beacons rotate through it.
    pub fn make_beacon(&mut self, now: u64, max_entries: usize) -> Beacon {
        let all: Vec<BeaconEntry> = self
            .table
            .entries
            .values()
            .map(|e| BeaconEntry {
                dest: e.dest,
                metric: e.metric,
                next_hop: e.next_hop,
            })
            .collect();
        let take = all.len().min(max_entries).min(255);
        let entries = if take == all.len() {
            self.cursor = 0;
            all
        } else {
            let start = self.cursor % all.len().max(1);
            self.cursor = start + take;
            all.iter().cycle().skip(start).take(take).copied().collect()
        };
        let periodic = self.next_periodic.is_none_or(|t| now >= t);
        if !periodic {
            self.stats.triggered += 1;
        }
        self.stats.beacons_sent += 1;
        self.changed = false;
        self.last_sent = Some(now);
        if periodic {
            self.next_periodic = Some(now + self.cfg.period);
        }
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        Beacon {
            node: self.table.me,
            seq,
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(x: u8) -> NodeId {
        NodeId(x)
    }

    #[test]
    fn route_list_validation() {
        let t = RouteTable::new(n(9), 8);
        assert_eq!(t.validate(&[(n(8), n(8)), (n(10), n(10))]), Ok(()));
        assert_eq!(t.validate(&[(n(9), n(8))]), Err(RouteError::RouteToSelf(9)));
        assert_eq!(
            t.validate(&[(n(8), n(9))]),
            Err(RouteError::NextHopIsSelf { dest: 8, node: 9 })
        );
        assert_eq!(
            t.validate(&[(n(8), n(8)), (n(8), n(10))]),
            Err(RouteError::DuplicateDest(8))
        );
        assert_eq!(
            t.validate(&[(n(8), n(10)), (n(10), n(8))]),
            Err(RouteError::IndirectNextHop {
                dest: 8,
                next_hop: 10,
                via: 8
            })
        );
        let long: Vec<_> = (20..29).map(|d| (n(d), n(1))).collect();
        assert_eq!(
            t.validate(&long),
            Err(RouteError::TooMany { len: 9, max: 8 })
        );
    }

    #[test]
    fn forwarding_decisions() {
        let mut t = RouteTable::new(n(9), 8);
        assert!(t
            .set_route_list(0, &[(n(10), n(10)), (n(11), n(10))])
            .is_ok());
        let h = |ttl, dst| RelayHeader {
            ttl,
            src: n(8),
            dst: n(dst),
        };
        assert_eq!(forward_decision(&t, &h(5, 9)), ForwardDecision::Deliver);
        assert_eq!(forward_decision(&t, &h(1, 9)), ForwardDecision::Deliver);
        assert_eq!(
            forward_decision(&t, &h(5, 11)),
            ForwardDecision::Forward { next_hop: n(10) }
        );
        assert_eq!(forward_decision(&t, &h(1, 11)), ForwardDecision::DropTtl);
        assert_eq!(
            forward_decision(&t, &h(5, 12)),
            ForwardDecision::DropNoRoute
        );
    }

    /// Run discovery on a link matrix, every node beaconing when due each `tick` subframes.
    fn run(ds: &mut [Discovery], links: &[(u8, u8)], from: u64, to: u64) {
        let up = |a: u8, b: u8| {
            links
                .iter()
                .any(|&(x, y)| (x, y) == (a, b) || (y, x) == (a, b))
        };
        for now in from..to {
            for i in 0..ds.len() {
                ds[i].poll(now);
                if ds[i].beacon_due(now) {
                    let b = ds[i].make_beacon(now, 64);
                    let me = b.node.0;
                    for d in ds.iter_mut() {
                        if d.table().me().0 != me && up(me, d.table().me().0) {
                            d.on_beacon(now, &b);
                        }
                    }
                }
            }
        }
    }

    fn chain(k: u8, cfg: DiscoveryConfig) -> Vec<Discovery> {
        (1..=k)
            .map(|i| Discovery::new(n(i), cfg).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn chain_converges_to_shortest_paths() {
        let mut ds = chain(5, DiscoveryConfig::default());
        let links = [(1, 2), (2, 3), (3, 4), (4, 5)];
        run(&mut ds, &links, 0, 5000);
        for d in &ds {
            let me = d.table().me().0;
            for dest in 1..=5u8 {
                if dest == me {
                    continue;
                }
                let e = d
                    .table()
                    .get(n(dest))
                    .copied()
                    .unwrap_or_else(|| panic!("{me} lacks {dest}"));
                assert_eq!(e.metric, me.abs_diff(dest), "{me}->{dest}");
                let nh = if dest > me { me + 1 } else { me - 1 };
                assert_eq!(e.next_hop, n(nh));
            }
        }
    }

    /// Hop distances by breadth-first search over an undirected edge list.
    fn bfs(k: u8, links: &[(u8, u8)], from: u8) -> Vec<Option<u8>> {
        let mut dist = vec![None; usize::from(k) + 1];
        dist[usize::from(from)] = Some(0u8);
        let mut frontier = vec![from];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &a in &frontier {
                let d = dist[usize::from(a)].unwrap_or(0);
                for &(x, y) in links {
                    for (p, q) in [(x, y), (y, x)] {
                        if p == a && dist[usize::from(q)].is_none() {
                            dist[usize::from(q)] = Some(d + 1);
                            next.push(q);
                        }
                    }
                }
            }
            frontier = next;
        }
        dist
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

        /// On any topology, discovery converges to shortest paths: every reachable node is
        /// known with its hop distance, via a neighbour that is one hop closer; unreachable
        /// nodes are not.
        #[test]
        fn converges_to_shortest_paths_on_random_topologies(
            k in 2u8..9,
            edges in proptest::collection::vec((1u8..9, 1u8..9), 0..20),
        ) {
            let links: Vec<(u8, u8)> = edges.into_iter().filter(|&(a, b)| a != b && a <= k && b <= k).collect();
            let mut ds = chain(k, DiscoveryConfig::default());
            run(&mut ds, &links, 0, 12_000);
            for d in &ds {
                let me = d.table().me().0;
                let dist = bfs(k, &links, me);
                for dest in 1..=k {
                    if dest == me {
                        continue;
                    }
                    let row = d.table().get(n(dest)).filter(|e| e.metric < INFINITY);
                    match dist[usize::from(dest)] {
                        None => proptest::prop_assert!(row.is_none(), "{me} claims unreachable {dest}"),
                        Some(h) => {
                            let e = row.copied();
                            proptest::prop_assert!(e.is_some(), "{me} lacks {dest}");
                            let e = e.unwrap_or_else(|| unreachable!());
                            proptest::prop_assert_eq!(e.metric, h, "{}->{}", me, dest);
                            let nh = e.next_hop.0;
                            let adjacent = links.iter().any(|&(x, y)| (x, y) == (me, nh) || (y, x) == (me, nh));
                            proptest::prop_assert!(adjacent, "{me}->{dest} via non-neighbour {nh}");
                            proptest::prop_assert_eq!(bfs(k, &links, nh)[usize::from(dest)], Some(h - 1));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn broken_link_expires_and_reroutes() {
        let cfg = DiscoveryConfig::default();
        // Ring 1-2-3-4-1: 1 reaches 3 in two hops via 2 or 4.
        let mut ds = chain(4, cfg);
        run(&mut ds, &[(1, 2), (2, 3), (3, 4), (4, 1)], 0, 5000);
        let via = ds[0]
            .table()
            .next_hop(n(3))
            .unwrap_or_else(|| panic!("no route"));
        // Break the link of that path between 1 and its next hop.
        let other = if via == n(2) { n(4) } else { n(2) };
        let links: Vec<(u8, u8)> = [(1, 2), (2, 3), (3, 4), (4, 1)]
            .into_iter()
            .filter(|&(a, b)| !((a, b) == (1, via.0) || (b, a) == (1, via.0)))
            .collect();
        run(&mut ds, &links, 5000, 15_000);
        assert_eq!(ds[0].table().next_hop(n(3)), Some(other));
        assert_eq!(ds[0].table().get(n(3)).map(|e| e.metric), Some(2));
        assert_eq!(
            ds[0].table().get(via).map(|e| (e.next_hop, e.metric)),
            Some((other, 3))
        );
        assert!(ds[0].stats().routes_expired >= 1);
    }

    #[test]
    fn partition_counts_to_infinity_bounded_and_gc() {
        let cfg = DiscoveryConfig::default();
        let mut ds = chain(3, cfg);
        run(&mut ds, &[(1, 2), (2, 3)], 0, 4000);
        assert_eq!(ds[0].table().next_hop(n(3)), Some(n(2)));
        // Node 3 vanishes: nobody may keep a usable route to it, and rows are collected.
        run(&mut ds, &[(1, 2)], 4000, 16_000);
        assert_eq!(ds[0].table().next_hop(n(3)), None);
        assert_eq!(ds[1].table().next_hop(n(3)), None);
        assert!(ds[0].table().get(n(3)).is_none(), "garbage collected");
        assert!(ds[1].stats().routes_removed >= 1);
    }

    #[test]
    fn poisoned_reverse_from_broadcast_entries() {
        let mut d =
            Discovery::new(n(1), DiscoveryConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let b = Beacon {
            node: n(2),
            seq: 0,
            entries: vec![
                BeaconEntry {
                    dest: n(3),
                    metric: 1,
                    next_hop: n(3),
                },
                BeaconEntry {
                    dest: n(4),
                    metric: 2,
                    next_hop: n(1),
                },
            ],
        };
        assert!(d.on_beacon(0, &b));
        assert_eq!(d.table().route_list(), vec![(n(2), n(2)), (n(3), n(2))]);
        assert_eq!(d.table().get(n(3)).map(|e| e.metric), Some(2));
        assert!(
            d.table().get(n(4)).is_none(),
            "routes through me are poisoned"
        );
        // A beacon claiming to come from myself is refused.
        assert!(!d.on_beacon(
            1,
            &Beacon {
                node: n(1),
                seq: 0,
                entries: vec![]
            }
        ));
        assert_eq!(d.stats().beacons_rejected, 1);
    }

    #[test]
    fn beacon_timing_periodic_and_triggered() {
        let cfg = DiscoveryConfig::with_period(1000);
        let mut d = Discovery::new(n(1), cfg).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.beacon_due(5), "first beacon at once");
        d.make_beacon(5, 10);
        assert!(!d.beacon_due(6));
        assert!(d.beacon_due(1005));
        // A route change triggers a beacon after the minimum gap (200).
        d.on_beacon(
            10,
            &Beacon {
                node: n(2),
                seq: 0,
                entries: vec![],
            },
        );
        assert!(!d.beacon_due(204));
        assert!(d.beacon_due(205));
        d.make_beacon(205, 10);
        assert_eq!(d.stats().triggered, 1);
        assert!(!d.beacon_due(1004));
        assert!(d.beacon_due(1005), "periodic schedule kept");
        let off = DiscoveryConfig {
            triggered_min_gap: None,
            ..cfg
        };
        let mut p = Discovery::new(n(1), off).unwrap_or_else(|e| panic!("{e}"));
        p.make_beacon(0, 10);
        p.on_beacon(
            10,
            &Beacon {
                node: n(2),
                seq: 0,
                entries: vec![],
            },
        );
        assert!(!p.beacon_due(999));
        assert!(DiscoveryConfig { period: 0, ..cfg }.validate().is_err());
    }

    #[test]
    fn beacon_rotates_when_table_does_not_fit() {
        let mut d =
            Discovery::new(n(1), DiscoveryConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let list: Vec<_> = (2..=6).map(|k| (n(k), n(k))).collect();
        assert!(d.set_route_list(0, &list).is_ok());
        let mut seen = std::collections::BTreeSet::new();
        for t in 0..3 {
            let b = d.make_beacon(t * 1000, 2);
            assert!(b.entries.len() <= 2);
            seen.extend(b.entries.iter().map(|e| e.dest));
        }
        assert_eq!(seen.len(), 5, "all five advertised within three beacons");
    }

    #[test]
    fn installed_routes_usable_then_corrected_or_expired() {
        let cfg = DiscoveryConfig::default();
        let mut d = Discovery::new(n(9), cfg).unwrap_or_else(|e| panic!("{e}"));
        assert!(d
            .set_route_list(100, &[(n(8), n(8)), (n(10), n(10)), (n(11), n(10))])
            .is_ok());
        assert_eq!(d.table().next_hop(n(11)), Some(n(10)));
        assert!(d.beacon_due(100));
        // Node 10 confirms 11 at 3 hops from it: the metric is corrected, origin updated.
        d.on_beacon(
            500,
            &Beacon {
                node: n(10),
                seq: 0,
                entries: vec![BeaconEntry {
                    dest: n(11),
                    metric: 3,
                    next_hop: n(12),
                }],
            },
        );
        let e = d
            .table()
            .get(n(11))
            .copied()
            .unwrap_or_else(|| panic!("row"));
        assert_eq!((e.metric, e.origin), (4, RouteOrigin::Discovered));
        // Node 8 never confirms: its installed route expires after the timeout.
        d.poll(100 + cfg.route_timeout + 1);
        assert_eq!(d.table().next_hop(n(8)), None);
        assert_eq!(d.table().next_hop(n(10)), Some(n(10)));
    }
}
