//! Master election for D2D without a base station (the seed's D2D program works "under a
//! base station or without one, electing master and slave roles among terminals").
//!
//! A terminal in `auto` mode listens for a master's synchronisation signals (PSS/SSS; the
//! master's node ID rides in its MAC beacons). If none is heard for a randomised interval it
//! becomes master itself; a terminal that hears a master becomes its slave. A slave that hears
//! nothing from its master for `master_lost` subframes listens again, so the survivors of a
//! dead master re-elect. Two masters that hear each other resolve by the **lowest node ID**:
//! the higher one steps down and becomes the lower one's slave, and a slave that hears two
//! masters follows the lower. A migrated master resumes as master without an election
//! ([`Election::resume_master`]).
//!
//! Pure: the clock is the subframe number; randomness is a seeded generator per terminal,
//! so tests replay exactly. The modem maps the role onto `Role::Master` / `Role::Slave`.

use crate::addr::NodeId;

/// Timing of the election, in subframes (1 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Shortest listening interval before claiming the master role.
    pub listen_min: u64,
    /// Longest listening interval (the backoff is uniform in `[listen_min, listen_max]`).
    pub listen_max: u64,
    /// A slave that hears nothing from its master this long listens again.
    pub master_lost: u64,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        // A cold cell search at 1.4 MHz takes ~75 ms (docs/MODEM.md): listen at least three
        // searches' worth before claiming the role, spread over as long again so that two
        // terminals rarely claim together; a master is lost after 200 ms of silence (the
        // modem's own loss-of-sync interval).
        ElectionConfig {
            listen_min: 250,
            listen_max: 500,
            master_lost: 200,
        }
    }
}

/// A terminal's role in the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectedRole {
    /// Listening for a master until `until` (then it claims the role).
    Listening {
        /// Subframe at which it claims the master role.
        until: u64,
    },
    /// Slave of `master`, last heard at `last_heard`.
    Slave {
        /// The master's node ID.
        master: NodeId,
        /// Subframe it was last heard.
        last_heard: u64,
    },
    /// Master: transmits PSS/SSS and beacons.
    Master,
}

/// A change the modem acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Start transmitting synchronisation signals as master.
    BecomeMaster,
    /// Synchronise to `master` as its slave.
    BecomeSlave {
        /// The master's node ID.
        master: NodeId,
    },
    /// The master is gone: stop transmitting, search again.
    Listen,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElectionCounters {
    /// Times this terminal claimed the master role.
    pub claims: u64,
    /// Times it stepped down because a lower-ID master was heard.
    pub step_downs: u64,
    /// Times its master was lost.
    pub masters_lost: u64,
}

/// One terminal's election state machine.
#[derive(Debug, Clone)]
pub struct Election {
    me: NodeId,
    cfg: ElectionConfig,
    role: ElectedRole,
    rng: u64,
    /// Counters.
    pub counters: ElectionCounters,
}

impl Election {
    /// A terminal that starts listening at subframe `now`; `seed` makes its backoffs
    /// reproducible (mixed with its node ID so terminals differ).
    pub fn new(me: NodeId, cfg: ElectionConfig, seed: u64, now: u64) -> Election {
        let mut e = Election {
            me,
            cfg,
            role: ElectedRole::Master,
            rng: (seed ^ (u64::from(me.0) << 32) ^ 0x9e37_79b9_7f4a_7c15) | 1,
            counters: ElectionCounters::default(),
        };
        e.role = ElectedRole::Listening {
            until: now + e.backoff(),
        };
        e
    }

    /// A migrated master: it goes on as master without an election.
    pub fn resume_master(me: NodeId, cfg: ElectionConfig, seed: u64) -> Election {
        let mut e = Election::new(me, cfg, seed, 0);
        e.role = ElectedRole::Master;
        e
    }

    /// A migrated slave of `master`, as heard at `now`.
    pub fn resume_slave(
        me: NodeId,
        master: NodeId,
        cfg: ElectionConfig,
        seed: u64,
        now: u64,
    ) -> Election {
        let mut e = Election::new(me, cfg, seed, now);
        e.role = ElectedRole::Slave {
            master,
            last_heard: now,
        };
        e
    }

    /// This terminal's node ID.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The current role.
    pub fn role(&self) -> ElectedRole {
        self.role
    }

    fn backoff(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let span = self.cfg.listen_max.saturating_sub(self.cfg.listen_min) + 1;
        self.cfg.listen_min + self.rng % span
    }

    /// A master's synchronisation signal and beacon from `from` were received in subframe
    /// `now`.
    pub fn on_heard_master(&mut self, from: NodeId, now: u64) -> Option<RoleChange> {
        if from == self.me {
            return None;
        }
        match self.role {
            ElectedRole::Listening { .. } => {
                self.role = ElectedRole::Slave {
                    master: from,
                    last_heard: now,
                };
                Some(RoleChange::BecomeSlave { master: from })
            }
            ElectedRole::Slave { master, .. } if from == master => {
                self.role = ElectedRole::Slave {
                    master,
                    last_heard: now,
                };
                None
            }
            ElectedRole::Slave { master, .. } if from.0 < master.0 => {
                // Two masters in earshot: follow the one that will survive.
                self.role = ElectedRole::Slave {
                    master: from,
                    last_heard: now,
                };
                Some(RoleChange::BecomeSlave { master: from })
            }
            ElectedRole::Slave { .. } => None,
            ElectedRole::Master if from.0 < self.me.0 => {
                self.counters.step_downs += 1;
                self.role = ElectedRole::Slave {
                    master: from,
                    last_heard: now,
                };
                Some(RoleChange::BecomeSlave { master: from })
            }
            ElectedRole::Master => None,
        }
    }

    /// Subframe `now` has passed: timeouts.
    pub fn on_tick(&mut self, now: u64) -> Option<RoleChange> {
        match self.role {
            ElectedRole::Listening { until } if now >= until => {
                self.counters.claims += 1;
                self.role = ElectedRole::Master;
                Some(RoleChange::BecomeMaster)
            }
            ElectedRole::Slave { last_heard, .. }
                if now.saturating_sub(last_heard) > self.cfg.master_lost =>
            {
                self.counters.masters_lost += 1;
                let until = now + self.backoff();
                self.role = ElectedRole::Listening { until };
                Some(RoleChange::Listen)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Terminals on a virtual clock: `alive[i]`, `hears[i][j]` (i hears j). A master's sync
    /// signals go out every 5 subframes (PSS/SSS in subframes 0 and 5).
    struct Air {
        nodes: Vec<Election>,
        alive: Vec<bool>,
        hears: Vec<Vec<bool>>,
        now: u64,
        changes: Vec<(u64, usize, RoleChange)>,
    }

    impl Air {
        fn new(ids: &[u8], seed: u64) -> Air {
            let n = ids.len();
            Air {
                nodes: ids
                    .iter()
                    .map(|&i| Election::new(NodeId(i), ElectionConfig::default(), seed, 0))
                    .collect(),
                alive: vec![true; n],
                hears: vec![vec![true; n]; n],
                now: 0,
                changes: Vec::new(),
            }
        }

        fn run(&mut self, subframes: u64) {
            for _ in 0..subframes {
                self.now += 1;
                let now = self.now;
                let masters: Vec<usize> = (0..self.nodes.len())
                    .filter(|&j| self.alive[j] && self.nodes[j].role() == ElectedRole::Master)
                    .collect();
                for i in 0..self.nodes.len() {
                    if !self.alive[i] {
                        continue;
                    }
                    if now % 5 == 0 {
                        for &j in &masters {
                            if j != i && self.hears[i][j] {
                                let from = self.nodes[j].me();
                                if let Some(c) = self.nodes[i].on_heard_master(from, now) {
                                    self.changes.push((now, i, c));
                                }
                            }
                        }
                    }
                    if let Some(c) = self.nodes[i].on_tick(now) {
                        self.changes.push((now, i, c));
                    }
                }
            }
        }

        fn masters(&self) -> Vec<usize> {
            (0..self.nodes.len())
                .filter(|&i| self.alive[i] && self.nodes[i].role() == ElectedRole::Master)
                .collect()
        }

        fn assert_one_master_and_everyone_its_slave(&self) -> usize {
            let m = self.masters();
            assert_eq!(m.len(), 1, "masters {m:?} at {}", self.now);
            let id = self.nodes[m[0]].me();
            for i in 0..self.nodes.len() {
                if self.alive[i] && i != m[0] {
                    assert!(
                        matches!(self.nodes[i].role(), ElectedRole::Slave { master, .. } if master == id),
                        "node {i} is {:?}",
                        self.nodes[i].role()
                    );
                }
            }
            m[0]
        }
    }

    #[test]
    fn three_terminals_elect_one_master_and_reelect_after_it_dies() {
        let cfg = ElectionConfig::default();
        for seed in 0..50 {
            let mut air = Air::new(&[8, 9, 10], seed);
            air.run(cfg.listen_max + 20);
            let m = air.assert_one_master_and_everyone_its_slave();
            let elected_at = air.changes.iter().map(|c| c.0).max().unwrap();
            assert!(
                elected_at <= cfg.listen_max + 10,
                "seed {seed}: {elected_at}"
            );
            // kill -9 of the master: the survivors notice and re-elect.
            air.alive[m] = false;
            let killed_at = air.now;
            air.run(cfg.master_lost + cfg.listen_max + 20);
            let m2 = air.assert_one_master_and_everyone_its_slave();
            assert_ne!(m2, m);
            let reelected = air
                .changes
                .iter()
                .filter(|c| c.0 > killed_at && c.2 == RoleChange::BecomeMaster)
                .count();
            assert!(reelected >= 1);
        }
    }

    #[test]
    fn two_masters_that_meet_resolve_to_the_lowest_id() {
        // Two groups out of earshot each elect a master; then they hear each other.
        let mut air = Air::new(&[3, 7, 5, 9], 11);
        for i in 0..4 {
            for j in 0..4 {
                air.hears[i][j] = (i < 2) == (j < 2);
            }
        }
        let cfg = ElectionConfig::default();
        air.run(cfg.listen_max + 20);
        assert_eq!(air.masters().len(), 2);
        air.hears = vec![vec![true; 4]; 4];
        air.run(20);
        let m = air.assert_one_master_and_everyone_its_slave();
        let ids: Vec<u8> = air.masters().iter().map(|&i| air.nodes[i].me().0).collect();
        // The surviving master is the lower of the two that met.
        let first: Vec<u8> = air
            .changes
            .iter()
            .filter(|c| c.2 == RoleChange::BecomeMaster)
            .map(|c| air.nodes[c.1].me().0)
            .collect();
        assert_eq!(ids, vec![*first.iter().min().unwrap()], "{first:?}");
        assert!(air.nodes[m].counters.step_downs == 0);
    }

    #[test]
    fn a_migrated_master_stays_master_without_an_election() {
        let cfg = ElectionConfig::default();
        let mut master = Election::resume_master(NodeId(9), cfg, 1);
        let mut slave = Election::resume_slave(NodeId(8), NodeId(9), cfg, 1, 0);
        for now in 1..2_000 {
            if now % 5 == 0 {
                assert_eq!(slave.on_heard_master(NodeId(9), now), None);
            }
            assert_eq!(master.on_tick(now), None);
            assert_eq!(slave.on_tick(now), None);
        }
        assert_eq!(master.role(), ElectedRole::Master);
        assert_eq!(master.counters.claims, 0);
    }

    #[test]
    fn simultaneous_claims_still_end_with_one_master() {
        // Force a collision: both listen exactly as long.
        let cfg = ElectionConfig {
            listen_min: 100,
            listen_max: 100,
            master_lost: 200,
        };
        let mut a = Election::new(NodeId(4), cfg, 1, 0);
        let mut b = Election::new(NodeId(2), cfg, 2, 0);
        assert_eq!(a.on_tick(100), Some(RoleChange::BecomeMaster));
        assert_eq!(b.on_tick(100), Some(RoleChange::BecomeMaster));
        assert_eq!(
            a.on_heard_master(NodeId(2), 105),
            Some(RoleChange::BecomeSlave { master: NodeId(2) })
        );
        assert_eq!(b.on_heard_master(NodeId(4), 105), None);
        assert_eq!(b.role(), ElectedRole::Master);
        assert_eq!(a.counters.step_downs, 1);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any set of distinct terminals that all hear each other, started at any times:
        /// once the last has listened its longest and one master-lost interval has passed,
        /// there is exactly one master and it has the lowest ID of those that claimed.
        #[test]
        fn a_connected_group_always_settles_on_one_master(
            ids in proptest::collection::btree_set(0u8..=255, 2..7),
            starts in proptest::collection::vec(0u64..300, 7),
            seed in any::<u64>(),
        ) {
            let cfg = ElectionConfig::default();
            let ids: Vec<NodeId> = ids.into_iter().map(NodeId).collect();
            let mut nodes: Vec<Option<Election>> = vec![None; ids.len()];
            let end = 300 + cfg.listen_max + cfg.master_lost + 50;
            for now in 0..end {
                for (i, id) in ids.iter().enumerate() {
                    if now == starts[i] {
                        nodes[i] = Some(Election::new(*id, cfg, seed, now));
                    }
                }
                let masters: Vec<NodeId> = nodes.iter().flatten()
                    .filter(|e| e.role() == ElectedRole::Master).map(Election::me).collect();
                for e in nodes.iter_mut().flatten() {
                    if now % 5 == 0 {
                        for m in &masters {
                            e.on_heard_master(*m, now);
                        }
                    }
                    e.on_tick(now);
                }
            }
            let masters: Vec<NodeId> = nodes.iter().flatten()
                .filter(|e| e.role() == ElectedRole::Master).map(Election::me).collect();
            prop_assert_eq!(masters.len(), 1, "{:?}", masters);
            for e in nodes.iter().flatten() {
                if e.me() != masters[0] {
                    prop_assert_eq!(e.role(), ElectedRole::Slave { master: masters[0], last_heard: match e.role() { ElectedRole::Slave { last_heard, .. } => last_heard, _ => 0 } });
                }
            }
        }
    }
}
