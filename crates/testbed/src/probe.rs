//! The 1 ms UDP sequence probe: a precise view of service interruption that `ping -i 0.1`
//! (the thesis' probe) only samples every 100 ms.
//!
//! A sender on the far end (server3) sends a numbered datagram every interval to the pool's
//! TUN address; an echo responder on each pool server returns it unchanged; the sender
//! records what came back. [`ProbeLog`] is the pure bookkeeping, [`ProbeReport`] what it
//! concludes; [`run_sender`] and [`run_echo`] are the thin socket shells.
//!
//! Wire format (24 bytes, big-endian): magic `b"FRPB"`, run id u32, sequence u64, send time
//! in nanoseconds since the run's start u64. Anything else is counted as a stranger and
//! ignored.

use serde::Serialize;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Magic of a probe datagram.
pub const MAGIC: [u8; 4] = *b"FRPB";
/// Length of a probe datagram (its header; a padded probe carries zeros after it).
pub const LEN: usize = 24;
/// Longest probe datagram: a padded probe fills up to one 1500-byte IP packet.
pub const MAX_LEN: usize = 1472;

/// One probe datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Distinguishes runs, so late echoes of an earlier run are not counted.
    pub run: u32,
    /// Sequence number from 0.
    pub seq: u64,
    /// Send time, ns since the run started.
    pub sent_ns: u64,
}

impl Probe {
    /// Encodes into the 24-byte wire form.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.run.to_be_bytes());
        b[8..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
        b
    }

    /// Parses a datagram (a probe's header, and for a padded probe the padding up to
    /// [`MAX_LEN`]); `None` for anything that is not a probe.
    pub fn decode(b: &[u8]) -> Option<Probe> {
        if !(LEN..=MAX_LEN).contains(&b.len()) || b[..4] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        Some(Probe {
            run: u32_at(4),
            seq: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

/// Per-sequence outcome, for plots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Sequence number.
    pub seq: u64,
    /// Send time in ms since the run started.
    pub sent_ms: f64,
    /// Round-trip time in ms, `None` when lost.
    pub rtt_ms: Option<f64>,
}

/// Pure bookkeeping of one probe run.
#[derive(Debug, Clone)]
pub struct ProbeLog {
    run: u32,
    interval_ns: u64,
    sent: Vec<u64>,
    rtt: Vec<Option<u64>>,
    duplicates: u64,
    /// Send times of the probes echoed more than once (two servers delivering).
    duplicated_at: Vec<u64>,
    strangers: u64,
}

/// Figures of the probes of one time window ([`ProbeLog::window`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbeWindow {
    /// Probes sent in the window.
    pub sent: u64,
    /// Of those, not echoed.
    pub lost: u64,
    /// Mean round-trip time of the echoed, ms.
    pub rtt_avg_ms: Option<f64>,
    /// Largest round-trip time, ms.
    pub rtt_max_ms: Option<f64>,
    /// Longest time between two echoed probes' sends (or the window's edges), ms.
    pub longest_gap_ms: Option<f64>,
    /// Probes sent in the window that were echoed more than once.
    pub duplicates: u64,
}

/// What a probe run shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// Send interval in ms.
    pub interval_ms: f64,
    /// Probes sent.
    pub sent: u64,
    /// Probes echoed back.
    pub received: u64,
    /// Probes never echoed.
    pub lost: u64,
    /// Echoes seen more than once.
    pub duplicates: u64,
    /// Datagrams that were not ours.
    pub strangers: u64,
    /// Longest run of consecutive lost probes.
    pub longest_loss_run: u64,
    /// The thesis' interruption measure: lost × interval, in ms.
    pub interruption_ms: f64,
    /// Longest time between the send times of two consecutive echoed probes, in ms: the
    /// service gap as the probe saw it (one interval when nothing is lost).
    pub longest_gap_ms: f64,
    /// Send time (ms) where the longest gap began, if any probe was lost.
    pub longest_gap_at_ms: Option<f64>,
    /// Median round-trip time, ms.
    pub rtt_median_ms: Option<f64>,
    /// 95th-percentile round-trip time, ms.
    pub rtt_p95_ms: Option<f64>,
    /// Maximum round-trip time, ms.
    pub rtt_max_ms: Option<f64>,
}

impl ProbeLog {
    /// A new run.
    pub fn new(run: u32, interval: Duration) -> Self {
        ProbeLog {
            run,
            interval_ns: interval.as_nanos().min(u128::from(u64::MAX)) as u64,
            sent: Vec::new(),
            rtt: Vec::new(),
            duplicates: 0,
            duplicated_at: Vec::new(),
            strangers: 0,
        }
    }

    /// Records a send; returns the datagram to put on the wire.
    pub fn on_send(&mut self, now_ns: u64) -> Probe {
        let seq = self.sent.len() as u64;
        self.sent.push(now_ns);
        self.rtt.push(None);
        Probe {
            run: self.run,
            seq,
            sent_ns: now_ns,
        }
    }

    /// Records a received datagram.
    pub fn on_receive(&mut self, now_ns: u64, datagram: &[u8]) {
        let Some(p) = Probe::decode(datagram).filter(|p| p.run == self.run) else {
            self.strangers += 1;
            return;
        };
        let Some(i) = usize::try_from(p.seq).ok().filter(|&i| i < self.sent.len()) else {
            self.strangers += 1;
            return;
        };
        if self.sent[i] != p.sent_ns {
            self.strangers += 1;
            return;
        }
        match self.rtt[i] {
            Some(_) => {
                self.duplicates += 1;
                if self.duplicated_at.len() < 1 << 20 {
                    self.duplicated_at.push(p.sent_ns);
                }
            }
            None => self.rtt[i] = Some(now_ns.saturating_sub(p.sent_ns)),
        }
    }

    /// Per-probe samples for plots.
    pub fn samples(&self) -> Vec<Sample> {
        self.sent
            .iter()
            .zip(&self.rtt)
            .enumerate()
            .map(|(i, (&s, r))| Sample {
                seq: i as u64,
                sent_ms: s as f64 / 1e6,
                rtt_ms: r.map(|r| r as f64 / 1e6),
            })
            .collect()
    }

    /// Figures of the probes sent in `[from_ns, to_ns)` (a live watcher's second): sent,
    /// lost (not echoed yet), mean and largest round-trip time in ms, and the longest time
    /// between the sends of two echoed probes in ms (one interval when nothing is lost).
    pub fn window(&self, from_ns: u64, to_ns: u64) -> ProbeWindow {
        let a = self.sent.partition_point(|&t| t < from_ns);
        let b = self.sent.partition_point(|&t| t < to_ns);
        let mut w = ProbeWindow {
            sent: (b - a) as u64,
            ..ProbeWindow::default()
        };
        let (mut sum, mut n) = (0u64, 0u64);
        let mut prev = from_ns;
        let mut gap = 0u64;
        for i in a..b {
            match self.rtt[i] {
                Some(r) => {
                    sum += r;
                    n += 1;
                    w.rtt_max_ms = Some(w.rtt_max_ms.map_or(0.0, |m: f64| m).max(r as f64 / 1e6));
                    gap = gap.max(self.sent[i].saturating_sub(prev));
                    prev = self.sent[i];
                }
                None => w.lost += 1,
            }
        }
        w.duplicates = self
            .duplicated_at
            .iter()
            .filter(|&&t| t >= from_ns && t < to_ns)
            .count() as u64;
        if w.sent > 0 {
            gap = gap.max(to_ns.saturating_sub(prev)).max(self.interval_ns);
            w.longest_gap_ms = Some(gap as f64 / 1e6);
        }
        if n > 0 {
            w.rtt_avg_ms = Some(sum as f64 / n as f64 / 1e6);
        }
        w
    }

    /// Summary.
    pub fn report(&self) -> ProbeReport {
        let sent = self.sent.len() as u64;
        let received = self.rtt.iter().filter(|r| r.is_some()).count() as u64;
        let mut run = 0u64;
        let mut longest_run = 0u64;
        for r in &self.rtt {
            if r.is_none() {
                run += 1;
                longest_run = longest_run.max(run);
            } else {
                run = 0;
            }
        }
        let interval_ms = self.interval_ns as f64 / 1e6;
        // Gap between consecutive echoed probes; losses at the very start or end count from
        // the run's first / last send so a dead service is not reported as gap-free.
        let mut longest_gap = 0u64;
        let mut gap_at = None;
        let mut prev: Option<u64> = None;
        let mut any_loss_since_prev = false;
        for (i, r) in self.rtt.iter().enumerate() {
            let t = self.sent[i];
            if r.is_some() {
                let from = prev.unwrap_or(self.sent[0]);
                let gap = if prev.is_none() && !any_loss_since_prev {
                    self.interval_ns
                } else {
                    t.saturating_sub(from)
                };
                if gap > longest_gap {
                    longest_gap = gap;
                    gap_at = any_loss_since_prev.then_some(from);
                }
                prev = Some(t);
                any_loss_since_prev = false;
            } else {
                any_loss_since_prev = true;
            }
        }
        if any_loss_since_prev {
            let from = prev.unwrap_or(self.sent[0]);
            let end = self.sent.last().copied().unwrap_or(from) + self.interval_ns;
            if end - from > longest_gap {
                longest_gap = end - from;
                gap_at = Some(from);
            }
        }
        let mut rtts: Vec<u64> = self.rtt.iter().flatten().copied().collect();
        rtts.sort_unstable();
        let pct = |q: f64| -> Option<f64> {
            if rtts.is_empty() {
                return None;
            }
            let idx = ((rtts.len() - 1) as f64 * q).round() as usize;
            Some(rtts[idx] as f64 / 1e6)
        };
        ProbeReport {
            interval_ms,
            sent,
            received,
            lost: sent - received,
            duplicates: self.duplicates,
            strangers: self.strangers,
            longest_loss_run: longest_run,
            interruption_ms: (sent - received) as f64 * interval_ms,
            longest_gap_ms: longest_gap as f64 / 1e6,
            longest_gap_at_ms: gap_at.map(|t| t as f64 / 1e6),
            rtt_median_ms: pct(0.5),
            rtt_p95_ms: pct(0.95),
            rtt_max_ms: rtts.last().map(|&r| r as f64 / 1e6),
        }
    }
}

/// Sends probes to `to` every `interval` for `count` probes, collecting echoes; waits
/// `linger` after the last send for stragglers. `stop` ends early when set.
pub fn run_sender(
    to: SocketAddr,
    interval: Duration,
    count: u64,
    linger: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> std::io::Result<ProbeLog> {
    run_sender_observed(to, interval, count, linger, stop, &mut |_, _| {})
}

/// As [`run_sender`] with datagrams of `size` bytes (the probe padded with zeros; clamped
/// to [`LEN`]..=[`MAX_LEN`]): traffic that loads the link as well as probing it.
pub fn run_sender_sized(
    to: SocketAddr,
    interval: Duration,
    count: u64,
    size: usize,
    linger: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> std::io::Result<ProbeLog> {
    sender(to, interval, count, size, linger, stop, &mut |_, _| {})
}

/// As [`run_sender`], also calling `observe(log, now_ns)` about every 100 ms, between sends
/// on the sender's own thread (live watchers; it must return at once).
pub fn run_sender_observed(
    to: SocketAddr,
    interval: Duration,
    count: u64,
    linger: Duration,
    stop: &std::sync::atomic::AtomicBool,
    observe: &mut dyn FnMut(&ProbeLog, u64),
) -> std::io::Result<ProbeLog> {
    sender(to, interval, count, LEN, linger, stop, observe)
}

fn sender(
    to: SocketAddr,
    interval: Duration,
    count: u64,
    size: usize,
    linger: Duration,
    stop: &std::sync::atomic::AtomicBool,
    observe: &mut dyn FnMut(&ProbeLog, u64),
) -> std::io::Result<ProbeLog> {
    use std::sync::atomic::Ordering;
    let mut datagram = vec![0u8; size.clamp(LEN, MAX_LEN)];
    let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    sock.connect(to)?;
    sock.set_nonblocking(true)?;
    let run = std::process::id() ^ (Instant::now().elapsed().subsec_nanos());
    let mut log = ProbeLog::new(run, interval);
    let start = Instant::now();
    let ns = |t: Instant| t.duration_since(start).as_nanos() as u64;
    let mut buf = [0u8; MAX_LEN + 1];
    let mut next_look = 0u64;
    let mut drain = |log: &mut ProbeLog| {
        while let Ok(n) = sock.recv(&mut buf) {
            log.on_receive(ns(Instant::now()), &buf[..n]);
        }
    };
    for i in 0..count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start + interval * (i as u32);
        // Sleep most of the way, then poll for echoes until the deadline.
        loop {
            drain(&mut log);
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_micros(200)));
        }
        let now = ns(Instant::now());
        if now >= next_look {
            observe(&log, now);
            next_look = now + 100_000_000;
        }
        let p = log.on_send(ns(Instant::now()));
        // A send error (no route during a migration, ICMP unreachable) is a lost probe.
        datagram[..LEN].copy_from_slice(&p.encode());
        let _ = sock.send(&datagram);
    }
    let end = Instant::now() + linger;
    while Instant::now() < end {
        drain(&mut log);
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(log)
}

/// Echoes every probe datagram back to its sender until `stop` is set. Returns how many
/// probes were echoed; non-probe datagrams are ignored.
pub fn run_echo(bind: SocketAddr, stop: &std::sync::atomic::AtomicBool) -> std::io::Result<u64> {
    use std::sync::atomic::Ordering;
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = [0u8; MAX_LEN + 1];
    let mut echoed = 0;
    while !stop.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, from))
                if Probe::decode(&buf[..n]).is_some() && sock.send_to(&buf[..n], from).is_ok() =>
            {
                echoed += 1;
            }
            _ => {}
        }
    }
    Ok(echoed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_its_own_probes_and_its_gap() {
        // 1 ms probes, 20..=29 lost.
        let pattern: Vec<bool> = (0..100).map(|i| !(20..30).contains(&i)).collect();
        let log = log_with(&pattern);
        let w = log.window(10_000_000, 50_000_000);
        assert_eq!((w.sent, w.lost), (40, 10));
        assert_eq!(w.rtt_avg_ms, Some(0.3));
        assert_eq!(w.rtt_max_ms, Some(0.3));
        // Echoed 19 then 30: 11 ms between their sends.
        assert_eq!(w.longest_gap_ms, Some(11.0));
        let clean = log.window(50_000_000, 60_000_000);
        assert_eq!(
            (clean.sent, clean.lost, clean.longest_gap_ms),
            (10, 0, Some(1.0))
        );
        assert_eq!(log.window(500_000_000, 600_000_000), ProbeWindow::default());
    }

    fn log_with(pattern: &[bool]) -> ProbeLog {
        let mut log = ProbeLog::new(7, Duration::from_millis(1));
        for (i, &ok) in pattern.iter().enumerate() {
            let p = log.on_send(i as u64 * 1_000_000);
            if ok {
                log.on_receive(i as u64 * 1_000_000 + 300_000, &p.encode());
            }
        }
        log
    }

    #[test]
    fn codec_round_trip_and_rejects_strangers() {
        let p = Probe {
            run: 0xdead_beef,
            seq: 1 << 40,
            sent_ns: 123_456_789,
        };
        assert_eq!(Probe::decode(&p.encode()), Some(p));
        assert_eq!(Probe::decode(b"FRPB"), None);
        let mut bad = p.encode();
        bad[0] = b'X';
        assert_eq!(Probe::decode(&bad), None);
        // Padded probes up to one 1500-byte packet; longer is not a probe.
        let mut padded = vec![0u8; MAX_LEN];
        padded[..LEN].copy_from_slice(&p.encode());
        assert_eq!(Probe::decode(&padded), Some(p));
        padded.push(0);
        assert_eq!(Probe::decode(&padded), None);
    }

    #[test]
    fn padded_probes_are_echoed_whole_over_a_real_socket() {
        let (r, echoed) = over_loopback_with(Duration::from_millis(2), 30, 600);
        assert_eq!((r.sent, r.lost, echoed), (30, 0, 30));
    }

    #[test]
    fn no_loss_means_one_interval_gap() {
        let r = log_with(&[true; 100]).report();
        assert_eq!(
            (r.sent, r.received, r.lost, r.longest_loss_run),
            (100, 100, 0, 0)
        );
        assert_eq!(r.longest_gap_ms, 1.0);
        assert_eq!(r.longest_gap_at_ms, None);
        assert_eq!(r.rtt_median_ms, Some(0.3));
    }

    #[test]
    fn a_hole_is_measured() {
        let mut pat = vec![true; 50];
        for p in pat.iter_mut().skip(10).take(19) {
            *p = false;
        }
        let r = log_with(&pat).report();
        assert_eq!(r.lost, 19);
        assert_eq!(r.longest_loss_run, 19);
        assert_eq!(r.interruption_ms, 19.0);
        // Last echo before the hole was sent at 9 ms, first after at 29 ms.
        assert_eq!(r.longest_gap_ms, 20.0);
        assert_eq!(r.longest_gap_at_ms, Some(9.0));
    }

    #[test]
    fn losses_at_the_end_count_as_a_gap() {
        let mut pat = vec![true; 10];
        pat.extend([false; 5]);
        let r = log_with(&pat).report();
        assert_eq!(r.lost, 5);
        assert_eq!(r.longest_gap_ms, 6.0);
    }

    #[test]
    fn duplicates_and_strangers_are_counted_not_believed() {
        let mut log = ProbeLog::new(1, Duration::from_millis(1));
        let p = log.on_send(0);
        log.on_receive(10, &p.encode());
        log.on_receive(20, &p.encode());
        let other_run = Probe { run: 2, ..p };
        log.on_receive(30, &other_run.encode());
        let future = Probe { seq: 5, ..p };
        log.on_receive(30, &future.encode());
        log.on_receive(30, b"garbage");
        let r = log.report();
        assert_eq!((r.received, r.duplicates, r.strangers), (1, 1, 3));
    }

    /// `count` probes of `size` bytes every `interval` to a real echo on 127.0.0.1: the
    /// report and how many the echo answered.
    fn over_loopback_with(interval: Duration, count: u64, size: usize) -> (ProbeReport, u64) {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        drop(sock);
        let s2 = stop.clone();
        let echo = std::thread::spawn(move || run_echo(addr, &s2).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        let never = AtomicBool::new(false);
        let log = run_sender_sized(
            addr,
            interval,
            count,
            size,
            Duration::from_millis(200),
            &never,
        )
        .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (log.report(), echo.join().unwrap())
    }

    #[test]
    fn over_loopback() {
        let (r, echoed) = over_loopback_with(Duration::from_millis(1), 200, LEN);
        assert_eq!(r.sent, 200);
        assert_eq!(echoed, 200);
        assert_eq!(r.received, 200, "{r:?}");
    }
}
