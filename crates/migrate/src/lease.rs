//! The agent's lease on what a migration leaves half-done, sans-IO (time passed in).
//!
//! A make-before-break migration is driven by one controller (`ferry ctl`, `ferry pool`)
//! talking to two agents and the radio. SIGINT or SIGTERM make the controller finish or undo
//! the migration before it exits; `kill -9` (or a crash, or a host losing its network) does
//! not. Two leftovers are then possible, and nothing but the agent that owns them can stop
//! them:
//!
//! - **an unarmed shadow**: the destination's modem, started warm, receiving the radio's
//!   RX copy, never armed (killed in an operator hold, or between start and arm);
//! - **a retired source**: the source's modem, released at T, past its fallback grace (the
//!   radio no longer names it as fallback), never cleaned.
//!
//! Both serve nobody, hold a TUN, CPU and a radio stream, and block the next migration
//! (`start_d2d: D2D already running`). A controller renews the lease with every request it
//! sends to the agent; a silent controller holding a migration (`--pause-after`) sends
//! `status` every [`KEEPALIVE_MS`]. The agent stops a leftover once it has been one for a
//! whole lease with no request from any controller: the condition is observed
//! continuously, and the clock starts at the later of its first observation and the last
//! renewal. A modem the radio serves from, switches to, protects with or may fall back to
//! is never a leftover, nor is one whose radio could not be asked.

use crate::machine::Millis;
use crate::protocol::ModemMode;

/// Default lease, ms: a controller silent this long towards the agent is taken for dead.
pub const LEASE_MS: Millis = 5_000;

/// How often a controller holding a migration renews its leases, ms (a fifth of the
/// default lease: four renewals may be lost before a lease runs out).
pub const KEEPALIVE_MS: Millis = 1_000;

/// The role the radio gives a host's modem (the first of these that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadioRole {
    /// It serves the task (`linked`).
    Primary,
    /// A timed switch will make it primary.
    SwitchTarget,
    /// RX is copied to it (a make-before-break destination, warm).
    Shadow,
    /// It protects the task (hot standby).
    Standby,
    /// The radio may hand the task back to it (the previous primary, within its grace).
    Fallback,
}

/// What the agent sees of its modem at one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The modem's cutover state.
    pub mode: ModemMode,
    /// Its role at the radio (`None`: no role at all).
    pub role: Option<RadioRole>,
}

/// The two leftovers a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// A warm destination nobody armed (radio role shadow or none).
    UnarmedShadow,
    /// A released or fenced modem the radio no longer keeps as fallback.
    RetiredSource,
}

impl Leftover {
    /// The leftover `o` is, if any.
    pub fn of(o: Observation) -> Option<Leftover> {
        use ModemMode as M;
        match (o.mode, o.role) {
            (M::Shadow | M::TakeoverArmed, None | Some(RadioRole::Shadow)) => {
                Some(Leftover::UnarmedShadow)
            }
            (M::Released | M::Fenced, None) => Some(Leftover::RetiredSource),
            _ => None,
        }
    }

    /// What it is, for the agent's log.
    pub fn describe(self) -> &'static str {
        match self {
            Leftover::UnarmedShadow => "a warm destination no controller armed",
            Leftover::RetiredSource => {
                "a released source past its fallback grace no controller cleaned"
            }
        }
    }
}

/// The lease's verdict at one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Keep,
    /// Stop the modem; with `unshadow`, also end the radio's RX copy to it.
    Stop {
        /// What it was.
        leftover: Leftover,
        /// The radio still copies RX to it.
        unshadow: bool,
        /// For the log: what, and for how long nobody claimed it.
        why: String,
    },
}

/// One agent's lease (see the module documentation).
#[derive(Debug, Clone)]
pub struct Lease {
    lease_ms: Millis,
    renewed: Millis,
    since: Option<(Leftover, Millis)>,
}

impl Lease {
    /// A lease of `lease_ms` (0 disables it), renewed at `now`.
    pub fn new(lease_ms: Millis, now: Millis) -> Lease {
        Lease {
            lease_ms,
            renewed: now,
            since: None,
        }
    }

    /// A controller spoke to the agent at `now`.
    pub fn renew(&mut self, now: Millis) {
        self.renewed = self.renewed.max(now);
    }

    /// Whether the agent should look at its modem at `now`: only a controller silent for a
    /// fifth of the lease leaves anything to judge (a migration in flight is left alone).
    pub fn due(&self, now: Millis) -> bool {
        self.lease_ms > 0 && now.saturating_sub(self.renewed) >= self.lease_ms / 5
    }

    /// What the agent saw at `now`: `None` when no modem runs or its radio could not be
    /// asked (an unknown is never judged; the observation starts over).
    pub fn observe(&mut self, now: Millis, seen: Option<Observation>) -> Verdict {
        let Some(o) = seen else {
            self.since = None;
            return Verdict::Keep;
        };
        let Some(leftover) = Leftover::of(o) else {
            self.since = None;
            return Verdict::Keep;
        };
        let first = match self.since {
            Some((l, at)) if l == leftover => at,
            _ => {
                self.since = Some((leftover, now));
                now
            }
        };
        let from = first.max(self.renewed);
        if self.lease_ms == 0 || now.saturating_sub(from) < self.lease_ms {
            return Verdict::Keep;
        }
        self.since = None;
        Verdict::Stop {
            leftover,
            unshadow: o.role == Some(RadioRole::Shadow),
            why: format!(
                "{} (modem {:?}, radio role {}): no controller for {} ms (lease {} ms)",
                leftover.describe(),
                o.mode,
                o.role
                    .map_or_else(|| "none".to_string(), |r| format!("{r:?}")),
                now.saturating_sub(self.renewed),
                self.lease_ms
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const fn obs(mode: ModemMode, role: Option<RadioRole>) -> Observation {
        Observation { mode, role }
    }

    const SHADOW: Observation = obs(ModemMode::Shadow, Some(RadioRole::Shadow));
    const RETIRED: Observation = obs(ModemMode::Released, None);

    /// Poll every `step` ms from `from` to `to` with `seen`; the first stop, if any.
    fn run(
        l: &mut Lease,
        from: Millis,
        to: Millis,
        step: Millis,
        seen: Observation,
    ) -> Option<(Millis, Verdict)> {
        let mut t = from;
        while t <= to {
            if l.due(t) {
                let v = l.observe(t, Some(seen));
                if v != Verdict::Keep {
                    return Some((t, v));
                }
            }
            t += step;
        }
        None
    }

    #[test]
    fn an_unarmed_shadow_is_stopped_one_lease_after_the_controller_fell_silent() {
        let mut l = Lease::new(5_000, 0);
        l.renew(10_000); // the controller's last request (then kill -9)
        let (at, v) = run(&mut l, 10_000, 30_000, 250, SHADOW).expect("stopped");
        // Looked at from a fifth of the lease of silence on, stopped a lease after that.
        assert_eq!(at, 10_000 + 1_000 + 5_000);
        let Verdict::Stop {
            leftover,
            unshadow,
            why,
        } = v
        else {
            unreachable!()
        };
        assert_eq!(leftover, Leftover::UnarmedShadow);
        assert!(unshadow, "the radio still copies RX to it");
        assert!(why.contains("no controller for 6000 ms"), "{why}");
    }

    #[test]
    fn a_controller_renewing_during_a_hold_keeps_its_shadow_for_as_long_as_it_holds() {
        let mut l = Lease::new(LEASE_MS, 0);
        let mut t = 0;
        while t < 600_000 {
            if t % KEEPALIVE_MS == 0 {
                l.renew(t);
            }
            if l.due(t) {
                assert_eq!(l.observe(t, Some(SHADOW)), Verdict::Keep, "at {t} ms");
            }
            t += 100;
        }
        // ... and once it stops renewing, one lease later the shadow goes.
        let (at, _) = run(&mut l, t, t + 20_000, 100, SHADOW).expect("stopped");
        assert_eq!(at, 599_000 + LEASE_MS / 5 + LEASE_MS);
    }

    #[test]
    fn a_retired_source_is_stopped_a_lease_after_its_grace_not_during_it() {
        let mut l = Lease::new(5_000, 0);
        l.renew(1_000); // release_at, then the controller dies
                        // Within the grace the radio keeps it as fallback: never judged a leftover.
        let fallback = obs(ModemMode::Released, Some(RadioRole::Fallback));
        assert!(run(&mut l, 1_000, 60_000, 500, fallback).is_none());
        // The grace ends at 60 s: the lease runs from the first retired observation.
        let (at, v) = run(&mut l, 60_000, 90_000, 500, RETIRED).expect("stopped");
        assert_eq!(at, 65_000);
        assert!(matches!(
            v,
            Verdict::Stop {
                leftover: Leftover::RetiredSource,
                unshadow: false,
                ..
            }
        ));
    }

    #[test]
    fn a_request_or_a_changed_state_starts_the_lease_over() {
        let mut l = Lease::new(5_000, 0);
        assert!(run(&mut l, 0, 4_500, 500, SHADOW).is_none());
        l.renew(4_600);
        assert!(run(&mut l, 4_600, 9_500, 500, SHADOW).is_none());
        // Armed and switched (it serves now): not a leftover; the clock is forgotten.
        assert_eq!(
            l.observe(
                9_600,
                Some(obs(ModemMode::Active, Some(RadioRole::Primary)))
            ),
            Verdict::Keep
        );
        assert_eq!(l.observe(9_700, Some(SHADOW)), Verdict::Keep);
        let (at, _) = run(&mut l, 9_700, 20_000, 100, SHADOW).expect("stopped");
        assert_eq!(at, 14_700);
    }

    #[test]
    fn an_unknown_radio_or_no_modem_is_never_judged() {
        let mut l = Lease::new(5_000, 0);
        for t in (1_000..60_000).step_by(1_000) {
            assert_eq!(l.observe(t, None), Verdict::Keep);
        }
        // Observed from 60 s only: stopped at 65 s, not at once.
        assert_eq!(l.observe(60_000, Some(SHADOW)), Verdict::Keep);
        assert!(matches!(
            l.observe(65_000, Some(SHADOW)),
            Verdict::Stop { .. }
        ));
    }

    #[test]
    fn a_disabled_lease_never_stops_anything() {
        let mut l = Lease::new(0, 0);
        assert!(!l.due(1_000_000));
        assert_eq!(l.observe(1_000_000, Some(SHADOW)), Verdict::Keep);
        assert_eq!(l.observe(9_000_000, Some(SHADOW)), Verdict::Keep);
    }

    fn any_mode() -> impl Strategy<Value = ModemMode> {
        prop_oneof![
            Just(ModemMode::Active),
            Just(ModemMode::Shadow),
            Just(ModemMode::TakeoverArmed),
            Just(ModemMode::ReleaseArmed),
            Just(ModemMode::Released),
            Just(ModemMode::Fenced),
        ]
    }

    fn any_role() -> impl Strategy<Value = Option<RadioRole>> {
        prop_oneof![
            Just(None),
            Just(Some(RadioRole::Primary)),
            Just(Some(RadioRole::SwitchTarget)),
            Just(Some(RadioRole::Shadow)),
            Just(Some(RadioRole::Standby)),
            Just(Some(RadioRole::Fallback)),
        ]
    }

    proptest! {
        /// Whatever the agent sees and whenever controllers speak: a modem the radio serves
        /// from, switches to, protects with or may fall back to is never stopped, an active
        /// one never, and nothing is stopped less than a lease after the last request.
        #[test]
        fn nothing_that_serves_or_may_serve_is_ever_stopped(
            polls in proptest::collection::vec((1u64..3_000, any_mode(), any_role(), any::<bool>()), 1..200)
        ) {
            let mut l = Lease::new(LEASE_MS, 0);
            let mut t = 0;
            for (dt, mode, role, request) in polls {
                t += dt;
                if request {
                    l.renew(t);
                    continue;
                }
                let o = obs(mode, role);
                if let Verdict::Stop { leftover, .. } = l.observe(t, Some(o)) {
                    prop_assert_eq!(Some(leftover), Leftover::of(o));
                    prop_assert!(mode != ModemMode::Active && mode != ModemMode::ReleaseArmed);
                    prop_assert!(matches!(role, None | Some(RadioRole::Shadow)));
                    prop_assert!(t >= l.renewed + LEASE_MS);
                }
            }
        }
    }
}
