//! `ferry demo failover` (issue #12): unplanned failover in the thesis testbed with real
//! processes. The task runs on server1; `ping -i 0.1` and the 1 ms probe run from server3;
//! a hot standby protects the task (`ferry ctl protect`); at fixed moments the serving
//! modem is killed (`kill -9`), the whole serving server dies (every process of its
//! namespace killed), or the serving modem is paused (SIGSTOP for a while, then SIGCONT);
//! after each event the task is protected again from the new serving server. The same kill
//! without protection, recovered by hand as the thesis' operator would (`kill_d2d` +
//! `start_d2d` after a reaction time), is the baseline.
//!
//! Per event: detection (the radio's arbiter switched, timed by `ferry radio watch` polling
//! link control every millisecond), outage (longest probe gap), probes and pings lost,
//! duplicates (probes echoed twice: two servers delivering), split brain (any duplicate),
//! and how long the task was unprotected (failover → the new standby is warm).
//!
//! The decisions (who serves) are the radio's and the modems' pure machines
//! (`ferry_radio::unit`, `ferry_modem::cutover`); this module only causes the faults and
//! measures.

use crate::live::LiveEvent;
use crate::probe::ProbeLog;
use crate::report::RunMeta;
use crate::session::{self, Bed, SessionError, Traffic, RADIO_CTL};
use crate::video::unix_ms;
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// Probes sent this long before a fault belong to its window (more than the link's round
/// trip, less than the time between events).
const LEAD_IN_MS: f64 = 100.0;

/// A fault the demo causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kill -9` of the serving modem.
    KillModem,
    /// `kill -9` of every process of the serving server (its namespace): agent and modem.
    KillServer,
    /// SIGSTOP of the serving modem for [`FailoverOptions::pause`], then SIGCONT: it must
    /// not serve again on its own (fenced by the radio, steps down on the new epoch).
    Pause,
    /// The serving server cut off: its fronthaul link down for [`FailoverOptions::pause`]
    /// and its management link for [`PARTITION_MGMT_EXTRA`] longer, then both back. Its
    /// modem runs on and must not serve again: its late TX is fenced by the radio and it
    /// steps down when it hears the new epoch.
    Partition,
}

/// How much longer than its fronthaul the partitioned server's management link stays
/// down: twice the radio's notice repetition (its context interval, 1 s), so the
/// deposed modem hears the new epoch on its fronthaul — and steps down by itself — before
/// the controller can reach its agent and stop it.
pub const PARTITION_MGMT_EXTRA: Duration = Duration::from_millis(2000);

impl FaultKind {
    /// Every kind, in the demo's order.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::KillModem,
        FaultKind::KillServer,
        FaultKind::Pause,
        FaultKind::Partition,
    ];

    /// What the table calls it.
    pub fn title(self) -> &'static str {
        match self {
            FaultKind::KillModem => "kill -9 serving modem",
            FaultKind::KillServer => "kill -9 serving server",
            FaultKind::Pause => "SIGSTOP modem 1 s",
            FaultKind::Partition => "partition server 1 s",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// The `ferry` binary to start in the namespaces.
    pub ferry: PathBuf,
    /// Namespace prefix.
    pub prefix: String,
    /// Protected events, in order (each followed by re-protection).
    pub events: Vec<FaultKind>,
    /// Run the unprotected baseline first (kill -9 of the serving modem, recovered by hand).
    pub baseline: bool,
    /// The operator's reaction time in the baseline.
    pub operator_reaction: Duration,
    /// How long a paused modem stays stopped, and a partitioned server's fronthaul down.
    pub pause: Duration,
    /// Traffic held after each event (and after each protection) before the next.
    pub hold: Duration,
    /// Probe interval.
    pub probe_interval: Duration,
    /// LTE bandwidth, MHz (`None`: 1.4).
    pub bw: Option<f64>,
    /// Where live events go (the web view of `ferry demo failover --web`), if anywhere.
    pub live: Option<crate::live::LiveSink>,
}

impl FailoverOptions {
    /// Defaults: the baseline, then each kind once; 1 ms probe; 2 s holds.
    pub fn new(ferry: PathBuf, prefix: &str) -> FailoverOptions {
        FailoverOptions {
            ferry,
            prefix: prefix.to_string(),
            events: FaultKind::ALL.to_vec(),
            baseline: true,
            operator_reaction: Duration::from_secs(2),
            pause: Duration::from_secs(1),
            hold: Duration::from_secs(2),
            probe_interval: Duration::from_millis(1),
            bw: None,
            live: None,
        }
    }
}

/// One event's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventReport {
    /// What happened.
    pub kind: FaultKind,
    /// Whether a hot standby protected the task.
    pub protected: bool,
    /// Server that served before.
    pub from: u8,
    /// Server that serves after (as the radio and the probe show).
    pub to: u8,
    /// When it happened, ms since the probe started.
    pub at_ms: f64,
    /// Detection and switch as the radio measured them on its own clock: from the last TX
    /// datagram of the silent primary to the switch instant, ms (`None`: no switch).
    pub detect_ms: Option<f64>,
    /// Longest probe gap around the event, ms.
    pub outage_ms: f64,
    /// Probes lost around the event.
    pub probes_lost: u64,
    /// Pings lost around the event.
    pub pings_lost: u64,
    /// Probes echoed more than once around the event.
    pub duplicates: u64,
    /// Two servers delivered at once (any duplicate).
    pub split_brain: bool,
    /// Failover → protected again, on the radio's clock (its `protection_since` when the
    /// failover left the task unprotected, to its `protection_since` when the controller's
    /// new standby was taken), ms.
    pub reprotect_ms: Option<f64>,
    /// Pause and partition: TX datagrams of the deposed primary the radio dropped (stale
    /// epoch) from the event until it stepped down or was stopped; `None` for the kills.
    /// (Later, a new standby warming up on the same endpoint is counted by the radio too,
    /// until it is taken as the standby: not in this window.)
    pub fenced_packets: Option<u64>,
    /// Pause and partition: whether the deposed modem stepped down by itself (on the
    /// radio's notice of the new epoch) before it was stopped; `None` for the kills.
    pub stepped_down: Option<bool>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    /// Host, build, time.
    pub meta: RunMeta,
    /// Probe interval, ms.
    pub probe_interval_ms: f64,
    /// Events in order.
    pub events: Vec<EventReport>,
    /// Probe over the whole run.
    pub probe: crate::probe::ProbeReport,
    /// Ping over the whole run.
    pub ping: crate::ping::PingReport,
    /// Probe samples (send ms since the probe started, RTT ms or lost) for plots.
    #[serde(skip)]
    pub samples: Vec<(f64, Option<f64>)>,
    /// Changes of primary nobody caused: the radio failed over between events (a live
    /// primary that sent nothing for the liveness interval, e.g. a stalled process).
    pub unplanned_switches: Vec<UnplannedSwitch>,
    /// The re-protection controller's log (`ferry ctl protect --auto`).
    #[serde(skip)]
    pub controller_log: String,
}

/// A change of primary between events, as `ferry radio watch` saw it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnplannedSwitch {
    /// When the watcher saw it, ms since the probe started.
    pub at_ms: f64,
    /// Who the demo thought served.
    pub expected: u8,
    /// The radio's primary.
    pub primary: Option<String>,
}

/// Median and maximum of `v` (None when empty).
pub fn median_max(mut v: Vec<f64>) -> Option<(f64, f64)> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some((m, v[v.len() - 1]))
}

impl FailoverReport {
    /// The table printed at the end.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{:<30} {:>9} {:>9} {:>9} {:>7} {:>6} {:>5} {:>6} {:>12} {:>7} {:>9}\n",
            "event",
            "protected",
            "detect ms",
            "outage ms",
            "probes",
            "pings",
            "dups",
            "split",
            "reprotect ms",
            "fenced",
            "stepped"
        ));
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.1}"));
        for e in &self.events {
            s.push_str(&format!(
                "{:<30} {:>9} {:>9} {:>9.1} {:>7} {:>6} {:>5} {:>6} {:>12} {:>7} {:>9}\n",
                format!("{} (s{}→s{})", e.kind.title(), e.from, e.to),
                if e.protected { "yes" } else { "no" },
                opt(e.detect_ms),
                e.outage_ms,
                e.probes_lost,
                e.pings_lost,
                e.duplicates,
                if e.split_brain { "YES" } else { "no" },
                opt(e.reprotect_ms),
                e.fenced_packets
                    .map_or_else(|| "-".to_string(), |f| f.to_string()),
                match e.stepped_down {
                    Some(true) => "down",
                    Some(false) => "stopped",
                    None => "-",
                },
            ));
        }
        for kind in FaultKind::ALL {
            for protected in [true, false] {
                let of: Vec<&EventReport> = self
                    .events
                    .iter()
                    .filter(|e| e.kind == kind && e.protected == protected)
                    .collect();
                if let Some((m, w)) = median_max(of.iter().map(|e| e.outage_ms).collect()) {
                    s.push_str(&format!(
                        "{} ({}), {} events: outage median {m:.1} ms, worst {w:.1} ms\n",
                        kind.title(),
                        if protected {
                            "protected"
                        } else {
                            "unprotected"
                        },
                        of.len()
                    ));
                }
            }
        }
        if !self.unplanned_switches.is_empty() {
            s.push_str(&format!(
                "unplanned switches between events (a live primary silent for the liveness interval): {}\n",
                self.unplanned_switches.len()
            ));
        }
        s.push_str(&format!(
            "probe: {} sent, {} lost, {} duplicates; ping: {} sent, {} lost\n",
            self.probe.sent, self.probe.lost, self.probe.duplicates, self.ping.sent, self.ping.lost
        ));
        s
    }

    /// `--json`: `{events: [{kind, protected, detect_ms, outage_ms, probes_lost, pings_lost,
    /// duplicates, split_brain, reprotect_ms, ...}], probe, ping, meta}`.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Probe RTT and losses over the run with the events marked.
    pub fn svg(&self) -> Result<String, crate::plot::PlotError> {
        let marks: Vec<crate::plot::Mark> = self
            .events
            .iter()
            .map(|e| crate::plot::Mark {
                label: format!(
                    "{}{}",
                    e.kind.title(),
                    if e.protected { "" } else { " (unprotected)" }
                ),
                start_ms: e.at_ms,
                end_ms: e.at_ms + e.outage_ms.max(1.0),
                method: if e.protected {
                    crate::report::Method::Mbb
                } else {
                    crate::report::Method::Legacy
                },
            })
            .collect();
        crate::plot::delay_svg(
            "Failover: probe round-trip time and losses (events marked)",
            &self.samples,
            &marks,
        )
    }
}

/// One line of `ferry radio watch`.
#[derive(Debug, Clone)]
struct WatchLine {
    /// When the watcher had the reply (Unix ms).
    unix_ms: f64,
    /// The radio's sample time in the reply.
    sample: u64,
    rate_hz: f64,
    failovers: u64,
    primary: Option<String>,
    /// First sample of the current assignment.
    primary_since: u64,
    /// Silence before the latest fallback / failover (samples).
    last_silence: u64,
    /// The protecting standby.
    standby: Option<String>,
    /// Since when (sample) protected by `standby`, or unprotected.
    protection_since: u64,
    /// TX datagrams of deposed primaries dropped so far.
    fenced_packets: u64,
}

/// Lines of `ferry radio watch`.
struct Watch {
    child: Child,
    lines: Receiver<WatchLine>,
    seen: Vec<WatchLine>,
}

impl Watch {
    fn start(bed: &Bed) -> Result<Watch, SessionError> {
        let mut c = bed.ferry_in("server3");
        c.args(["radio", "--control", RADIO_CTL, "--key"])
            .arg(bed.key())
            .args(["watch", "pool", "--interval-ms", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c
            .spawn()
            .map_err(|e| SessionError::Failed(format!("ferry radio watch: {e}")))?;
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) else {
                        continue;
                    };
                    let line = WatchLine {
                        unix_ms: v["unix_ms"].as_f64().unwrap_or(0.0),
                        sample: v["sample"].as_u64().unwrap_or(0),
                        rate_hz: v["rate_hz"].as_f64().unwrap_or(1.0).max(1.0),
                        failovers: v["failovers"].as_u64().unwrap_or(0),
                        primary: v["primary"].as_str().map(str::to_string),
                        primary_since: v["primary_since"].as_u64().unwrap_or(0),
                        last_silence: v["last_silence_samples"].as_u64().unwrap_or(0),
                        standby: v["standby"].as_str().map(str::to_string),
                        protection_since: v["protection_since"].as_u64().unwrap_or(0),
                        fenced_packets: v["fenced_packets"].as_u64().unwrap_or(0),
                    };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Watch {
            child,
            lines: rx,
            seen: Vec::new(),
        })
    }

    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// The first failover after `since` (Unix ms): when it took effect on the air (Unix
    /// ms), the new primary, and the silence the radio measured before it (ms: from the
    /// last TX datagram of the dead primary to the switch, on the radio's own clock). The
    /// radio says at which sample the switch took effect; its sample clock is mapped to
    /// Unix time through the replies that came back fastest (the smallest Unix − sample
    /// time over every line: the least transport delay).
    fn failover_after(&mut self, since: f64, before: u64) -> Option<(f64, WatchLine, f64)> {
        self.drain();
        let l = self
            .seen
            .iter()
            .find(|l| l.unix_ms >= since && l.failovers > before)?
            .clone();
        let offset = self
            .seen
            .iter()
            .filter(|x| x.rate_hz == l.rate_hz)
            .map(|x| x.unix_ms - x.sample as f64 / x.rate_hz * 1e3)
            .fold(f64::INFINITY, f64::min);
        let at = if offset.is_finite() {
            offset + l.primary_since as f64 / l.rate_hz * 1e3
        } else {
            l.unix_ms
        };
        let silence = l.last_silence as f64 / l.rate_hz * 1e3;
        Some((at, l, silence))
    }

    /// The first line at or after `since` (Unix ms) where `primary` serves protected by
    /// `standby` (endpoint prefixes), waiting at most `timeout`.
    fn wait_protected(
        &mut self,
        since: f64,
        primary: &str,
        standby: &str,
        timeout: Duration,
    ) -> Option<WatchLine> {
        let end = std::time::Instant::now() + timeout;
        loop {
            self.drain();
            let hit = self.seen.iter().find(|l| {
                l.unix_ms >= since
                    && l.primary.as_deref().is_some_and(|p| p.starts_with(primary))
                    && l.standby.as_deref().is_some_and(|s| s.starts_with(standby))
            });
            if let Some(l) = hit {
                return Some(l.clone());
            }
            if std::time::Instant::now() >= end || session::interrupted() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the radio's latest state is server n serving, protected by the other
    /// pool server; returns n.
    fn wait_any_protected_now(&mut self, timeout: Duration) -> Option<u8> {
        let end = std::time::Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(l) = self.seen.last() {
                for n in [1u8, 2] {
                    if l.primary.as_deref() == Some(endpoint(n).as_str())
                        && l.standby.as_deref() == Some(endpoint(3 - n).as_str())
                    {
                        return Some(n);
                    }
                }
            }
            if std::time::Instant::now() >= end || session::interrupted() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The radio's count of fenced TX datagrams, as last seen.
    fn fenced(&mut self) -> u64 {
        // Give the 1 ms watcher a moment to report the latest count.
        std::thread::sleep(Duration::from_millis(20));
        self.drain();
        self.seen.last().map_or(0, |l| l.fenced_packets)
    }

    fn failovers(&mut self) -> u64 {
        self.drain();
        self.seen.last().map_or(0, |l| l.failovers)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pids: &[i32], sig: i32) {
    for &p in pids {
        // SAFETY: kill(2) on pids just read from the testbed's namespace.
        unsafe { libc::kill(p, sig) };
    }
}

/// `ferry ctl` on server `from` with the run's keys, `--local` = `from`, `--peer` = `to`.
fn ctl(bed: &Bed, from: u8, to: u8, op: &[&str]) -> Result<std::process::Output, SessionError> {
    bed.ferry_in(&format!("server{from}"))
        .arg("ctl")
        .arg("--key")
        .arg(bed.key())
        .arg("--radio-key")
        .arg(bed.key())
        .args([
            "--local",
            &format!("server{from}=tcp://10.99.0.{from}:5555"),
            "--peer",
            &format!("server{to}=tcp://10.99.0.{to}:5555"),
            "--radio-control",
            RADIO_CTL,
            "--radio-name",
            "pool",
        ])
        .args(op)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SessionError::Failed(format!("ferry ctl {}: {e}", op.join(" "))))
}

/// The radio endpoint of server `n`'s modem.
fn endpoint(n: u8) -> String {
    format!("192.168.10.1{n}:49200")
}

/// Starts the re-protection controller (`ferry ctl protect --auto`) on the management host
/// (server3), candidates server1 and server2; it runs until the end of the demo.
fn start_controller(bed: &mut Bed) -> Result<(), SessionError> {
    let mut c = bed.ferry_in("server3");
    c.arg("ctl")
        .arg("--key")
        .arg(bed.key())
        .arg("--radio-key")
        .arg(bed.key())
        .args([
            "--peer",
            "server1=tcp://10.99.0.1:5555",
            "--peer",
            "server2=tcp://10.99.0.2:5555",
            "--radio-control",
            RADIO_CTL,
            "--radio-name",
            "pool",
            "--timeout-ms",
            "5000",
            "protect",
            "--auto",
            "--standby-candidates",
            &format!("server1@{},server2@{}", endpoint(1), endpoint(2)),
        ]);
    bed.spawn(CONTROLLER, c)
}

/// The controller's process name in the bed (its log is `<name>.log` in the scratch dir).
const CONTROLLER: &str = "protect-auto";

/// Waits until the task is protected (server n serving, the other standing by) and
/// `ferry ctl status` on server n says so; returns n. The radio may fail a live primary
/// over between the two looks on a loaded machine (then the controller protects the new
/// one): looked at again, three times at most.
fn check_status_protected(bed: &Bed, watch: &mut Watch) -> Result<u8, SessionError> {
    let mut last = String::new();
    for _ in 0..3 {
        let Some(n) = watch.wait_any_protected_now(Duration::from_secs(20)) else {
            return Err(SessionError::Failed(format!(
                "the task is not protected within 20 s; the controller's log:\n{}",
                controller_tail(bed)
            )));
        };
        let st = ctl(bed, n, 3 - n, &["status"])?;
        let text = String::from_utf8_lossy(&st.stdout);
        if text.contains(&format!("protected by {}", endpoint(3 - n))) {
            return Ok(n);
        }
        last = format!("{text}{}", String::from_utf8_lossy(&st.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(SessionError::Failed(format!(
        "ferry ctl status does not show the task protected as the radio's watcher does:\n{last}"
    )))
}

/// The last line of the controller's log.
fn controller_tail(bed: &Bed) -> String {
    std::fs::read_to_string(bed.dir.join(format!("{CONTROLLER}.log")))
        .unwrap_or_default()
        .lines()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Cuts server `n` off (`up` false) or reconnects it: its fronthaul and/or management
/// veth peers in the switch namespace, so the server's own interfaces, addresses and
/// routes stay as they are (its sockets see no error: the frames are just lost).
fn set_links(bed: &Bed, n: u8, fronthaul: bool, mgmt: bool, up: bool) -> Result<(), SessionError> {
    let host = bed
        .topo
        .host(&format!("server{n}"))
        .ok_or_else(|| SessionError::Failed(format!("no server{n} in the topology")))?;
    // Cutting: the management link first. Each `ip` takes milliseconds, and the radio fails
    // over 5 ms after the fronthaul goes: with the management link still up, the
    // controller's `kill_d2d` reached the partitioned server's agent before its cut, and the
    // deposed modem was stopped instead of stepping down on its own.
    let mut ifaces: Vec<_> = host.ifaces.iter().collect();
    if !up {
        ifaces.sort_by_key(|i| matches!(i.bridge, crate::topology::Bridge::Fh));
    }
    for i in ifaces {
        let pick = match i.bridge {
            crate::topology::Bridge::Fh => fronthaul,
            crate::topology::Bridge::Mgmt => mgmt,
        };
        if pick {
            crate::netns::ip(&[
                "-n",
                &bed.topo.switch_ns,
                "link",
                "set",
                &i.peer,
                if up { "up" } else { "down" },
            ])
            .map_err(|e| SessionError::Failed(format!("partition of server{n}: {e}")))?;
        }
    }
    Ok(())
}

/// The deposed modem of server `n`: watches its status until it steps down on its own
/// (true), at most `within`; false if it did not (or was stopped by the controller first:
/// its socket no longer answers, which on a loaded machine can also be a slow answer, so
/// the watch goes on until the deadline).
fn watch_step_down(bed: &Bed, n: u8, before: u64, within: Duration) -> bool {
    let end = std::time::Instant::now() + within;
    let sock = format!("s{n}.sock");
    while std::time::Instant::now() < end {
        if bed
            .modem_counters(&sock)
            .is_some_and(|c| c["step_downs"].as_u64().unwrap_or(0) > before)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

struct Pending {
    kind: FaultKind,
    protected: bool,
    from: u8,
    to: u8,
    at_unix: f64,
    detect_ms: Option<f64>,
    reprotect_ms: Option<f64>,
    fenced_packets: Option<u64>,
    stepped_down: Option<bool>,
}

/// Runs the demo: testbed up, the task on server1, the events, everything down.
pub fn run(
    opts: &FailoverOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<FailoverReport, SessionError> {
    let origin = unix_ms();
    let mut bed = Bed::up(&opts.ferry, &opts.prefix)?;
    bed.bw = opts.bw;
    let live = opts.live.as_ref();
    crate::live::emit(
        live,
        LiveEvent::Testbed {
            experiment: "ping".into(),
            origin_unix_ms: origin,
            mgmt_netns: bed.ns("server3"),
            radio_control: RADIO_CTL.into(),
            agents: (1..=2)
                .map(|n| (format!("server{n}"), format!("tcp://10.99.0.{n}:5555")))
                .collect(),
            key_file: Some(bed.key()),
        },
    );
    progress(
        "starting ferry air, the far-end modem, both pool servers' agents and the task on \
         server1; waiting for the first ping through it",
    );
    bed.serving_task()?;
    let mut watch = Watch::start(&bed)?;
    crate::live::emit(
        live,
        LiveEvent::Method {
            method: "mbb".into(),
        },
    );
    crate::live::emit(
        live,
        LiveEvent::Serving {
            server: "server1".into(),
        },
    );
    let traffic = Traffic::start_live(
        &bed,
        Some(opts.probe_interval),
        opts.live.clone().map(|s| (s, origin)),
    )?;
    let t_probe = traffic.probe_started_unix_ms;
    session::sleep(opts.hold)?;
    let mut serving = 1u8;
    let mut pending = Vec::new();
    if opts.baseline {
        progress("baseline: kill -9 of the serving modem, no standby; the operator restarts it");
        let at = unix_ms();
        signal(&bed.pids(serving, "modem"), libc::SIGKILL);
        session::sleep(opts.operator_reaction)?;
        // The thesis' recovery by hand: KL (the agent already reaped its modem) then DS.
        let _ = bed.send(serving, "kill_d2d", "{}");
        bed.send(serving, "start_d2d", r#"{"control_flag":0}"#)?;
        pending.push(Pending {
            kind: FaultKind::KillModem,
            protected: false,
            from: serving,
            to: serving,
            at_unix: at,
            detect_ms: None,
            reprotect_ms: None,
            fenced_packets: None,
            stepped_down: None,
        });
        // Cold start: the far end searches the cell again.
        session::sleep(opts.hold + Duration::from_secs(2))?;
    }
    let mut unplanned = Vec::new();
    if !opts.events.is_empty() {
        progress(&format!(
            "starting the re-protection controller (ferry ctl protect --auto); it protects \
             the task on server{serving} with server{}",
            3 - serving
        ));
        start_controller(&mut bed)?;
        check_status_protected(&bed, &mut watch)?;
        session::sleep(opts.hold)?;
    }
    for (i, &kind) in opts.events.iter().enumerate() {
        // Every event starts protected (the controller's work after the previous one).
        // A failover nobody caused (a stalled primary) is reported and followed, not
        // hidden.
        let Some(n) = watch.wait_any_protected_now(Duration::from_secs(20)) else {
            return Err(SessionError::Failed(format!(
                "the task is not protected before event {}; the controller's log:\n{}",
                i + 1,
                controller_tail(&bed)
            )));
        };
        if n != serving {
            progress(&format!(
                "  the radio's primary is server{n}, not server{serving}: an unplanned switch"
            ));
            unplanned.push(UnplannedSwitch {
                at_ms: watch.seen.last().map_or(0.0, |l| l.unix_ms) - t_probe,
                expected: serving,
                primary: Some(endpoint(n)),
            });
            serving = n;
        }
        let standby = 3 - serving;
        progress(&format!(
            "event {}: {} on server{serving}",
            i + 1,
            kind.title()
        ));
        let before = watch.failovers();
        let fenced_before = watch.seen.last().map_or(0, |l| l.fenced_packets);
        let step_downs_before = bed
            .modem_counters(&format!("s{serving}.sock"))
            .and_then(|c| c["step_downs"].as_u64())
            .unwrap_or(0);
        let at = unix_ms();
        let find = || match kind {
            FaultKind::KillModem | FaultKind::Pause => bed.pids(serving, "modem"),
            FaultKind::KillServer => {
                let mut all = bed.pids(serving, "agent");
                all.extend(bed.pids(serving, "modem"));
                all
            }
            FaultKind::Partition => Vec::new(),
        };
        // `ip netns pids` can come back empty on a busy machine: look again before failing.
        let mut victims = find();
        for _ in 0..5 {
            if !victims.is_empty() || kind == FaultKind::Partition {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            victims = find();
        }
        if victims.is_empty() && kind != FaultKind::Partition {
            return Err(SessionError::Failed(format!(
                "event {}: no process to {} on server{serving}",
                i + 1,
                kind.title()
            )));
        }
        crate::live::emit(
            live,
            LiveEvent::MigrationStarted {
                label: kind.title().into(),
                method: "mbb".into(),
                from: format!("server{serving}"),
                to: format!("server{standby}"),
                t_ms: at - origin,
            },
        );
        let mut stepped_down = None;
        let mut fenced_packets = None;
        match kind {
            FaultKind::KillModem | FaultKind::KillServer => {
                signal(&victims, libc::SIGKILL);
                tracing::debug!(at_unix_ms = unix_ms(), ?victims, "killed");
            }
            FaultKind::Pause => {
                signal(&victims, libc::SIGSTOP);
                session::sleep(opts.pause)?;
                signal(&victims, libc::SIGCONT);
                stepped_down = Some(watch_step_down(
                    &bed,
                    serving,
                    step_downs_before,
                    Duration::from_secs(2),
                ));
                fenced_packets = Some(watch.fenced().saturating_sub(fenced_before));
            }
            FaultKind::Partition => {
                set_links(&bed, serving, true, true, false)?;
                let cut = session::sleep(opts.pause);
                let healed = set_links(&bed, serving, true, false, true);
                let healed_at = std::time::Instant::now();
                cut?;
                healed?;
                // Its fronthaul is back, its management not yet: the radio's repeated
                // notice reaches the deposed modem, the controller cannot.
                stepped_down = Some(watch_step_down(
                    &bed,
                    serving,
                    step_downs_before,
                    PARTITION_MGMT_EXTRA,
                ));
                // Its agent is still cut off: no new standby can have started on it yet,
                // so everything fenced so far is the deposed primary's late TX.
                fenced_packets = Some(watch.fenced().saturating_sub(fenced_before));
                session::sleep(PARTITION_MGMT_EXTRA.saturating_sub(healed_at.elapsed()))?;
                set_links(&bed, serving, false, true, true)?;
            }
        }
        // The radio's failover (it is in the data path: milliseconds).
        let mut detected = None;
        for _ in 0..200 {
            if let Some(d) = watch.failover_after(at, before) {
                detected = Some(d);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Detection and switch as the radio measured them (its own clock, no mapping).
        let detect_ms = detected.as_ref().map(|(_, _, silence)| *silence);
        let now_serving = match detected.as_ref().and_then(|(_, l, _)| l.primary.clone()) {
            Some(p) if p.starts_with(&endpoint(standby)) => standby,
            _ => serving,
        };
        crate::live::emit(
            live,
            LiveEvent::MigrationEnded {
                label: kind.title().into(),
                method: "mbb".into(),
                route: format!("server{serving} → server{now_serving}"),
                t_ms: at - origin,
                total_ms: detected.as_ref().map_or(0.0, |(t, _, _)| (t - at).max(0.0)),
                ok: now_serving == standby,
                phases: Vec::new(),
            },
        );
        crate::live::emit(
            live,
            LiveEvent::Serving {
                server: format!("server{now_serving}"),
            },
        );
        progress(&format!(
            "  {}{}",
            match (detect_ms, now_serving == standby) {
                (Some(d), true) => format!("the radio failed over to server{standby} ({d:.1} ms)"),
                (Some(d), false) =>
                    format!("the radio switched, but not to server{standby} ({d:.1} ms)"),
                (None, _) => "the radio did not fail over within 1 s".to_string(),
            },
            match stepped_down {
                Some(true) => "; the deposed modem stepped down on the new epoch",
                Some(false) => "; the deposed modem was stopped before it stepped down",
                None => "",
            }
        ));
        // A dead server reboots: its agent is restarted (the demo's job); the controller
        // stops what is left of the failed side and protects with it once it answers.
        if kind == FaultKind::KillServer {
            session::sleep(Duration::from_millis(300))?;
            bed.restart_agent(serving)?;
        }
        let mut reprotect_ms = None;
        if let (true, Some((_, failover, _))) = (now_serving == standby, detected.as_ref()) {
            let protected = watch.wait_protected(
                failover.unix_ms,
                &endpoint(standby),
                &endpoint(serving),
                Duration::from_secs(20),
            );
            let Some(p) = protected else {
                return Err(SessionError::Failed(format!(
                    "event {}: the controller did not protect server{standby} with server{serving} within 20 s; its log:\n{}",
                    i + 1,
                    controller_tail(&bed)
                )));
            };
            reprotect_ms = Some(
                p.protection_since.saturating_sub(failover.protection_since) as f64 / p.rate_hz
                    * 1e3,
            );
            check_status_protected(&bed, &mut watch)?;
            progress(&format!(
                "  protected again by the controller: server{standby} by server{serving}, unprotected for {:.0} ms",
                reprotect_ms.unwrap_or(0.0)
            ));
        }
        pending.push(Pending {
            kind,
            protected: true,
            from: serving,
            to: now_serving,
            at_unix: at,
            detect_ms,
            reprotect_ms,
            fenced_packets,
            stepped_down,
        });
        serving = now_serving;
        session::sleep(opts.hold)?;
        bed.check_alive()?;
    }
    let mut controller_log = String::new();
    if !opts.events.is_empty() {
        bed.stop_named(CONTROLLER);
        controller_log =
            std::fs::read_to_string(bed.dir.join(format!("{CONTROLLER}.log"))).unwrap_or_default();
        if let Some(l) = controller_log.lines().last() {
            progress(&format!("controller: {l}"));
        }
    }
    let result = traffic.stop()?;
    drop(watch);
    crate::live::emit(live, LiveEvent::Finished);
    let mut events = Vec::new();
    let run_end = result.probe.samples().last().map_or(0.0, |s| s.sent_ms);
    for (i, p) in pending.iter().enumerate() {
        let a = p.at_unix - t_probe;
        // The window: from LEAD_IN_MS before the fault to as long before the next event (or
        // the end of the run), so every loss the event caused — the baseline's cold start
        // included — is in it, and none the next one caused. A probe sent shortly before
        // the fault is lost with the server when its request got there and its reply had
        // not left yet (the round trip is ~22 ms): counting from the fault itself
        // attributed those to the previous event and cut them off the outage.
        let b = pending
            .get(i + 1)
            .map_or(run_end, |n| n.at_unix - t_probe - LEAD_IN_MS)
            .min(run_end);
        let w = result
            .probe
            .window(ms_ns((a - LEAD_IN_MS).max(0.0)), ms_ns(b));
        let pings_lost =
            pings_lost_between(&result.ping, p.at_unix - LEAD_IN_MS, p.at_unix + (b - a));
        events.push(EventReport {
            kind: p.kind,
            protected: p.protected,
            from: p.from,
            to: p.to,
            at_ms: a,
            detect_ms: p.detect_ms,
            outage_ms: w.longest_gap_ms.unwrap_or(0.0),
            probes_lost: w.lost,
            pings_lost,
            duplicates: w.duplicates,
            split_brain: w.duplicates > 0,
            reprotect_ms: p.reprotect_ms,
            fenced_packets: p.fenced_packets,
            stepped_down: p.stepped_down,
        });
    }
    let samples = result
        .probe
        .samples()
        .into_iter()
        .map(|s| (s.sent_ms, s.rtt_ms))
        .collect();
    Ok(FailoverReport {
        meta: RunMeta::collect(origin),
        probe_interval_ms: opts.probe_interval.as_secs_f64() * 1e3,
        events,
        probe: result.probe.report(),
        ping: result.ping,
        samples,
        unplanned_switches: unplanned,
        controller_log,
    })
}

fn ms_ns(ms: f64) -> u64 {
    (ms.max(0.0) * 1e6) as u64
}

/// Pings whose request was sent in `[a, b)` (Unix ms) and never answered.
fn pings_lost_between(r: &crate::ping::PingReport, a: f64, b: f64) -> u64 {
    let Some(t0) = r.first_sent_unix_ms else {
        return 0;
    };
    r.lost_seqs
        .iter()
        .filter(|&&s| {
            let t = t0 + (s.saturating_sub(1)) as f64 * r.interval_ms;
            t >= a && t < b
        })
        .count() as u64
}

/// A probe log's figures for tests (the pure part of the analysis).
pub fn window_figures(log: &ProbeLog, a_ms: f64, b_ms: f64) -> (f64, u64, u64) {
    let w = log.window(ms_ns(a_ms), ms_ns(b_ms));
    (w.longest_gap_ms.unwrap_or(0.0), w.lost, w.duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_worst() {
        assert_eq!(median_max(vec![]), None);
        assert_eq!(median_max(vec![3.0, 1.0, 2.0]), Some((2.0, 3.0)));
        assert_eq!(median_max(vec![4.0, 1.0, 2.0, 3.0]), Some((2.5, 4.0)));
    }

    /// A duplicated echo (two servers delivering) and a gap are both seen in the window
    /// they happen in, and not in another.
    #[test]
    fn window_sees_gaps_losses_and_duplicates() {
        let mut log = ProbeLog::new(1, Duration::from_millis(1));
        let mut echoes = Vec::new();
        for i in 0..100u64 {
            let p = log.on_send(i * 1_000_000);
            // Probes 40..50 lost; probe 70 echoed twice.
            if !(40..50).contains(&i) {
                echoes.push(p.encode());
                log.on_receive(i * 1_000_000 + 500_000, &p.encode());
            }
            if i == 70 {
                log.on_receive(i * 1_000_000 + 600_000, &p.encode());
            }
        }
        let (gap, lost, dups) = window_figures(&log, 30.0, 60.0);
        assert_eq!(lost, 10);
        assert_eq!(dups, 0);
        assert!((gap - 11.0).abs() < 1e-9, "{gap}");
        let (gap, lost, dups) = window_figures(&log, 60.0, 90.0);
        assert_eq!((lost, dups), (0, 1));
        assert!((gap - 1.0).abs() < 1e-9, "{gap}");
        assert!(!echoes.is_empty());
    }
}
