//! Protection (issue #12): a task on the source server gets a **hot standby** on another
//! server — a make-before-break destination that is kept warm indefinitely — and the radio
//! fails the task over to it when the primary falls silent.
//!
//! `protect` is the first half of make-before-break ([`crate::mbb`], phases 0–5: the
//! destination gets the task's TUN address, routes and Control, starts warm as a *hot*
//! standby and synchronises on the radio's shadow copy), then the radio takes it as the
//! primary's standby ([`PROTECT_PHASE`]) and the shadow slot is freed. Nothing moves: the
//! source serves on. Every failure before the radio's `protect` rolls back like an aborted
//! migration (the destination is stopped, the source is untouched).
//!
//! `unprotect` asks the radio to drop the standby, then stops the standby's modem. If the
//! radio does not confirm, the standby is left running: it still protects the task.

use crate::machine::{Cx, Input, Millis, Peer, RadioOp, Script, Sequence, Step, Timeouts};
pub use crate::mbb::PROTECT_PHASE;
use crate::mbb::{self, MbbConfig};
use crate::protocol::Request;

/// Start protecting the task served by `cfg.source` with a hot standby on
/// `cfg.destination` (its radio endpoint `cfg.destination_port`).
pub fn protect(mut cfg: MbbConfig, now: Millis) -> Sequence {
    cfg.protect = true;
    let t = cfg.timeouts;
    Sequence::start("protect", Box::new(mbb::Mbb::new(cfg)), t, now)
}

/// Phases of `unprotect`.
pub const UNPROTECT_PHASES: [&str; 2] = ["radio drops the standby", "stop the standby modem"];

/// Stop protecting: the radio drops the standby, then `standby`'s modem is stopped.
pub fn unprotect(standby: Peer, timeouts: Timeouts, now: Millis) -> Sequence {
    Sequence::start(
        "unprotect",
        Box::new(Unprotect { standby, s: 0 }),
        timeouts,
        now,
    )
}

struct Unprotect {
    standby: Peer,
    s: u8,
}

impl Script for Unprotect {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        let err = match &input {
            Input::Failed(e) => Some(e.clone()),
            _ => None,
        };
        match (self.s, err) {
            (0, _) => {
                cx.phase(UNPROTECT_PHASES[0]);
                self.s = 1;
                Step::radio(RadioOp::Protect { to: None })
            }
            (1, Some(e)) => Step::fail(format!(
                "the radio did not drop the standby ({e}): the standby is left running and still protects the task"
            )),
            (1, None) => {
                cx.phase(UNPROTECT_PHASES[1]);
                self.s = 2;
                Step::to(self.standby, Request::KillD2d)
            }
            (_, Some(e)) => Step::fail(format!(
                "the radio no longer fails over to the standby, but stopping its modem failed: {e}"
            )),
            (_, None) => Step::ok("task unprotected: standby stopped"),
        }
    }
}
