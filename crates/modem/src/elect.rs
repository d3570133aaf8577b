//! Auto mode (Control `workmode` 3): the pure glue between the MAC's [`Election`] machine
//! and the modem shell. It says what the shell must do when a cell search finds a master,
//! when a slave decodes its master, when a master's background probe hears another master,
//! and when time passes; the shell only builds cores, runs searchers and transmits.
//!
//! Identity on the air: an elected master transmits with **PCI = its node ID** (0..=255 are
//! valid PCIs), so a cell search that finds a master also names it — the election needs the
//! master's node ID before anything is decoded, and a slave adopts the cell's PCI anyway.
//!
//! Two masters: a transmitting master cannot decode a foreign master on its own grid, but
//! the air never returns a radio's own TX, so its RX holds only the others: every
//! [`PROBE_PERIOD`] subframes it runs one cell search over its RX ("probe"). A probe hit
//! with a foreign PCI, confirmed by a second hit with the same PCI and frame timing, is a
//! master heard; the election then steps the higher node ID down to a slave of the lower,
//! synchronised to the timing the probe found.
//!
//! Time is the radio's subframe count (radio sample / samples per subframe): the same
//! clock in every role, advanced by RX only.

use ferry_mac::election::{ElectedRole, Election, ElectionConfig, RoleChange};
use ferry_mac::NodeId;

use crate::proto::{ElectedRoleName, ElectionStatus};

/// Subframes between the starts of a master's background probes (a probe window is the
/// cell search's `search_half_frames` × 5 ms).
pub const PROBE_PERIOD: u64 = 100;

/// Frame-timing tolerance (samples) for two search hits to name the same master.
const AGREE_SAMPLES: u64 = 4;

/// The PCI an elected master transmits with.
pub fn pci_of(node: NodeId) -> u16 {
    u16::from(node.0)
}

/// The master a PCI names (`None`: not an auto-mode master, PCI above 255).
pub fn node_of_pci(pci: u16) -> Option<NodeId> {
    u8::try_from(pci).ok().map(NodeId)
}

/// What the probe or the search found: PCI and frame start (radio sample mod one frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The cell's PCI.
    pub pci: u16,
    /// Frame start, radio sample modulo one frame.
    pub offset: u64,
}

/// One auto-mode terminal.
#[derive(Debug, Clone)]
pub struct Auto {
    election: Election,
    frame: u64,
    /// A probe hit awaiting confirmation by the next probe.
    candidate: Option<Hit>,
    next_probe: u64,
    /// Subframe of the last role change.
    pub last_change: Option<u64>,
}

impl Auto {
    /// A terminal that starts listening at subframe `now` (`frame`: samples per frame).
    pub fn new(me: NodeId, cfg: ElectionConfig, seed: u64, now: u64, frame: u64) -> Auto {
        Auto::with(Election::new(me, cfg, seed, now), frame, now)
    }

    /// A migrated terminal that had elected `master` (itself: it goes on as master;
    /// another: its slave, heard at `now`); no election.
    pub fn resume(
        me: NodeId,
        master: NodeId,
        cfg: ElectionConfig,
        seed: u64,
        now: u64,
        frame: u64,
    ) -> Auto {
        let e = if master == me {
            Election::resume_master(me, cfg, seed)
        } else {
            Election::resume_slave(me, master, cfg, seed, now)
        };
        Auto::with(e, frame, now)
    }

    fn with(election: Election, frame: u64, now: u64) -> Auto {
        Auto {
            election,
            frame: frame.max(1),
            candidate: None,
            next_probe: now + PROBE_PERIOD,
            last_change: None,
        }
    }

    /// The election's role.
    pub fn role(&self) -> ElectedRole {
        self.election.role()
    }

    /// The elected master's node ID (own when master; `None` while listening).
    pub fn master(&self) -> Option<NodeId> {
        match self.election.role() {
            ElectedRole::Master => Some(self.election.me()),
            ElectedRole::Slave { master, .. } => Some(master),
            ElectedRole::Listening { .. } => None,
        }
    }

    fn note(&mut self, c: Option<RoleChange>, now: u64) -> Option<RoleChange> {
        if c.is_some() {
            self.last_change = Some(now);
            self.candidate = None;
            self.next_probe = now + PROBE_PERIOD;
        }
        c
    }

    /// Subframe `now` has passed (claims and lost masters).
    pub fn on_tick(&mut self, now: u64) -> Option<RoleChange> {
        let c = self.election.on_tick(now);
        self.note(c, now)
    }

    /// A listening terminal's cell search found (and confirmed) a cell.
    pub fn on_cell_found(&mut self, pci: u16, now: u64) -> Option<RoleChange> {
        let from = node_of_pci(pci)?;
        let c = self.election.on_heard_master(from, now);
        self.note(c, now)
    }

    /// A slave decoded a subframe only its master sends (D or S).
    pub fn on_master_decoded(&mut self, now: u64) {
        if let ElectedRole::Slave { master, .. } = self.election.role() {
            let _ = self.election.on_heard_master(master, now);
        }
    }

    /// Whether a master should start a probe window now.
    pub fn probe_due(&self, now: u64) -> bool {
        self.election.role() == ElectedRole::Master && now >= self.next_probe
    }

    /// A master's probe ended at `now` with `hit` (or nothing). Two probes in a row must
    /// agree on the PCI and the frame timing before it counts as a master heard.
    pub fn on_probe(&mut self, hit: Option<Hit>, now: u64) -> Option<RoleChange> {
        self.next_probe = now + PROBE_PERIOD;
        let hit = hit.filter(|h| node_of_pci(h.pci).is_some_and(|n| n != self.election.me()));
        let Some(h) = hit else {
            self.candidate = None;
            return None;
        };
        let agree = self.candidate.is_some_and(|c| {
            let d = c.offset.abs_diff(h.offset) % self.frame;
            c.pci == h.pci && d.min(self.frame - d) <= AGREE_SAMPLES
        });
        if !agree {
            self.candidate = Some(h);
            return None;
        }
        self.candidate = None;
        let from = node_of_pci(h.pci)?;
        let c = self.election.on_heard_master(from, now);
        self.note(c, now)
    }

    /// For `status`.
    pub fn status(&self, last_change_ms: Option<f64>) -> ElectionStatus {
        let k = self.election.counters;
        ElectionStatus {
            role: match self.election.role() {
                ElectedRole::Listening { .. } => ElectedRoleName::Listening,
                ElectedRole::Slave { .. } => ElectedRoleName::Slave,
                ElectedRole::Master => ElectedRoleName::Master,
            },
            master: self.master().map(|n| u16::from(n.0)),
            claims: k.claims,
            step_downs: k.step_downs,
            masters_lost: k.masters_lost,
            last_change_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 19_200;

    fn cfg() -> ElectionConfig {
        ElectionConfig::default()
    }

    #[test]
    fn a_lone_terminal_claims_after_its_backoff_and_then_probes() {
        let mut a = Auto::new(NodeId(9), cfg(), 1, 0, FRAME);
        let mut claimed = None;
        for now in 1..=cfg().listen_max + 1 {
            if a.on_tick(now) == Some(RoleChange::BecomeMaster) {
                claimed = Some(now);
            }
            assert!(!a.probe_due(now) || claimed.is_some());
        }
        let at = claimed.expect("claimed");
        assert!((cfg().listen_min..=cfg().listen_max).contains(&at), "{at}");
        assert_eq!(a.master(), Some(NodeId(9)));
        assert_eq!(a.last_change, Some(at));
        assert!(!a.probe_due(at + PROBE_PERIOD - 1));
        assert!(a.probe_due(at + PROBE_PERIOD));
        assert_eq!(a.status(None).claims, 1);
    }

    #[test]
    fn a_found_cell_names_the_master_and_decodes_keep_it() {
        let mut a = Auto::new(NodeId(8), cfg(), 1, 0, FRAME);
        assert_eq!(
            a.on_cell_found(9, 100),
            Some(RoleChange::BecomeSlave { master: NodeId(9) })
        );
        // A PCI that is no node ID is no auto-mode master.
        let mut b = Auto::new(NodeId(8), cfg(), 1, 0, FRAME);
        assert_eq!(b.on_cell_found(301, 100), None);
        // Decoding the master's subframes keeps it; silence loses it.
        for now in (101..1_000).step_by(5) {
            a.on_master_decoded(now);
            assert_eq!(a.on_tick(now), None);
        }
        let mut lost = None;
        for now in 1_000..1_500 {
            if let Some(c) = a.on_tick(now) {
                lost = Some((now, c));
                break;
            }
        }
        let (at, c) = lost.expect("master lost");
        assert_eq!(c, RoleChange::Listen);
        assert!(at > 995 + cfg().master_lost, "{at}");
        assert_eq!(a.master(), None);
        assert_eq!(a.status(None).masters_lost, 1);
    }

    #[test]
    fn a_probe_must_be_confirmed_and_only_a_lower_master_wins() {
        let mut m = Auto::resume(NodeId(9), NodeId(9), cfg(), 1, 0, FRAME);
        assert!(m.probe_due(PROBE_PERIOD));
        // Its own PCI is never a foreign master; nothing resets the candidate.
        let own = Hit { pci: 9, offset: 10 };
        assert_eq!(m.on_probe(Some(own), 100), None);
        assert_eq!(m.on_probe(Some(own), 200), None);
        // A higher master, confirmed: ignored (it will step down).
        let hi = Hit {
            pci: 12,
            offset: 500,
        };
        assert_eq!(m.on_probe(Some(hi), 300), None);
        assert_eq!(m.on_probe(Some(hi), 400), None);
        assert_eq!(m.role(), ElectedRole::Master);
        // A lower one, seen once then lost: not confirmed.
        let lo = Hit {
            pci: 3,
            offset: FRAME - 2,
        };
        assert_eq!(m.on_probe(Some(lo), 500), None);
        assert_eq!(m.on_probe(None, 600), None);
        assert_eq!(m.on_probe(Some(lo), 700), None);
        // Confirmed (timing within a few samples, across the frame wrap): step down.
        let again = Hit { pci: 3, offset: 1 };
        assert_eq!(
            m.on_probe(Some(again), 800),
            Some(RoleChange::BecomeSlave { master: NodeId(3) })
        );
        assert_eq!(m.status(None).step_downs, 1);
        assert_eq!(m.master(), Some(NodeId(3)));
        assert!(!m.probe_due(10_000), "a slave does not probe");
    }

    #[test]
    fn a_migrated_terminal_keeps_its_role() {
        let mut m = Auto::resume(NodeId(9), NodeId(9), cfg(), 1, 50_000, FRAME);
        let mut s = Auto::resume(NodeId(8), NodeId(9), cfg(), 1, 50_000, FRAME);
        for now in 50_001..52_000 {
            if now % 5 == 0 {
                s.on_master_decoded(now);
            }
            assert_eq!(m.on_tick(now), None);
            assert_eq!(s.on_tick(now), None);
        }
        assert_eq!(m.master(), Some(NodeId(9)));
        assert_eq!(s.master(), Some(NodeId(9)));
        assert_eq!(m.status(None).claims, 0);
    }

    /// Three terminals on a virtual air driven through the glue as the shell drives it:
    /// listeners' searches find the master, slaves decode it, masters probe each other.
    #[test]
    fn three_terminals_elect_then_reelect_after_the_master_dies() {
        for seed in 0..30 {
            let ids = [8u8, 9, 10];
            let mut t: Vec<Auto> = ids
                .iter()
                .map(|&i| Auto::new(NodeId(i), cfg(), seed, 0, FRAME))
                .collect();
            let mut alive = [true; 3];
            let step = |t: &mut Vec<Auto>, alive: &[bool; 3], now: u64| {
                let masters: Vec<NodeId> = (0..3)
                    .filter(|&j| alive[j] && t[j].role() == ElectedRole::Master)
                    .map(|j| NodeId(ids[j]))
                    .collect();
                for (i, a) in t.iter_mut().enumerate() {
                    if !alive[i] {
                        continue;
                    }
                    // A search or a probe takes 20 ms; decodes every D subframe.
                    match a.role() {
                        ElectedRole::Listening { .. } if now % 20 == 0 => {
                            if let Some(m) = masters.first() {
                                a.on_cell_found(pci_of(*m), now);
                            }
                        }
                        ElectedRole::Slave { master, .. } if masters.contains(&master) => {
                            a.on_master_decoded(now)
                        }
                        ElectedRole::Master if a.probe_due(now) => {
                            let other = masters.iter().find(|m| Some(**m) != a.master());
                            let hit = other.map(|m| Hit {
                                pci: pci_of(*m),
                                offset: 77,
                            });
                            a.on_probe(hit, now + 20);
                        }
                        _ => {}
                    }
                    a.on_tick(now);
                }
            };
            for now in 1..1_500 {
                step(&mut t, &alive, now);
            }
            let masters: Vec<usize> = (0..3)
                .filter(|&i| t[i].role() == ElectedRole::Master)
                .collect();
            assert_eq!(masters.len(), 1, "seed {seed}");
            let m = masters[0];
            for a in &t {
                assert_eq!(a.master(), Some(NodeId(ids[m])), "seed {seed}");
            }
            alive[m] = false;
            for now in 1_500..3_000 {
                step(&mut t, &alive, now);
            }
            let survivors: Vec<usize> = (0..3).filter(|&i| alive[i]).collect();
            let masters: Vec<usize> = survivors
                .iter()
                .copied()
                .filter(|&i| t[i].role() == ElectedRole::Master)
                .collect();
            assert_eq!(masters.len(), 1, "seed {seed}: re-elected");
            for &i in &survivors {
                assert_eq!(t[i].master(), Some(NodeId(ids[masters[0]])));
            }
        }
    }
}
