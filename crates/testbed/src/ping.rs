//! The thesis' own probe: the real `ping` (iputils) run as a child process, its output parsed
//! line by line as it arrives, summarised as lost pings × interval (table 3-4's measure).
//!
//! [`parse_line`] and [`PingLog`] are pure (text in, counts out, no clock); [`PingRun`] is the
//! thin shell that starts `ping -i 0.1 -D -O -W 1 ADDR` (in a namespace if asked), feeds its
//! stdout into a [`PingLog`] from a reader thread and stops it with SIGINT so that ping
//! prints its summary.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What went wrong running ping.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// The interval is not one ping accepts from us (must be > 0 and finite).
    #[error("bad ping interval {0} ms: must be at least 1 ms")]
    BadInterval(u64),
    /// The child could not be started.
    #[error("cannot start ping (is iputils-ping installed? scripts/deps installs it): {0}")]
    Spawn(std::io::Error),
    /// Waiting for the child failed.
    #[error("waiting for ping failed: {0}")]
    Wait(std::io::Error),
    /// ping ended on its own before we stopped it, with this stderr.
    #[error("ping exited early ({status}): {stderr}")]
    Exited {
        /// Exit status text.
        status: String,
        /// What ping wrote to stderr.
        stderr: String,
    },
}

/// One line of `ping -D -O` output, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum PingLine {
    /// `PING addr (addr) 56(84) bytes of data.`
    Header,
    /// `[epoch] 64 bytes from A: icmp_seq=N ttl=T time=R ms [(DUP!)]`
    Reply {
        /// `-D` timestamp, Unix seconds.
        at_s: Option<f64>,
        /// ICMP sequence number as printed (wraps at 65536).
        seq: u16,
        /// Round-trip time in ms.
        rtt_ms: f64,
        /// A duplicate reply.
        dup: bool,
    },
    /// `[epoch] no answer yet for icmp_seq=N` (`-O`).
    NoAnswer {
        /// `-D` timestamp.
        at_s: Option<f64>,
        /// Sequence number.
        seq: u16,
    },
    /// `[epoch] From A icmp_seq=N Destination Host Unreachable` and other ICMP errors.
    Error {
        /// `-D` timestamp.
        at_s: Option<f64>,
        /// Sequence number.
        seq: u16,
        /// The message after the sequence number.
        message: String,
    },
    /// `N packets transmitted, M received, [+E errors,] X% packet loss, time Tms`
    Summary {
        /// Requests sent.
        transmitted: u64,
        /// Replies received.
        received: u64,
        /// ICMP errors.
        errors: u64,
    },
    /// Anything else (rtt line, blank lines, statistics header).
    Other,
}

/// Splits a `[1795999706.087128] ` prefix off.
fn strip_stamp(line: &str) -> (Option<f64>, &str) {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((stamp, tail)) = rest.split_once(']') {
            if let Ok(t) = stamp.parse::<f64>() {
                if t.is_finite() {
                    return (Some(t), tail.trim_start());
                }
            }
        }
    }
    (None, line)
}

/// The value of `key=` in a whitespace-separated line.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// Leading unsigned number of a token like `12` or `+3`.
fn count_before(text: &str, word: &str) -> Option<u64> {
    let idx = text.find(word)?;
    text.get(..idx)?
        .split([',', ' '])
        .rfind(|t| !t.is_empty())?
        .trim_start_matches('+')
        .parse()
        .ok()
}

/// Parses one line of ping output. Never fails: unknown lines are [`PingLine::Other`].
pub fn parse_line(line: &str) -> PingLine {
    let line = line.trim_end();
    if line.starts_with("PING ") {
        return PingLine::Header;
    }
    if line.contains("packets transmitted") {
        if let (Some(transmitted), Some(received)) = (
            count_before(line, "packets transmitted"),
            count_before(line, "received"),
        ) {
            let errors = count_before(line, "errors").unwrap_or(0);
            return PingLine::Summary {
                transmitted,
                received,
                errors,
            };
        }
        return PingLine::Other;
    }
    let (at_s, body) = strip_stamp(line);
    let seq = field(body, "icmp_seq=").and_then(|s| s.parse::<u16>().ok());
    let Some(seq) = seq else {
        return PingLine::Other;
    };
    if body.starts_with("no answer yet") {
        return PingLine::NoAnswer { at_s, seq };
    }
    if body.contains(" bytes from ") {
        if let Some(rtt_ms) = field(body, "time=")
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t >= 0.0)
        {
            return PingLine::Reply {
                at_s,
                seq,
                rtt_ms,
                dup: body.contains("(DUP!)"),
            };
        }
    }
    if body.starts_with("From ") {
        let message = body
            .split_once(&format!("icmp_seq={seq}"))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_default();
        return PingLine::Error { at_s, seq, message };
    }
    PingLine::Other
}

/// One ping request, for plots: `t_ms` is its send time in ms after the first request's send
/// time (measured where a reply gives it, interpolated for lost ones).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PingSample {
    /// Sequence number, unwrapped (1, 2, … past 65535).
    pub seq: u64,
    /// Send time, ms after the first request.
    pub t_ms: f64,
    /// Round-trip time, `None` when never answered.
    pub rtt_ms: Option<f64>,
}

/// What one ping run shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingReport {
    /// Interval asked of ping, ms.
    pub interval_ms: f64,
    /// Requests sent (ping's own count when it printed its summary).
    pub sent: u64,
    /// Requests answered (late answers count, as ping counts them).
    pub received: u64,
    /// Requests never answered.
    pub lost: u64,
    /// Their sequence numbers.
    pub lost_seqs: Vec<u64>,
    /// Longest run of consecutive lost requests.
    pub longest_loss_run: u64,
    /// The thesis' measure: lost × interval, ms.
    pub interruption_ms: f64,
    /// Longest time between two consecutive replies' arrivals, ms: shows a stall even when
    /// the requests were queued and answered late rather than lost.
    pub longest_silence_ms: f64,
    /// ICMP errors (e.g. Destination Host Unreachable).
    pub errors: u64,
    /// Duplicate replies.
    pub duplicates: u64,
    /// Unix time (ms) of the first request's send, when `-D` stamps were seen.
    pub first_sent_unix_ms: Option<f64>,
    /// Whether ping's own summary was seen (it was stopped cleanly).
    pub summary_seen: bool,
    /// One entry per request.
    pub samples: Vec<PingSample>,
}

/// Requests sent in the last this many ms before ping's summary with no line printed for
/// them were in flight when the run was stopped; see [`PingLog::sent`].
pub const IN_FLIGHT_MS: f64 = 500.0;

/// Pure bookkeeping of ping's output.
#[derive(Debug, Clone, Default)]
pub struct PingLog {
    interval_ms: f64,
    /// Unwrapped seq → (arrival s, rtt ms).
    replies: BTreeMap<u64, (Option<f64>, f64)>,
    highest: u64,
    errors: u64,
    duplicates: u64,
    summary: Option<(u64, u64, u64)>,
    arrivals: Vec<f64>,
}

impl PingLog {
    /// A log for a run at `interval_ms`.
    pub fn new(interval_ms: f64) -> Self {
        PingLog {
            interval_ms,
            ..Default::default()
        }
    }

    /// Maps a printed 16-bit sequence to the run's unwrapped sequence, nearest to the
    /// highest seen so far.
    fn unwrap_seq(&self, seq: u16) -> u64 {
        let base = self.highest & !0xffff;
        let cand = base | u64::from(seq);
        if cand + 0x8000 < self.highest {
            cand + 0x1_0000
        } else if cand > self.highest + 0x8000 && cand >= 0x1_0000 {
            cand - 0x1_0000
        } else {
            cand
        }
    }

    /// Feeds one output line.
    pub fn on_line(&mut self, line: &str) {
        match parse_line(line) {
            PingLine::Reply {
                at_s,
                seq,
                rtt_ms,
                dup,
            } => {
                let s = self.unwrap_seq(seq);
                self.highest = self.highest.max(s);
                if dup || self.replies.contains_key(&s) {
                    self.duplicates += 1;
                } else {
                    self.replies.insert(s, (at_s, rtt_ms));
                    if let Some(t) = at_s {
                        self.arrivals.push(t);
                    }
                }
            }
            PingLine::NoAnswer { seq, .. } => {
                let s = self.unwrap_seq(seq);
                self.highest = self.highest.max(s);
            }
            PingLine::Error { seq, .. } => {
                let s = self.unwrap_seq(seq);
                self.highest = self.highest.max(s);
                self.errors += 1;
            }
            PingLine::Summary {
                transmitted,
                received,
                errors,
            } => self.summary = Some((transmitted, received, errors)),
            PingLine::Header | PingLine::Other => {}
        }
    }

    /// Requests sent: ping's summary if seen, else the highest sequence number seen.
    pub fn sent(&self) -> u64 {
        match self.summary {
            // The summary can exceed the last printed seq only by requests still in flight;
            // the bound keeps a corrupt summary from making the report enumerate 2^64 seqs.
            Some((t, _, _)) => {
                let t = t.clamp(self.highest, self.highest + 0x1_0000);
                // Up to IN_FLIGHT_MS of requests after the last printed one were on their
                // way when SIGINT stopped ping (a reply ~20 ms out cut off by the stop, not
                // lost by the link): not counted. More than that is an outage at the end of
                // the run, and all of it counts.
                let in_flight = (IN_FLIGHT_MS / self.interval_ms.max(1.0)).ceil() as u64;
                if t - self.highest <= in_flight.max(1) {
                    self.highest
                } else {
                    t
                }
            }
            None => self.highest,
        }
    }

    /// The summary so far (also usable while ping still runs).
    pub fn report(&self) -> PingReport {
        let sent = self.sent();
        let mut lost_seqs = Vec::new();
        let mut run = 0u64;
        let mut longest_loss_run = 0u64;
        for s in 1..=sent {
            if self.replies.contains_key(&s) {
                run = 0;
            } else {
                lost_seqs.push(s);
                run += 1;
                longest_loss_run = longest_loss_run.max(run);
            }
        }
        let received = sent - lost_seqs.len() as u64;
        // Send times where a stamped reply tells them: arrival − rtt.
        let known: Vec<(u64, f64)> = self
            .replies
            .iter()
            .filter_map(|(&s, &(at, rtt))| at.map(|a| (s, a * 1000.0 - rtt)))
            .collect();
        let first_sent_unix_ms = known
            .first()
            .map(|&(s, t)| t - (s.saturating_sub(1)) as f64 * self.interval_ms);
        let send_time = |s: u64| -> f64 {
            let Some(origin) = first_sent_unix_ms else {
                return (s.saturating_sub(1)) as f64 * self.interval_ms;
            };
            // Interpolate between the nearest measured neighbours; extrapolate by interval.
            let i = known.partition_point(|&(k, _)| k < s);
            let abs = match (i.checked_sub(1).and_then(|j| known.get(j)), known.get(i)) {
                (_, Some(&(k, t))) if k == s => t,
                (Some(&(a, ta)), Some(&(b, tb))) => {
                    ta + (tb - ta) * (s - a) as f64 / (b - a) as f64
                }
                (Some(&(a, ta)), None) => ta + (s - a) as f64 * self.interval_ms,
                (None, Some(&(b, tb))) => tb - (b - s) as f64 * self.interval_ms,
                (None, None) => origin + (s.saturating_sub(1)) as f64 * self.interval_ms,
            };
            abs - origin
        };
        let samples = (1..=sent)
            .map(|s| PingSample {
                seq: s,
                t_ms: send_time(s),
                rtt_ms: self.replies.get(&s).map(|&(_, r)| r),
            })
            .collect();
        let mut arrivals = self.arrivals.clone();
        arrivals.sort_by(f64::total_cmp);
        let longest_silence_ms = arrivals
            .windows(2)
            .map(|w| match w {
                [a, b] => (b - a) * 1000.0,
                _ => 0.0,
            })
            .fold(0.0, f64::max);
        PingReport {
            interval_ms: self.interval_ms,
            sent,
            received,
            lost: lost_seqs.len() as u64,
            interruption_ms: lost_seqs.len() as f64 * self.interval_ms,
            lost_seqs,
            longest_loss_run,
            longest_silence_ms,
            errors: self
                .summary
                .map_or(self.errors, |(_, _, e)| e.max(self.errors)),
            duplicates: self.duplicates,
            first_sent_unix_ms,
            summary_seen: self.summary.is_some(),
            samples,
        }
    }
}

/// Parses a whole captured output.
pub fn parse_output(text: &str, interval_ms: f64) -> PingReport {
    let mut log = PingLog::new(interval_ms);
    for line in text.lines() {
        log.on_line(line);
    }
    log.report()
}

/// The argument vector Ferry gives ping: `-i` interval, `-D` stamps, `-O` report missing
/// answers, `-W 1` reply timeout, `-n` no DNS.
pub fn ping_args(target: IpAddr, interval_ms: u64) -> Vec<String> {
    vec![
        "-n".into(),
        "-D".into(),
        "-O".into(),
        "-W".into(),
        "1".into(),
        "-i".into(),
        format!("{}.{:03}", interval_ms / 1000, interval_ms % 1000),
        target.to_string(),
    ]
}

/// A running ping child whose output is being parsed.
pub struct PingRun {
    child: Child,
    log: Arc<Mutex<PingLog>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// Reads a [`PingRun`]'s report so far from another thread (live watchers).
#[derive(Clone)]
pub struct PingWatch(Arc<Mutex<PingLog>>);

impl PingWatch {
    /// The report so far.
    pub fn snapshot(&self) -> PingReport {
        self.0
            .lock()
            .map(|l| l.report())
            .unwrap_or_else(|p| p.into_inner().report())
    }
}

impl PingRun {
    /// A reader of this run's report for another thread.
    pub fn watch(&self) -> PingWatch {
        PingWatch(Arc::clone(&self.log))
    }

    /// Starts `ping` to `target` every `interval_ms`, inside namespace `ns` if given.
    /// Intervals under 200 ms need root (the demo runs as root).
    pub fn start(ns: Option<&str>, target: IpAddr, interval_ms: u64) -> Result<PingRun, PingError> {
        if interval_ms == 0 {
            return Err(PingError::BadInterval(interval_ms));
        }
        let mut cmd = match ns {
            Some(ns) => crate::netns::command_in(ns, "ping"),
            None => Command::new("ping"),
        };
        cmd.args(ping_args(target, interval_ms))
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(PingError::Spawn)?;
        let log = Arc::new(Mutex::new(PingLog::new(interval_ms as f64)));
        let reader = child.stdout.take().map(|out| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.on_line(&line);
                    }
                }
            })
        });
        let stderr = child.stderr.take().map(|err| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut BufReader::new(err), &mut s);
                s
            })
        });
        Ok(PingRun {
            child,
            log,
            reader,
            stderr,
        })
    }

    /// The report so far (for progress while ping runs).
    pub fn snapshot(&self) -> PingReport {
        self.log
            .lock()
            .map(|l| l.report())
            .unwrap_or_else(|p| p.into_inner().report())
    }

    /// Whether ping is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops ping with SIGINT (so it prints its summary; SIGKILL after 2 s) and returns
    /// the final report. If ping had already died on its own, its stderr is the error.
    pub fn stop(mut self) -> Result<PingReport, PingError> {
        let already = self.child.try_wait().map_err(PingError::Wait)?;
        if already.is_none() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
                unsafe {
                    libc::kill(pid, libc::SIGINT);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                if self.child.try_wait().map_err(PingError::Wait)?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let report = self.snapshot();
        if let Some(status) = already {
            if report.sent == 0 {
                return Err(PingError::Exited {
                    status: status.to_string(),
                    stderr: stderr.trim().to_string(),
                });
            }
        }
        Ok(report)
    }
}

impl Drop for PingRun {
    fn drop(&mut self) {
        // A run dropped without stop() must not leave ping behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_line_kind() {
        assert_eq!(
            parse_line(
                "[1795999706.087128] 64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.070 ms"
            ),
            PingLine::Reply {
                at_s: Some(1795999706.087128),
                seq: 1,
                rtt_ms: 0.070,
                dup: false
            }
        );
        assert_eq!(
            parse_line("[1795999712.603638] no answer yet for icmp_seq=11"),
            PingLine::NoAnswer {
                at_s: Some(1795999712.603638),
                seq: 11
            }
        );
        assert!(matches!(
            parse_line("[1795999728.087948] From 10.99.0.1 icmp_seq=1 Destination Host Unreachable"),
            PingLine::Error { seq: 1, ref message, .. } if message == "Destination Host Unreachable"
        ));
        assert_eq!(
            parse_line(
                "24 packets transmitted, 0 received, +12 errors, 100% packet loss, time 4502ms"
            ),
            PingLine::Summary {
                transmitted: 24,
                received: 0,
                errors: 12
            }
        );
        assert_eq!(
            parse_line("rtt min/avg/max/mdev = 0.036/190.323/1029.981/317.703 ms, pipe 10"),
            PingLine::Other
        );
        assert_eq!(
            parse_line("64 bytes from x: icmp_seq=70000 ttl=1 time=1 ms"),
            PingLine::Other
        );
        assert!(matches!(
            parse_line("64 bytes from 10.0.0.1: icmp_seq=5 ttl=64 time=0.1 ms (DUP!)"),
            PingLine::Reply {
                dup: true,
                at_s: None,
                ..
            }
        ));
    }

    #[test]
    fn a_request_in_flight_at_the_stop_is_not_lost_but_an_outage_at_the_end_is() {
        let run = |transmitted: u64| {
            let mut log = PingLog::new(100.0);
            for s in 1..=20 {
                log.on_line(&format!(
                    "64 bytes from a: icmp_seq={s} ttl=64 time=22.0 ms"
                ));
            }
            log.on_line(&format!(
                "{transmitted} packets transmitted, 20 received, 5% packet loss, time 2000ms"
            ));
            let r = log.report();
            (r.sent, r.lost)
        };
        // One or a few requests (≤ 500 ms of them) sent just before SIGINT: in flight.
        assert_eq!(run(21), (20, 0));
        assert_eq!(run(25), (20, 0));
        // Longer than that without a reply: the end of the run was an outage.
        assert_eq!(run(26), (26, 6));
        assert_eq!(run(30), (30, 10));
    }

    #[test]
    fn sequence_wraps_past_65535() {
        let mut log = PingLog::new(100.0);
        for s in [65534u32, 65535, 0, 1] {
            log.on_line(&format!("64 bytes from a: icmp_seq={s} ttl=64 time=1.0 ms"));
        }
        // Seqs 1..65533 were never seen in this synthetic log; what matters is the unwrap.
        assert_eq!(log.sent(), 65537);
        assert!(log.replies.contains_key(&65536) && log.replies.contains_key(&65537));
    }
}
