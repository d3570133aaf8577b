//! The modem's side of a change of primary — takeover, release, fallback, failover and
//! fencing — as a pure state machine (quinn-proto style): events with radio time passed in,
//! actions out, and two questions the real-time shell asks every subframe: what may I
//! transmit for subframe `m`, and what happens to what I decoded in subframe `m`.
//!
//! The radio is the arbiter (`ferry_radio::unit`): every change of primary carries a new
//! epoch and is announced in-band to the hosts concerned. This machine acts on those notices
//! only; it never infers a switch from RX silence, and never asks the radio over the control
//! network from the real-time loop. Timeouts cover a notice that never comes: a takeover not
//! confirmed by `confirm_timeout` after T means the radio kept the source; a release not
//! confirmed by then means the radio did not switch (the switch was cancelled), so the source
//! goes on serving.
//!
//! ```text
//!            arm_takeover                notice(me, T)
//!  Standby ───────────────▶ TakingOver ───────────────▶ Serving ──notice(other)──▶ Fenced
//!     ▲  ◀── disarm / timeout ──┘                        │  ▲                         │
//!     │                                     arm_release  │  │ notice(me): fallback,   │
//!     │ notice(me): failover ───────────────────────────┐▼  │   relink                │
//!     └──────────────────────────────────────────── Releasing ──notice(other, T)──▶ Released
//!                                                                  (warm for the grace
//!                                                                   period, then retires)
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;

/// Why the primary changed (as the radio announces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A host linked or unlinked the radio.
    Link,
    /// An armed switch reached its instant.
    Planned,
    /// The new primary fell silent; the previous one serves again.
    Fallback,
    /// The primary fell silent; the protecting standby serves.
    Failover,
}

/// An in-band switch notice, as the shell hands it to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// The radio's epoch for this assignment.
    pub epoch: u64,
    /// Whether the new primary is this modem.
    pub me: bool,
    /// First sample of the assignment (radio time).
    pub from_sample: u64,
    /// The subframe that sample starts (the shell maps it on its frame grid).
    pub from_subframe: u64,
    /// Why.
    pub kind: NoticeKind,
    /// Fallback and failover: the subframe of the newest TX the radio took from the
    /// previous primary (data or heartbeat). It delivered nothing it decoded after this
    /// subframe less its TX lead.
    pub previous_heard_subframe: Option<u64>,
    /// Fallback and failover: the first subframe after the previous primary's TX the radio
    /// still plays (its tail); the new primary's data goes out from there.
    pub tail_until_subframe: Option<u64>,
}

/// What this modem is to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Primary: transmits and delivers from `from_subframe` on (`None`: everything).
    Serving {
        /// First subframe served (after a takeover, fallback or failover).
        from_subframe: Option<u64>,
    },
    /// Warm replica receiving RX copies: delivers nothing; transmits filler when `hot`
    /// (a protecting standby proves itself alive and has TX queued at the radio, so a
    /// takeover has no TX gap).
    Standby,
    /// Armed to take over at T: transmits from T on; what it decodes from T on is held until
    /// the radio confirms.
    TakingOver {
        /// T in radio samples.
        at_sample: u64,
        /// T's subframe.
        at_subframe: u64,
    },
    /// Armed to release at T: serves the subframes before T only.
    Releasing {
        /// T in radio samples.
        at_sample: u64,
        /// T's subframe.
        at_subframe: u64,
        /// The destination's forward port.
        forward_to: SocketAddr,
        /// The TX queue was already copied to the destination (RX reached T).
        copied: bool,
    },
    /// Released at T: forwards TUN egress to the destination, stays warm until
    /// `grace_until` in case the radio falls back to it.
    Released {
        /// T in radio samples.
        at_sample: u64,
        /// The destination's forward port.
        forward_to: SocketAddr,
        /// End of the fallback grace period (radio samples).
        grace_until: u64,
    },
    /// A newer epoch names another host: this modem must not transmit.
    Fenced,
}

/// What the machine asks the shell to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutoverAction {
    /// Deliver the packets held since T (the takeover is confirmed).
    DeliverHeld,
    /// Drop the held packets (the radio kept the source).
    DropHeld,
    /// Copy the TX queue to `to` now (RX reached T; the originals stay until confirmed).
    CopyQueue {
        /// The destination's forward port.
        to: SocketAddr,
    },
    /// Hand `to` what the early copy lacked (the release is confirmed).
    ForwardRest {
        /// The destination's forward port.
        to: SocketAddr,
    },
    /// Serve from this subframe on (set the MAC's windows; a fallback or failover).
    Serve {
        /// First subframe to deliver.
        from_subframe: u64,
        /// First subframe to transmit data in (after the previous primary's tail).
        tx_from_subframe: u64,
        /// Deliver the copies decoded (and dropped) in these subframes `[from, until)`:
        /// the previous primary died after their RX and before it delivered them.
        replay: Option<(u64, u64)>,
    },
    /// A newer epoch names another host: stop transmitting (the shell logs it).
    StepDown {
        /// The epoch that deposed this modem.
        epoch: u64,
    },
    /// The grace period is over: this released modem has nothing left to do.
    Retired,
}

/// What to transmit for a subframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Nothing.
    Silent,
    /// Filler only (a warm replica proving itself alive; never carries data).
    Filler,
    /// Data from the queue (the subframe is this modem's to serve).
    Data,
}

/// What happens to the packets decoded in a subframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxFate {
    /// Another host delivers it, or nobody: drop.
    Drop,
    /// Hold until the takeover is confirmed.
    Hold,
    /// Deliver to the TUN.
    Deliver,
}

/// A request the machine refuses in its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutoverError {
    /// The request needs another duty.
    #[error("{request} needs {needs} (now {now})")]
    WrongDuty {
        /// Request name.
        request: &'static str,
        /// What it needs.
        needs: &'static str,
        /// The current duty's name.
        now: &'static str,
    },
    /// The release already happened.
    #[error("the release already happened at sample {0}")]
    AlreadyReleased(u64),
}

/// Tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutoverConfig {
    /// A takeover or release without the radio's notice this long after T did not happen
    /// (radio samples).
    pub confirm_timeout: u64,
    /// A protecting standby transmits filler.
    pub hot_standby: bool,
    /// Subframes TX is built ahead of RX (every modem of the task has the same).
    pub tx_lead: u64,
    /// Subframes not replayed after the last one the previous primary may have delivered:
    /// a primary cut off by a partition delivers the RX already in its socket buffer while
    /// its TX no longer reaches the radio; each subframe of margin covers one of those.
    pub replay_margin: u64,
}

/// Counters of the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutoverCounters {
    /// Notices with an epoch not newer than the one known (ignored).
    pub stale_notices: u64,
    /// Times this modem stepped down on a newer epoch.
    pub step_downs: u64,
    /// Takeovers that timed out without the radio's confirmation.
    pub unconfirmed_takeovers: u64,
    /// Releases that timed out without the radio's notice (the source kept serving).
    pub unconfirmed_releases: u64,
    /// Fallbacks and failovers that made this modem primary.
    pub takeovers_unplanned: u64,
}

/// The machine.
#[derive(Debug, Clone)]
pub struct Cutover {
    cfg: CutoverConfig,
    duty: Duty,
    /// While serving after a fallback or failover: the first subframe with data TX.
    tx_from: Option<u64>,
    epoch: u64,
    grace: u64,
    actions: VecDeque<CutoverAction>,
    /// Counters.
    pub counters: CutoverCounters,
}

fn name(d: &Duty) -> &'static str {
    match d {
        Duty::Serving { .. } => "serving",
        Duty::Standby => "standby",
        Duty::TakingOver { .. } => "taking over",
        Duty::Releasing { .. } => "releasing",
        Duty::Released { .. } => "released",
        Duty::Fenced => "fenced",
    }
}

impl Cutover {
    /// A machine for a modem that starts serving (`serving`) or as a warm replica.
    pub fn new(cfg: CutoverConfig, serving: bool) -> Cutover {
        Cutover {
            cfg,
            duty: if serving {
                Duty::Serving {
                    from_subframe: None,
                }
            } else {
                Duty::Standby
            },
            tx_from: None,
            epoch: 0,
            grace: 0,
            actions: VecDeque::new(),
            counters: CutoverCounters::default(),
        }
    }

    /// Makes a standby hot (filler TX, so the radio knows it alive and has its TX queued)
    /// or cold again.
    pub fn set_hot(&mut self, hot: bool) {
        self.cfg.hot_standby = hot;
    }

    /// Whether a standby sends filler.
    pub fn is_hot(&self) -> bool {
        self.cfg.hot_standby
    }

    /// The current duty.
    pub fn duty(&self) -> Duty {
        self.duty
    }

    /// The newest epoch this modem has seen.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether this modem is the task's primary (or about to be, armed).
    pub fn is_primary(&self) -> bool {
        matches!(self.duty, Duty::Serving { .. } | Duty::Releasing { .. })
    }

    /// Where TUN egress goes instead of the queue (a released source forwards).
    pub fn forward_target(&self) -> Option<SocketAddr> {
        match self.duty {
            Duty::Released { forward_to, .. } => Some(forward_to),
            _ => None,
        }
    }

    /// The next action for the shell.
    pub fn poll_action(&mut self) -> Option<CutoverAction> {
        self.actions.pop_front()
    }

    fn wrong(&self, request: &'static str, needs: &'static str) -> CutoverError {
        CutoverError::WrongDuty {
            request,
            needs,
            now: name(&self.duty),
        }
    }

    /// `takeover_at`: take over at T (a standby only).
    pub fn arm_takeover(&mut self, at_sample: u64, at_subframe: u64) -> Result<(), CutoverError> {
        if self.duty != Duty::Standby {
            return Err(self.wrong("takeover_at", "standby"));
        }
        self.duty = Duty::TakingOver {
            at_sample,
            at_subframe,
        };
        Ok(())
    }

    /// `release_at`: hand the task to `forward_to`'s modem at T, staying warm for `grace`
    /// samples after it (0: retire at once when the release is confirmed).
    pub fn arm_release(
        &mut self,
        at_sample: u64,
        at_subframe: u64,
        forward_to: SocketAddr,
        grace: u64,
    ) -> Result<(), CutoverError> {
        if !matches!(self.duty, Duty::Serving { .. }) {
            return Err(self.wrong("release_at", "serving"));
        }
        self.grace = grace;
        self.duty = Duty::Releasing {
            at_sample,
            at_subframe,
            forward_to,
            copied: false,
        };
        Ok(())
    }

    /// `cancel_cutover`: disarm before T.
    pub fn disarm(&mut self) -> Result<(), CutoverError> {
        match self.duty {
            Duty::TakingOver { .. } => {
                self.duty = Duty::Standby;
                self.actions.push_back(CutoverAction::DropHeld);
                Ok(())
            }
            Duty::Releasing { .. } => {
                self.duty = Duty::Serving {
                    from_subframe: None,
                };
                Ok(())
            }
            Duty::Released { at_sample, .. } => Err(CutoverError::AlreadyReleased(at_sample)),
            _ => Ok(()),
        }
    }

    /// RX has arrived up to (not including) radio sample `end`.
    pub fn on_rx(&mut self, end: u64) {
        if let Duty::Releasing {
            at_sample,
            forward_to,
            copied: false,
            at_subframe,
        } = self.duty
        {
            if end >= at_sample {
                self.duty = Duty::Releasing {
                    at_sample,
                    at_subframe,
                    forward_to,
                    copied: true,
                };
                self.actions
                    .push_back(CutoverAction::CopyQueue { to: forward_to });
            }
        }
    }

    /// An in-band notice from the radio.
    pub fn on_notice(&mut self, n: Notice) {
        if n.epoch <= self.epoch {
            self.counters.stale_notices += 1;
            return;
        }
        self.epoch = n.epoch;
        match (self.duty, n.me) {
            (Duty::TakingOver { at_sample, .. }, true) if n.from_sample == at_sample => {
                self.tx_from = None;
                self.duty = Duty::Serving {
                    from_subframe: Some(n.from_subframe),
                };
                self.actions.push_back(CutoverAction::DeliverHeld);
            }
            (Duty::TakingOver { .. }, true) | (Duty::Standby | Duty::Fenced, true) => {
                // A failover to this standby, or a relink: serve from the notice's instant.
                if n.kind == NoticeKind::Failover || n.kind == NoticeKind::Fallback {
                    self.counters.takeovers_unplanned += 1;
                }
                if matches!(self.duty, Duty::TakingOver { .. }) {
                    self.actions.push_back(CutoverAction::DropHeld);
                }
                self.serve_after(n);
            }
            (Duty::TakingOver { .. }, false) => {
                // The radio gave the task to someone else: the held packets are theirs.
                self.duty = Duty::Standby;
                self.actions.push_back(CutoverAction::DropHeld);
            }
            (
                Duty::Releasing {
                    at_sample,
                    forward_to,
                    ..
                },
                false,
            ) if n.kind == NoticeKind::Planned => {
                self.duty = Duty::Released {
                    at_sample,
                    forward_to,
                    grace_until: n.from_sample.saturating_add(self.grace),
                };
                self.actions
                    .push_back(CutoverAction::ForwardRest { to: forward_to });
            }
            (Duty::Released { .. }, true) => {
                // The new primary fell silent: the radio is back here.
                self.counters.takeovers_unplanned += 1;
                self.serve_after(n);
            }
            (Duty::Serving { .. } | Duty::Releasing { .. }, true) => {
                // Re-affirmed (e.g. a relink by this host): keep serving.
            }
            (Duty::Serving { .. } | Duty::Releasing { .. }, false) => {
                self.counters.step_downs += 1;
                self.duty = Duty::Fenced;
                self.actions
                    .push_back(CutoverAction::StepDown { epoch: n.epoch });
            }
            (Duty::Standby | Duty::Released { .. } | Duty::Fenced, false) => {}
        }
    }

    /// Serve from the notice's instant. After a fallback or failover: data TX after the
    /// dead primary's tail, and the copies of the subframes it never delivered replayed.
    fn serve_after(&mut self, n: Notice) {
        let from_subframe = n.from_subframe;
        let unplanned = matches!(n.kind, NoticeKind::Failover | NoticeKind::Fallback);
        let tx_from_subframe = n
            .tail_until_subframe
            .filter(|_| unplanned)
            .map_or(from_subframe, |t| t.max(from_subframe));
        let replay = n
            .previous_heard_subframe
            .filter(|_| unplanned)
            .map(|h| (h + 1 + self.cfg.replay_margin).saturating_sub(self.cfg.tx_lead))
            .filter(|&a| a < from_subframe)
            .map(|a| (a, from_subframe));
        self.duty = Duty::Serving {
            from_subframe: Some(from_subframe),
        };
        self.tx_from = Some(tx_from_subframe);
        self.actions.push_back(CutoverAction::Serve {
            from_subframe,
            tx_from_subframe,
            replay,
        });
    }

    /// Radio time has reached `radio_now` (from the clock tracker): timeouts.
    pub fn on_tick(&mut self, radio_now: u64) {
        match self.duty {
            Duty::TakingOver { at_sample, .. }
                if radio_now > at_sample.saturating_add(self.cfg.confirm_timeout) =>
            {
                self.counters.unconfirmed_takeovers += 1;
                self.duty = Duty::Standby;
                self.actions.push_back(CutoverAction::DropHeld);
            }
            Duty::Releasing { at_sample, .. }
                if radio_now > at_sample.saturating_add(self.cfg.confirm_timeout) =>
            {
                self.counters.unconfirmed_releases += 1;
                self.duty = Duty::Serving {
                    from_subframe: None,
                };
            }
            Duty::Released { grace_until, .. } if radio_now > grace_until => {
                // Retired once: the duty stays (it keeps forwarding stragglers).
                self.grace = 0;
                if !self.actions.contains(&CutoverAction::Retired) {
                    self.actions.push_back(CutoverAction::Retired);
                }
                if let Duty::Released {
                    at_sample,
                    forward_to,
                    ..
                } = self.duty
                {
                    self.duty = Duty::Released {
                        at_sample,
                        forward_to,
                        grace_until: u64::MAX,
                    };
                }
            }
            _ => {}
        }
    }

    /// Whether the fallback grace period is running (a released source stays warm).
    pub fn in_grace(&self) -> bool {
        matches!(self.duty, Duty::Released { grace_until, .. } if grace_until != u64::MAX)
    }

    /// What to transmit for subframe `m`.
    pub fn tx_mode(&self, m: u64) -> TxMode {
        match self.duty {
            Duty::Serving { from_subframe } => {
                if from_subframe.is_some_and(|f| m < f) {
                    TxMode::Silent
                } else if self.tx_from.is_some_and(|t| m < t) {
                    // The radio plays the dead primary's tail there: filler keeps this
                    // modem heard.
                    TxMode::Filler
                } else {
                    TxMode::Data
                }
            }
            Duty::TakingOver { at_subframe, .. } => {
                if m >= at_subframe {
                    TxMode::Data
                } else {
                    TxMode::Silent
                }
            }
            Duty::Releasing { at_subframe, .. } => {
                if m < at_subframe {
                    TxMode::Data
                } else {
                    TxMode::Silent
                }
            }
            Duty::Standby if self.cfg.hot_standby => TxMode::Filler,
            Duty::Released { .. } if self.in_grace() => TxMode::Filler,
            Duty::Standby | Duty::Released { .. } | Duty::Fenced => TxMode::Silent,
        }
    }

    /// What happens to the packets decoded in subframe `m`.
    pub fn rx_fate(&self, m: u64) -> RxFate {
        match self.duty {
            Duty::Serving { from_subframe } if from_subframe.is_none_or(|f| m >= f) => {
                RxFate::Deliver
            }
            Duty::TakingOver { at_subframe, .. } if m >= at_subframe => RxFate::Hold,
            Duty::Releasing { at_subframe, .. } if m < at_subframe => RxFate::Deliver,
            _ => RxFate::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: CutoverConfig = CutoverConfig {
        confirm_timeout: 960_000,
        hot_standby: true,
        tx_lead: 8,
        replay_margin: 1,
    };
    const SPS: u64 = 1920;

    fn fwd() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 2], 9000))
    }

    fn notice(epoch: u64, me: bool, from_subframe: u64, kind: NoticeKind) -> Notice {
        Notice {
            epoch,
            me,
            from_sample: from_subframe * SPS,
            from_subframe,
            kind,
            previous_heard_subframe: None,
            tail_until_subframe: None,
        }
    }

    fn drain(c: &mut Cutover) -> Vec<CutoverAction> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    /// A source and a destination driven through one planned make-before-break at subframe
    /// 100: who transmits and delivers each subframe, before and after.
    #[test]
    fn planned_switch_hands_every_subframe_to_exactly_one_modem() {
        let mut src = Cutover::new(CFG, true);
        let mut dst = Cutover::new(CFG, false);
        dst.arm_takeover(100 * SPS, 100).unwrap();
        src.arm_release(100 * SPS, 100, fwd(), 50 * SPS).unwrap();
        for m in 90..110 {
            let data = [src.tx_mode(m), dst.tx_mode(m)]
                .iter()
                .filter(|t| **t == TxMode::Data)
                .count();
            assert_eq!(data, 1, "subframe {m}: exactly one data transmitter");
            assert_eq!(src.rx_fate(m) == RxFate::Deliver, m < 100);
            assert_eq!(dst.rx_fate(m) == RxFate::Hold, m >= 100);
        }
        src.on_rx(99 * SPS);
        assert!(drain(&mut src).is_empty());
        src.on_rx(100 * SPS);
        assert_eq!(drain(&mut src), [CutoverAction::CopyQueue { to: fwd() }]);
        src.on_rx(101 * SPS);
        assert!(drain(&mut src).is_empty(), "copied once");
        let n = notice(7, false, 100, NoticeKind::Planned);
        src.on_notice(n);
        dst.on_notice(Notice { me: true, ..n });
        assert_eq!(drain(&mut src), [CutoverAction::ForwardRest { to: fwd() }]);
        assert_eq!(drain(&mut dst), [CutoverAction::DeliverHeld]);
        assert_eq!(
            dst.duty(),
            Duty::Serving {
                from_subframe: Some(100)
            }
        );
        assert_eq!(src.forward_target(), Some(fwd()));
        assert!(dst.is_primary() && !src.is_primary());
        for m in 100..200 {
            assert_eq!(dst.tx_mode(m), TxMode::Data);
            assert_eq!(dst.rx_fate(m), RxFate::Deliver);
            assert_eq!(src.rx_fate(m), RxFate::Drop);
            // Warm for the fallback grace period: filler proves it alive.
            assert_eq!(src.tx_mode(m), TxMode::Filler);
        }
        src.on_tick(150 * SPS + 1);
        assert_eq!(drain(&mut src), [CutoverAction::Retired]);
        assert_eq!(src.tx_mode(200), TxMode::Silent);
        src.on_tick(400 * SPS);
        assert!(drain(&mut src).is_empty(), "retired once");
    }

    #[test]
    fn a_fallback_notice_makes_the_released_source_serve_again() {
        let mut src = Cutover::new(CFG, true);
        src.arm_release(100 * SPS, 100, fwd(), 500 * SPS).unwrap();
        src.on_notice(notice(3, false, 100, NoticeKind::Planned));
        drain(&mut src);
        src.on_notice(notice(4, true, 106, NoticeKind::Fallback));
        assert_eq!(
            drain(&mut src),
            [CutoverAction::Serve {
                from_subframe: 106,
                tx_from_subframe: 106,
                replay: None
            }]
        );
        assert_eq!(src.rx_fate(105), RxFate::Drop);
        assert_eq!(src.rx_fate(106), RxFate::Deliver);
        assert_eq!(src.tx_mode(106), TxMode::Data);
        assert_eq!(src.forward_target(), None, "the queue is its own again");
        assert_eq!(src.counters.takeovers_unplanned, 1);
    }

    #[test]
    fn a_standby_takes_over_on_failover_and_the_old_primary_steps_down() {
        let mut primary = Cutover::new(CFG, true);
        let mut standby = Cutover::new(CFG, false);
        assert_eq!(standby.tx_mode(5), TxMode::Filler);
        assert_eq!(standby.rx_fate(5), RxFate::Drop);
        let n = notice(9, true, 300, NoticeKind::Failover);
        standby.on_notice(n);
        assert_eq!(
            drain(&mut standby),
            [CutoverAction::Serve {
                from_subframe: 300,
                tx_from_subframe: 300,
                replay: None
            }]
        );
        assert_eq!(standby.rx_fate(300), RxFate::Deliver);
        // The old primary was only paused: when it reads the notice it steps down.
        primary.on_notice(Notice { me: false, ..n });
        assert_eq!(drain(&mut primary), [CutoverAction::StepDown { epoch: 9 }]);
        assert_eq!(primary.tx_mode(301), TxMode::Silent);
        assert_eq!(primary.rx_fate(301), RxFate::Drop);
        assert_eq!(primary.duty(), Duty::Fenced);
    }

    /// The primary (TX lead 8) was last heard with the TX of subframe 296 and the radio
    /// switched at 300, playing its tail to 297: it delivered nothing decoded after 288, so
    /// the standby replays its copies of 290..300 (one subframe of margin) and sends data
    /// from 297, filler before. A planned switch replays nothing, whatever the notice says.
    #[test]
    fn a_failover_replays_what_the_dead_primary_never_delivered_and_sends_after_its_tail() {
        // A fresh standby given one notice: the action it takes, and the standby after it.
        let serve = |heard: Option<u64>, tail: Option<u64>, from: u64, kind: NoticeKind| {
            let mut standby = Cutover::new(CFG, false);
            standby.on_notice(Notice {
                previous_heard_subframe: heard,
                tail_until_subframe: tail,
                ..notice(9, true, from, kind)
            });
            let actions = drain(&mut standby);
            assert_eq!(actions.len(), 1, "{actions:?}");
            (actions[0], standby)
        };
        let action = |from_subframe, tx_from_subframe, replay| CutoverAction::Serve {
            from_subframe,
            tx_from_subframe,
            replay,
        };
        // The tail ends before the instant: data from the instant.
        let (a, _) = serve(Some(296), Some(297), 300, NoticeKind::Failover);
        assert_eq!(a, action(300, 300, Some((290, 300))));
        let (a, standby) = serve(Some(306), Some(307), 302, NoticeKind::Failover);
        assert_eq!(a, action(302, 307, Some((300, 302))));
        assert_eq!(standby.tx_mode(301), TxMode::Silent);
        assert_eq!(standby.tx_mode(302), TxMode::Filler);
        assert_eq!(standby.tx_mode(306), TxMode::Filler);
        assert_eq!(standby.tx_mode(307), TxMode::Data);
        assert_eq!(standby.rx_fate(302), RxFate::Deliver);
        // Heard last with the TX of 320: it may have delivered all it decoded before the
        // instant, so nothing is replayed.
        let (a, _) = serve(Some(320), None, 300, NoticeKind::Failover);
        assert_eq!(a, action(300, 300, None));
        // Not heard at all: nothing is known, nothing replayed.
        let (a, _) = serve(None, None, 300, NoticeKind::Failover);
        assert_eq!(a, action(300, 300, None));
        // A fallback replays like a failover.
        let (a, _) = serve(Some(296), Some(297), 300, NoticeKind::Fallback);
        assert_eq!(a, action(300, 300, Some((290, 300))));
        // A relink (kind Link) to a standby: no replay, no tail.
        let (a, _) = serve(Some(296), Some(310), 300, NoticeKind::Link);
        assert_eq!(a, action(300, 300, None));
    }

    #[test]
    fn stale_and_replayed_notices_change_nothing() {
        let mut m = Cutover::new(CFG, true);
        m.on_notice(notice(5, true, 10, NoticeKind::Link));
        m.on_notice(notice(5, false, 20, NoticeKind::Failover));
        m.on_notice(notice(4, false, 20, NoticeKind::Failover));
        assert_eq!(m.counters.stale_notices, 2);
        assert!(m.is_primary());
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn unconfirmed_switches_time_out_to_the_safe_side() {
        // The destination never hears the radio confirm: it gives up and drops what it held.
        let mut dst = Cutover::new(CFG, false);
        dst.arm_takeover(100 * SPS, 100).unwrap();
        dst.on_tick(100 * SPS + CFG.confirm_timeout);
        assert!(drain(&mut dst).is_empty());
        dst.on_tick(100 * SPS + CFG.confirm_timeout + 1);
        assert_eq!(drain(&mut dst), [CutoverAction::DropHeld]);
        assert_eq!(dst.duty(), Duty::Standby);
        // The source never hears a switch: it keeps serving everything.
        let mut src = Cutover::new(CFG, true);
        src.arm_release(100 * SPS, 100, fwd(), 0).unwrap();
        src.on_tick(100 * SPS + CFG.confirm_timeout + 1);
        assert_eq!(
            src.duty(),
            Duty::Serving {
                from_subframe: None
            }
        );
        assert_eq!(src.tx_mode(150), TxMode::Data);
        assert_eq!(src.counters.unconfirmed_releases, 1);
    }

    #[test]
    fn disarm_before_t_and_refusals() {
        let mut src = Cutover::new(CFG, true);
        assert!(
            src.arm_takeover(1, 1).is_err(),
            "a serving modem cannot take over"
        );
        src.arm_release(100 * SPS, 100, fwd(), 0).unwrap();
        assert!(src.arm_release(100 * SPS, 100, fwd(), 0).is_err());
        src.disarm().unwrap();
        assert_eq!(src.tx_mode(150), TxMode::Data);
        src.arm_release(100 * SPS, 100, fwd(), 0).unwrap();
        src.on_notice(notice(1, false, 100, NoticeKind::Planned));
        assert_eq!(src.disarm(), Err(CutoverError::AlreadyReleased(100 * SPS)));
        let mut dst = Cutover::new(CFG, false);
        assert!(
            dst.arm_release(1, 1, fwd(), 0).is_err(),
            "a standby cannot release"
        );
        dst.arm_takeover(100 * SPS, 100).unwrap();
        dst.disarm().unwrap();
        assert_eq!(drain(&mut dst), [CutoverAction::DropHeld]);
        assert_eq!(dst.tx_mode(150), TxMode::Filler);
        // A takeover the radio gave to somebody else.
        dst.arm_takeover(200 * SPS, 200).unwrap();
        dst.on_notice(notice(2, false, 200, NoticeKind::Planned));
        assert_eq!(drain(&mut dst), [CutoverAction::DropHeld]);
        assert_eq!(dst.duty(), Duty::Standby);
    }

    #[test]
    fn cold_standby_stays_silent() {
        let m = Cutover::new(
            CutoverConfig {
                hot_standby: false,
                ..CFG
            },
            false,
        );
        assert_eq!(m.tx_mode(0), TxMode::Silent);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Ev {
        ArmTakeover(u64),
        ArmRelease(u64, u64),
        Disarm,
        Rx(u64),
        Notice(u64, bool, u64, u8),
        Tick(u64),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            (0u64..400).prop_map(Ev::ArmTakeover),
            (0u64..400, 0u64..200).prop_map(|(a, g)| Ev::ArmRelease(a, g)),
            Just(Ev::Disarm),
            (0u64..500).prop_map(Ev::Rx),
            (0u64..20, any::<bool>(), 0u64..500, 0u8..4)
                .prop_map(|(e, m, f, k)| Ev::Notice(e, m, f, k)),
            (0u64..2000).prop_map(Ev::Tick),
        ]
    }

    proptest! {
        /// Two modems of one task fed the same notices (one names either): at most one of
        /// them ever transmits data for, or delivers, a subframe once both have seen the
        /// same newest epoch; a modem never transmits data while fenced.
        #[test]
        fn never_two_servers_for_one_subframe(evs in proptest::collection::vec(ev(), 1..80)) {
            let cfg = CutoverConfig { confirm_timeout: 100, hot_standby: true, tx_lead: 8, replay_margin: 1 };
            let fwd = SocketAddr::from(([10, 0, 0, 2], 9000));
            let mut a = Cutover::new(cfg, true);
            let mut b = Cutover::new(cfg, false);
            for e in evs {
                let before = (a.epoch(), b.epoch());
                for (i, m) in [&mut a, &mut b].into_iter().enumerate() {
                    match e {
                        Ev::ArmTakeover(t) => { let _ = m.arm_takeover(t, t); }
                        Ev::ArmRelease(t, g) => { let _ = m.arm_release(t, t, fwd, g); }
                        Ev::Disarm => { let _ = m.disarm(); }
                        Ev::Rx(end) => m.on_rx(end),
                        Ev::Notice(epoch, to_a, from, k) => {
                            let kind = [NoticeKind::Link, NoticeKind::Planned, NoticeKind::Fallback, NoticeKind::Failover][k as usize];
                            m.on_notice(Notice { epoch, me: to_a == (i == 0), from_sample: from, from_subframe: from, kind, previous_heard_subframe: None, tail_until_subframe: None });
                        }
                        Ev::Tick(now) => m.on_tick(now),
                    }
                    while m.poll_action().is_some() {}
                    if m.duty() == Duty::Fenced {
                        prop_assert!((0..600).all(|s| m.tx_mode(s) != TxMode::Data));
                    }
                }
                // After a notice both modems agree on the newest epoch and on who it names;
                // from its instant on only the named one may serve.
                if let Ev::Notice(epoch, to_a, from, _) = e {
                    if epoch > before.0 && epoch > before.1 {
                        let other = if to_a { &b } else { &a };
                        for s in from..from + 50 {
                            prop_assert_ne!(other.rx_fate(s), RxFate::Deliver);
                            prop_assert_ne!(other.tx_mode(s), TxMode::Data);
                        }
                    }
                }
            }
        }
    }
}
