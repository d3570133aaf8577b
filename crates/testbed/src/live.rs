//! Live events of a testbed run, for watchers such as the web view (`ferry demo --web`): the
//! testbed's endpoints once it is up, each second's ping figures, which server serves, and
//! each migration's start and end (with its phases).
//!
//! A run hands them to a [`LiveSink`]; the sink must never block (the web view's pushes into
//! a bounded channel and drops when full), so watching cannot slow the run down.

use crate::ping::{PingSample, PingWatch};
use crate::probe::ProbeLog;
use crate::report::{Method, MigrationReport, PhaseReport, Series};
use crate::video::unix_ms;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where live events go. Called from the run's threads; must return at once.
#[derive(Clone)]
pub struct LiveSink(Arc<dyn Fn(LiveEvent) + Send + Sync>);

impl LiveSink {
    /// A sink calling `f` with each event.
    pub fn new(f: impl Fn(LiveEvent) + Send + Sync + 'static) -> LiveSink {
        LiveSink(Arc::new(f))
    }

    /// Hands one event over.
    pub fn emit(&self, event: LiveEvent) {
        (self.0)(event);
    }
}

impl std::fmt::Debug for LiveSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSink")
    }
}

/// One thing that happened in a run. Times are ms since the run's origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The testbed is up: what to poll and how to name what is seen.
    Testbed {
        /// `ping` (chapter 3) or `relay` (chapter 4).
        experiment: String,
        /// Unix ms of the run's origin (t = 0 of every other event).
        origin_unix_ms: f64,
        /// Namespace from which the management network (link control, agents) is reached.
        mgmt_netns: String,
        /// Link-control endpoint of the radio room.
        radio_control: String,
        /// Agents: server name and endpoint.
        agents: Vec<(String, String)>,
        /// The agents' shared key (read-only `status` polls need it).
        key_file: Option<PathBuf>,
    },
    /// A method's session starts (processes started afresh).
    Method {
        /// `legacy` or `mbb`.
        method: String,
    },
    /// Which server serves the task now (as the run knows it: after a start or migration).
    Serving {
        /// `server1`, `server2`.
        server: String,
    },
    /// One second of the probe (or of ping when the probe is off) through the task.
    Second(Second),
    /// A migration starts.
    MigrationStarted {
        /// Timeline label (`M`, `MB`, `mbb out`, …).
        label: String,
        /// `legacy` or `mbb`.
        method: String,
        /// From server.
        from: String,
        /// To server.
        to: String,
        /// Start, ms since the origin.
        t_ms: f64,
    },
    /// A migration ended.
    MigrationEnded {
        /// Timeline label.
        label: String,
        /// `legacy` or `mbb`.
        method: String,
        /// `server1 → server2`.
        route: String,
        /// Start, ms since the origin.
        t_ms: f64,
        /// Total, ms.
        total_ms: f64,
        /// Every phase succeeded.
        ok: bool,
        /// Phases in order (start relative to the migration's start).
        phases: Vec<PhaseReport>,
    },
    /// The run is over (testbed going down).
    Finished,
}

impl LiveEvent {
    /// A migration's end, from its report.
    pub fn migration_ended(m: &MigrationReport, method: Method) -> LiveEvent {
        LiveEvent::MigrationEnded {
            label: m.label.clone(),
            method: method_name(method).into(),
            route: m.route.clone(),
            t_ms: m.start_ms,
            total_ms: m.total_ms,
            ok: m.ok,
            phases: m.phases.clone(),
        }
    }
}

/// `legacy` or `mbb`.
pub fn method_name(m: Method) -> &'static str {
    match m {
        Method::Legacy => "legacy",
        Method::Mbb => "mbb",
    }
}

/// Hands `event` to `sink`, if there is one.
pub fn emit(sink: Option<&LiveSink>, event: LiveEvent) {
    if let Some(s) = sink {
        s.emit(event);
    }
}

/// One second of probe or ping figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// `probe` (the 1 ms UDP probe) or `ping`.
    pub source: Source,
    /// End of the second, ms since the origin.
    pub t_ms: f64,
    /// Requests sent in it.
    pub sent: u64,
    /// Of those, never answered.
    pub lost: u64,
    /// Mean round-trip time of the answered, ms.
    pub rtt_avg_ms: Option<f64>,
    /// Largest round-trip time, ms.
    pub rtt_max_ms: Option<f64>,
    /// Longest time without an answered request in the second, ms (the probe's only).
    pub longest_gap_ms: Option<f64>,
}

/// Where a [`Second`]'s figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The UDP sequence probe.
    Probe,
    /// `ping -i 0.1`.
    Ping,
}

/// The probe's second ending `lag` before `now_ns` (its echoes had `lag` to come back), on
/// the origin's axis given the probe's start `probe_started_ms` on it.
pub fn probe_second(log: &ProbeLog, second_end_ns: u64, probe_started_ms: f64) -> Second {
    let w = log.window(second_end_ns.saturating_sub(1_000_000_000), second_end_ns);
    Second {
        source: Source::Probe,
        t_ms: probe_started_ms + second_end_ns as f64 / 1e6,
        sent: w.sent,
        lost: w.lost,
        rtt_avg_ms: w.rtt_avg_ms,
        rtt_max_ms: w.rtt_max_ms,
        longest_gap_ms: w.longest_gap_ms,
    }
}

/// The second `[from_ms, to_ms)` of ping samples (already on the origin's axis).
pub fn ping_second(samples: &[PingSample], from_ms: f64, to_ms: f64) -> Second {
    let mut s = Second {
        source: Source::Ping,
        t_ms: to_ms,
        sent: 0,
        lost: 0,
        rtt_avg_ms: None,
        rtt_max_ms: None,
        longest_gap_ms: None,
    };
    let mut sum = 0.0;
    let mut n = 0u32;
    for p in samples
        .iter()
        .filter(|p| p.t_ms >= from_ms && p.t_ms < to_ms)
    {
        s.sent += 1;
        match p.rtt_ms.filter(|r| r.is_finite()) {
            Some(r) => {
                sum += r;
                n += 1;
                s.rtt_max_ms = Some(s.rtt_max_ms.map_or(r, |m: f64| m.max(r)));
            }
            None => s.lost += 1,
        }
    }
    if n > 0 {
        s.rtt_avg_ms = Some(sum / f64::from(n));
    }
    s
}

/// Emits each finished second of a running ping as [`LiveEvent::Second`] from its own
/// thread; a second is reported once its requests had 1.5 s to be answered. Drop stops it.
pub struct SecondsWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SecondsWatcher {
    /// Starts watching `ping` (its samples put on the axis of `origin_unix_ms`).
    pub fn start(ping: PingWatch, sink: LiveSink, origin_unix_ms: f64) -> SecondsWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut next: Option<f64> = None;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let report = ping.snapshot();
                let samples = Series::ping_on_axis(&report, origin_unix_ms);
                let Some(first) = samples.first().map(|p| p.t_ms) else {
                    continue;
                };
                let now = unix_ms() - origin_unix_ms;
                let mut from = *next.get_or_insert((first / 1000.0).floor() * 1000.0);
                while from + 1000.0 + 1500.0 <= now {
                    sink.emit(LiveEvent::Second(ping_second(
                        &samples,
                        from,
                        from + 1000.0,
                    )));
                    from += 1000.0;
                }
                next = Some(from);
            }
        });
        SecondsWatcher {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SecondsWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64, t_ms: f64, rtt: Option<f64>) -> PingSample {
        PingSample {
            seq,
            t_ms,
            rtt_ms: rtt,
        }
    }

    #[test]
    fn a_second_counts_its_own_pings_only() {
        let v = [
            p(1, 900.0, Some(9.0)),
            p(2, 1000.0, Some(2.0)),
            p(3, 1100.0, None),
            p(4, 1200.0, Some(4.0)),
            p(5, 2000.0, Some(7.0)),
        ];
        let s = ping_second(&v, 1000.0, 2000.0);
        assert_eq!((s.sent, s.lost), (3, 1));
        assert_eq!(s.rtt_avg_ms, Some(3.0));
        assert_eq!(s.rtt_max_ms, Some(4.0));
        let none = ping_second(&v, 5000.0, 6000.0);
        assert_eq!((none.sent, none.rtt_avg_ms), (0, None));
    }

    #[test]
    fn events_are_tagged_json() {
        let e = LiveEvent::Serving {
            server: "server2".into(),
        };
        let j = serde_json::to_string(&e).expect("json");
        assert_eq!(j, r#"{"kind":"serving","server":"server2"}"#);
    }
}
