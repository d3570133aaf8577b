//! The subframe schedule: which direction (master→slaves or slaves→master) and carrier each
//! absolute subframe serves under TDD configurations 0–6 or FDD, the grant timing that tells
//! a slave which uplink subframes are its own, and the base station's uplink grant scheduler.
//!
//! D2D mapping: the master (or base station) transmits in downlink (`D`) subframes, slaves in
//! uplink (`U`) subframes. Special (`S`) subframes carry the master's sync in DwPTS and the
//! guard period; no transport block is sent in them. FDD is two carriers: carrier 0 carries
//! master→slave in every subframe, carrier 1 slave→master in every subframe.

use serde::{Deserialize, Serialize};

use crate::addr::Rnti;
use crate::error::ConfigError;

/// The role of one subframe of a TDD frame (TS 36.211 table 4.2-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubframeKind {
    /// Master → slaves.
    Downlink,
    /// Slaves → master.
    Uplink,
    /// DwPTS (sync) + guard + UpPTS: no transport block.
    Special,
}

/// Who speaks: the master/base station or a slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Master (or base station) → slaves.
    Down,
    /// Slave → master (and any other terminal that hears it: D2D).
    Up,
}

/// Duplexing: one carrier shared in time, or two carriers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Duplex {
    /// One carrier, the frame pattern decides the direction of each subframe.
    Tdd([SubframeKind; 10]),
    /// Carrier 0 master→slaves and carrier 1 slaves→master, both in every subframe.
    Fdd,
}

/// The transmission opportunities of one subframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opportunities {
    /// Carrier on which the master may transmit a TB, if any.
    pub down: Option<u8>,
    /// Carrier on which a slave may transmit a TB, if any.
    pub up: Option<u8>,
}

/// Carrier index used for master→slaves (TDD: the only carrier).
pub const CARRIER_DOWN: u8 = 0;
/// Carrier index used for slaves→master in FDD.
pub const CARRIER_UP_FDD: u8 = 1;
/// Default subframes between a grant-carrying downlink TB and the first uplink subframe it
/// controls (LTE's k = 4): covers the slave's decode latency plus its transmit lead.
pub const DEFAULT_GRANT_DELAY: u64 = 4;

/// TS 36.211 table 4.2-2: uplink-downlink configurations (the Control field `DLULAssign`).
pub fn tdd_pattern(config: u8) -> Result<[SubframeKind; 10], ConfigError> {
    use SubframeKind::{Downlink as D, Special as S, Uplink as U};
    Ok(match config {
        0 => [D, S, U, U, U, D, S, U, U, U],
        1 => [D, S, U, U, D, D, S, U, U, D],
        2 => [D, S, U, D, D, D, S, U, D, D],
        3 => [D, S, U, U, U, D, D, D, D, D],
        4 => [D, S, U, U, D, D, D, D, D, D],
        5 => [D, S, U, D, D, D, D, D, D, D],
        6 => [D, S, U, U, U, D, S, U, U, D],
        other => return Err(ConfigError::UnknownTddConfig(other)),
    })
}

/// The schedule of a cell: a pure function of the absolute subframe number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    duplex: Duplex,
    grant_delay: u64,
}

impl Schedule {
    /// TDD with one of the standard configurations 0–6.
    pub fn tdd(config: u8) -> Result<Self, ConfigError> {
        Self::from_pattern(tdd_pattern(config)?)
    }

    /// TDD with a frame pattern supplied by the PHY numerology; it must contain at least one
    /// downlink and one uplink subframe.
    pub fn from_pattern(pattern: [SubframeKind; 10]) -> Result<Self, ConfigError> {
        if !pattern.contains(&SubframeKind::Downlink) {
            return Err(ConfigError::NoDownlink);
        }
        if !pattern.contains(&SubframeKind::Uplink) {
            return Err(ConfigError::NoUplink);
        }
        Ok(Schedule {
            duplex: Duplex::Tdd(pattern),
            grant_delay: DEFAULT_GRANT_DELAY,
        })
    }

    /// FDD on two carriers.
    pub fn fdd() -> Self {
        Schedule {
            duplex: Duplex::Fdd,
            grant_delay: DEFAULT_GRANT_DELAY,
        }
    }

    /// Change the grant delay (1–20 subframes); it must exceed the slave's decode latency plus
    /// how many subframes ahead the modem prepares transmissions.
    pub fn with_grant_delay(mut self, k: u64) -> Result<Self, ConfigError> {
        if !(1..=20).contains(&k) {
            return Err(ConfigError::Invalid {
                field: "grant_delay",
                value: k.to_string(),
                allowed: "1-20 subframes",
            });
        }
        self.grant_delay = k;
        Ok(self)
    }

    /// Re-check a schedule that did not come through a constructor (e.g. deserialized).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Duplex::Tdd(p) = self.duplex {
            Self::from_pattern(p)?;
        }
        Self::fdd().with_grant_delay(self.grant_delay).map(|_| ())
    }

    /// The duplexing mode.
    pub fn duplex(&self) -> Duplex {
        self.duplex
    }

    /// The grant delay in subframes.
    pub fn grant_delay(&self) -> u64 {
        self.grant_delay
    }

    /// The TDD kind of subframe `n` (`None` under FDD, where every subframe is both).
    pub fn kind(&self, n: u64) -> Option<SubframeKind> {
        match self.duplex {
            Duplex::Tdd(p) => p.get((n % 10) as usize).copied(),
            Duplex::Fdd => None,
        }
    }

    /// Who may transmit in subframe `n`, and on which carrier.
    pub fn opportunities(&self, n: u64) -> Opportunities {
        match self.kind(n) {
            None => Opportunities {
                down: Some(CARRIER_DOWN),
                up: Some(CARRIER_UP_FDD),
            },
            Some(SubframeKind::Downlink) => Opportunities {
                down: Some(CARRIER_DOWN),
                up: None,
            },
            Some(SubframeKind::Uplink) => Opportunities {
                down: None,
                up: Some(CARRIER_DOWN),
            },
            Some(SubframeKind::Special) => Opportunities {
                down: None,
                up: None,
            },
        }
    }

    /// The carrier for a direction, if subframe `n` offers that direction.
    pub fn carrier(&self, n: u64, dir: Direction) -> Option<u8> {
        let o = self.opportunities(n);
        match dir {
            Direction::Down => o.down,
            Direction::Up => o.up,
        }
    }

    /// For an uplink subframe `m`: the downlink subframe whose grant controls it, i.e. the
    /// latest downlink subframe `d <= m - grant_delay`.
    pub fn grant_source(&self, m: u64) -> Option<u64> {
        self.opportunities(m).up?;
        let last = m.checked_sub(self.grant_delay)?;
        // Every TDD pattern has a downlink subframe in any 10 consecutive ones.
        (0..10u64)
            .filter_map(|back| last.checked_sub(back))
            .find(|&d| self.opportunities(d).down.is_some())
    }

    /// The uplink subframes whose grant the downlink subframe `d` carries (empty if `d` is
    /// not a downlink subframe). Ascending.
    pub fn granted_by(&self, d: u64) -> Vec<u64> {
        if self.opportunities(d).down.is_none() {
            return Vec::new();
        }
        let start = d.saturating_add(self.grant_delay);
        (start..start.saturating_add(10))
            .filter(|&m| self.grant_source(m) == Some(d))
            .collect()
    }
}

/// The base station's uplink scheduler: which slave gets the uplink subframes controlled by
/// each grant. Round-robin over slaves that reported queued data; every `poll_every`-th
/// grant polls round-robin over all slaves so an idle slave can report new data; every
/// `contention_every`-th grant (and every grant while no slave is known) is a contention
/// grant ([`Rnti::BROADCAST`]) in which slaves the base station does not know yet announce
/// themselves — the role LTE's random access plays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkScheduler {
    slaves: Vec<(Rnti, u16)>,
    rr: usize,
    poll_rr: usize,
    issued: u64,
    poll_every: u64,
    contention_every: u64,
}

impl UplinkScheduler {
    /// A scheduler for the given slaves, polling every `poll_every` (≥ 1) grants and opening
    /// a contention grant every `contention_every` grants (0: only while no slave is known).
    pub fn new(slaves: &[Rnti], poll_every: u64, contention_every: u64) -> Self {
        let mut s = UplinkScheduler {
            slaves: Vec::new(),
            rr: 0,
            poll_rr: 0,
            issued: 0,
            poll_every: poll_every.max(1),
            contention_every,
        };
        for &r in slaves {
            s.add_slave(r);
        }
        s
    }

    /// Add a slave (idempotent); it starts with no reported backlog.
    pub fn add_slave(&mut self, rnti: Rnti) {
        if rnti != Rnti::BROADCAST
            && rnti != Rnti::NONE
            && !self.slaves.iter().any(|(r, _)| *r == rnti)
        {
            self.slaves.push((rnti, 0));
        }
    }

    /// Whether there is anyone to grant to.
    pub fn has_slaves(&self) -> bool {
        !self.slaves.is_empty()
    }

    /// The slaves, in scheduling order.
    pub fn slaves(&self) -> impl Iterator<Item = Rnti> + '_ {
        self.slaves.iter().map(|(r, _)| *r)
    }

    /// Record the backlog a slave reported in its MAC header (unknown slaves are added).
    pub fn report_backlog(&mut self, rnti: Rnti, backlog: u16) {
        self.add_slave(rnti);
        if let Some(e) = self.slaves.iter_mut().find(|(r, _)| *r == rnti) {
            e.1 = backlog;
        }
    }

    /// The slave to grant next, or [`Rnti::BROADCAST`] for a contention grant.
    pub fn next_grant(&mut self) -> Rnti {
        self.issued += 1;
        let n = self.slaves.len();
        if n == 0 || (self.contention_every > 0 && self.issued % self.contention_every == 0) {
            return Rnti::BROADCAST;
        }
        let any_backlog = self.slaves.iter().any(|(_, b)| *b > 0);
        if !any_backlog || self.issued % self.poll_every == 0 {
            let i = self.poll_rr % n;
            self.poll_rr = (i + 1) % n;
            return self.slaves.get(i).map_or(Rnti::BROADCAST, |(r, _)| *r);
        }
        let Some(i) = (0..n)
            .map(|k| (self.rr + k) % n)
            .find(|&i| self.slaves.get(i).is_some_and(|(_, b)| *b > 0))
        else {
            return Rnti::BROADCAST;
        };
        self.rr = (i + 1) % n;
        self.slaves.get(i).map_or(Rnti::BROADCAST, |(r, _)| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(p: &[SubframeKind; 10]) -> (usize, usize, usize) {
        let c = |k| p.iter().filter(|&&x| x == k).count();
        (
            c(SubframeKind::Downlink),
            c(SubframeKind::Uplink),
            c(SubframeKind::Special),
        )
    }

    #[test]
    fn tdd_table_matches_36_211() {
        // (D, U, S) counts per frame for configs 0..6 from TS 36.211 table 4.2-2.
        let expect = [
            (2, 6, 2),
            (4, 4, 2),
            (6, 2, 2),
            (6, 3, 1),
            (7, 2, 1),
            (8, 1, 1),
            (3, 5, 2),
        ];
        for (cfg, e) in expect.iter().enumerate() {
            let p = tdd_pattern(cfg as u8).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(counts(&p), *e, "config {cfg}");
            assert_eq!(p[0], SubframeKind::Downlink);
            assert_eq!(p[1], SubframeKind::Special);
            assert_eq!(p[2], SubframeKind::Uplink);
        }
        assert_eq!(tdd_pattern(7), Err(ConfigError::UnknownTddConfig(7)));
    }

    #[test]
    fn every_tdd_config_maps_directions_and_grants() {
        for cfg in 0..=6u8 {
            let s = Schedule::tdd(cfg).unwrap_or_else(|e| panic!("{e}"));
            let p = tdd_pattern(cfg).unwrap_or_else(|e| panic!("{e}"));
            let mut granted = std::collections::BTreeMap::new();
            for n in 0..200u64 {
                let o = s.opportunities(n);
                match p[(n % 10) as usize] {
                    SubframeKind::Downlink => assert_eq!((o.down, o.up), (Some(0), None)),
                    SubframeKind::Uplink => assert_eq!((o.down, o.up), (None, Some(0))),
                    SubframeKind::Special => assert_eq!((o.down, o.up), (None, None)),
                }
                for m in s.granted_by(n) {
                    assert!(
                        granted.insert(m, n).is_none(),
                        "cfg {cfg}: {m} granted twice"
                    );
                }
            }
            // Every uplink subframe after warm-up is controlled by exactly one earlier
            // downlink subframe at least grant_delay before it.
            for m in 20..190u64 {
                if s.opportunities(m).up.is_some() {
                    let d = granted.get(&m).copied();
                    assert_eq!(d, s.grant_source(m), "cfg {cfg} m {m}");
                    let d = d.unwrap_or_else(|| panic!("cfg {cfg}: uplink {m} never granted"));
                    assert!(d + s.grant_delay() <= m);
                    assert!(s.opportunities(d).down.is_some());
                } else {
                    assert!(!granted.contains_key(&m));
                }
            }
        }
    }

    #[test]
    fn tdd_config0_grant_mapping() {
        // D S U U U D S U U U with k = 4: D0 controls U4, U7, U8; D5 controls U9, U12, U13.
        let s = Schedule::tdd(0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.granted_by(10), vec![14, 17, 18]);
        assert_eq!(s.granted_by(15), vec![19, 22, 23]);
        assert_eq!(s.granted_by(11), Vec::<u64>::new());
    }

    #[test]
    fn fdd_every_subframe_both_directions() {
        let s = Schedule::fdd();
        for n in 0..50u64 {
            assert_eq!(
                s.opportunities(n),
                Opportunities {
                    down: Some(0),
                    up: Some(1)
                }
            );
            assert_eq!(s.kind(n), None);
            if n >= 4 {
                assert_eq!(s.grant_source(n), Some(n - 4));
                assert_eq!(s.granted_by(n - 4), vec![n]);
            }
        }
        assert_eq!(s.grant_source(3), None);
        let s2 = s.with_grant_delay(2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s2.granted_by(7), vec![9]);
        assert!(s.with_grant_delay(0).is_err());
        assert!(s.with_grant_delay(21).is_err());
    }

    #[test]
    fn pattern_validation() {
        use SubframeKind::*;
        assert_eq!(
            Schedule::from_pattern([Uplink; 10]),
            Err(ConfigError::NoDownlink)
        );
        assert_eq!(
            Schedule::from_pattern([Downlink; 10]),
            Err(ConfigError::NoUplink)
        );
    }

    #[test]
    fn scheduler_round_robin_over_backlogged_with_polls() {
        let (a, b, c) = (Rnti(0x101), Rnti(0x102), Rnti(0x103));
        let mut u = UplinkScheduler::new(&[a, b, c], 4, 0);
        // Nobody reported data: pure polling round robin.
        let g: Vec<_> = (0..6).map(|_| u.next_grant()).collect();
        assert_eq!(g, vec![a, b, c, a, b, c]);
        // Only b and c have data: they alternate, every 4th grant polls.
        u.report_backlog(b, 5);
        u.report_backlog(c, 1);
        let g: Vec<_> = (0..8).map(|_| u.next_grant()).collect();
        // Grants 7..14; the 8th and 12th are polls (a, then b).
        assert_eq!(g, vec![b, a, c, b, c, b, b, c]);
        // Without slaves every grant is a contention grant; with contention_every = 5 every
        // fifth grant is one.
        let mut e = UplinkScheduler::new(&[], 4, 0);
        assert_eq!(e.next_grant(), Rnti::BROADCAST);
        let mut k = UplinkScheduler::new(&[a], 4, 5);
        let g: Vec<_> = (0..10).map(|_| k.next_grant()).collect();
        let bc: Vec<usize> = (0..10).filter(|&i| g[i] == Rnti::BROADCAST).collect();
        assert_eq!(bc, vec![4, 9]);
    }
}
