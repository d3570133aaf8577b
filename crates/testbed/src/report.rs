//! The report of a demo run: per migration method, the phases, totals and what the traffic
//! (1 ms probe, `ping -i 0.1`, optional video) lost, beside the thesis' own figures (tables
//! 3-4 and 4-2); as JSON (schema in docs/REPORT.md), as a text table in the shape of table
//! 3-4, and written with the SVG plots into an output directory.
//!
//! Every time in a report is in ms since the run's origin (`meta.origin_unix_ms`), so the
//! migrations, the probe, ping and the video line up on one axis.

use crate::ping::{PingReport, PingSample};
use crate::probe::{ProbeReport, Sample};
use crate::video::{FrameLoss, VideoReport};
use ferry_migrate::timeline::{self as tl, Timeline};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Version of the JSON schema in docs/REPORT.md.
pub const SCHEMA_VERSION: u32 = 1;

/// Losses sent up to this long after a migration ends still count against it (a resync
/// tail, queued packets).
pub const DEFAULT_TAIL_MS: f64 = 500.0;

/// Failure writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// JSON encoding failed.
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

/// Which experiment a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Experiment {
    /// Chapter 3: D2D task, ping from server3 (table 3-4).
    Ping,
    /// Chapter 4: relay task, video from server3 to server4 (table 4-2).
    Relay,
}

/// Migration method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The thesis' sequence (kill, re-address eth3, link, resync).
    Legacy,
    /// Ferry's make-before-break cutover.
    Mbb,
}

impl Method {
    /// Name in text.
    pub fn title(self) -> &'static str {
        match self {
            Method::Legacy => "legacy (thesis method)",
            Method::Mbb => "make-before-break (Ferry)",
        }
    }
}

/// Run metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Start of the run, UTC, RFC 3339.
    pub date_utc: String,
    /// Origin of all times in the report, Unix ms.
    pub origin_unix_ms: f64,
    /// Host name.
    pub host: String,
    /// `git rev-parse HEAD` of the working tree, if any.
    pub git_commit: Option<String>,
    /// The command line that made the run.
    pub command_line: Vec<String>,
    /// Ferry's version.
    pub ferry_version: String,
}

impl RunMeta {
    /// Metadata of the current process, with the origin at `origin_unix_ms`.
    pub fn collect(origin_unix_ms: f64) -> RunMeta {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let git_commit = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty());
        RunMeta {
            date_utc: rfc3339_utc(origin_unix_ms),
            origin_unix_ms,
            host,
            git_commit,
            command_line: std::env::args().collect(),
            ferry_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, no date library needed).
pub fn rfc3339_utc(unix_ms: f64) -> String {
    let ms = if unix_ms.is_finite() && unix_ms > 0.0 {
        unix_ms as i64
    } else {
        0
    };
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// One phase, times in ms since the run's origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Table 3-4 row name or Ferry's phase name.
    pub name: String,
    /// Start, ms since the migration started.
    pub start_ms: f64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// Whether the method stops service during it.
    pub interrupts_service: bool,
}

/// One migration (one direction) of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    /// Timeline label (`M`, `MB`, `mbb out`, …).
    pub label: String,
    /// Where from and to, e.g. `server1 → server2`.
    pub route: String,
    /// Start, ms since the run's origin.
    pub start_ms: f64,
    /// Phases in order.
    pub phases: Vec<PhaseReport>,
    /// Make-before-break: the margin T was placed with, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_ms: Option<u64>,
    /// Total migration time, ms.
    pub total_ms: f64,
    /// Whether every phase succeeded.
    pub ok: bool,
    /// Sum of the durations of the phases that interrupt service, ms.
    pub phase_interruption_ms: f64,
    /// Pings lost that were sent during the migration (or `tail_ms` after it).
    pub ping_lost: Option<u64>,
    /// The thesis' interruption: `ping_lost` × ping interval, ms.
    pub interruption_ms: Option<f64>,
    /// Probes lost in the same window.
    pub probe_lost: Option<u64>,
    /// Longest gap between echoed probes overlapping the window, ms.
    pub probe_longest_gap_ms: Option<f64>,
    /// Where that gap lies, `[from, to]` ms since the origin (for plots).
    pub probe_gap_window_ms: Option<[f64; 2]>,
    /// Longest gap between echoed probes touching the migration's own timeline (its start
    /// to its end, no tail), ms: what the cutover adds, to compare with
    /// [`MethodReport::probe_gap_away_ms`].
    #[serde(default)]
    pub probe_gap_timeline_ms: Option<f64>,
    /// Longest gap between video frames overlapping the window, ms.
    pub video_longest_gap_ms: Option<f64>,
    /// Video frames missing by PTS whose hole ended in the window (relay experiment).
    #[serde(default)]
    pub video_frames_lost: Option<u64>,
    /// MPEG-TS continuity-counter errors in the window (relay experiment).
    #[serde(default)]
    pub video_cc_errors: Option<u64>,
    /// Video frames that arrived out of PTS order in the window (late, not lost).
    #[serde(default)]
    pub video_frames_reordered: Option<u64>,
}

impl MigrationReport {
    /// From a finished timeline that started `start_ms` after the run's origin.
    pub fn from_timeline(timeline: &Timeline, route: &str, start_ms: f64) -> MigrationReport {
        let phases: Vec<PhaseReport> = timeline
            .phases
            .iter()
            .map(|p| PhaseReport {
                name: p.name.clone(),
                start_ms: p.start_ms as f64,
                duration_ms: p.duration_ms as f64,
                ok: p.ok,
                interrupts_service: p.interrupts_service,
            })
            .collect();
        let end = phases
            .iter()
            .map(|p| p.start_ms + p.duration_ms)
            .fold(0.0, f64::max);
        MigrationReport {
            label: timeline.label.clone(),
            route: route.to_string(),
            start_ms,
            ok: phases.iter().all(|p| p.ok),
            margin_ms: timeline.margin_ms,
            phases,
            total_ms: timeline.total_ms.map_or(end, |t| t as f64),
            phase_interruption_ms: timeline.interruption_ms as f64,
            ping_lost: None,
            interruption_ms: None,
            probe_lost: None,
            probe_longest_gap_ms: None,
            probe_gap_window_ms: None,
            probe_gap_timeline_ms: None,
            video_longest_gap_ms: None,
            video_frames_lost: None,
            video_cc_errors: None,
            video_frames_reordered: None,
        }
    }

    /// The window traffic losses are charged to: `[start, end + tail]`, ms since origin.
    pub fn window(&self, tail_ms: f64) -> (f64, f64) {
        (self.start_ms, self.start_ms + self.total_ms + tail_ms)
    }

    /// Charges the pings sent in the window. `samples` times are ms since the origin.
    pub fn attribute_ping(&mut self, samples: &[PingSample], interval_ms: f64, tail_ms: f64) {
        let (a, b) = self.window(tail_ms);
        let lost = samples
            .iter()
            .filter(|s| s.rtt_ms.is_none() && s.t_ms >= a && s.t_ms <= b)
            .count() as u64;
        self.ping_lost = Some(lost);
        self.interruption_ms = Some(lost as f64 * interval_ms);
    }

    /// Charges the probes sent in the window and finds the longest echo gap touching it.
    /// `samples` times are ms since the origin.
    pub fn attribute_probe(&mut self, samples: &[Sample], tail_ms: f64) {
        let (a, b) = self.window(tail_ms);
        let lost = samples
            .iter()
            .filter(|s| s.rtt_ms.is_none() && s.sent_ms >= a && s.sent_ms <= b)
            .count() as u64;
        let times: Vec<f64> = samples
            .iter()
            .filter(|s| s.rtt_ms.is_some())
            .map(|s| s.sent_ms)
            .collect();
        let (gap, win) = longest_gap_touching(&times, a, b);
        self.probe_gap_timeline_ms =
            Some(longest_gap_touching(&times, self.start_ms, self.start_ms + self.total_ms).0);
        self.probe_lost = Some(lost);
        self.probe_longest_gap_ms = Some(gap);
        // A gap without a lost probe is just the probe spacing: nothing to show.
        self.probe_gap_window_ms = win.filter(|_| lost > 0);
    }

    /// Finds the longest gap between video frames touching the window. `frame_times`
    /// are ms since the origin.
    pub fn attribute_video(&mut self, frame_times: &[f64], tail_ms: f64) {
        let (a, b) = self.window(tail_ms);
        self.video_longest_gap_ms = Some(longest_gap_touching(frame_times, a, b).0);
    }

    /// Charges the frames missing by PTS (by the arrival of the frame after each hole) and
    /// the TS continuity errors that arrived in the window. Times are ms since the origin.
    pub fn attribute_video_losses(
        &mut self,
        losses: &[FrameLoss],
        cc_errors: &[f64],
        reordered: &[f64],
        tail_ms: f64,
    ) {
        let (a, b) = self.window(tail_ms);
        let inside = |t: f64| t >= a && t <= b;
        self.video_frames_lost = Some(
            losses
                .iter()
                .filter(|l| inside(l.at_ms))
                .map(|l| l.frames)
                .sum(),
        );
        self.video_cc_errors = Some(cc_errors.iter().filter(|&&t| inside(t)).count() as u64);
        self.video_frames_reordered = Some(reordered.iter().filter(|&&t| inside(t)).count() as u64);
    }
}

/// Longest gap between consecutive `times` (sorted ascending) that overlaps `[a, b]`.
/// The longest gap between consecutive `times` that touches none of `windows` (each
/// `(from, to)`, same axis): the spacing the traffic shows away from the migrations.
pub fn longest_gap_away(times: &[f64], windows: &[(f64, f64)]) -> f64 {
    times
        .windows(2)
        .filter_map(|w| match *w {
            [x, y] if !windows.iter().any(|&(a, b)| y >= a && x <= b) => Some(y - x),
            _ => None,
        })
        .fold(0.0, f64::max)
}

pub fn longest_gap_touching(times: &[f64], a: f64, b: f64) -> (f64, Option<[f64; 2]>) {
    let mut best = (0.0, None);
    for w in times.windows(2) {
        if let [x, y] = *w {
            if y >= a && x <= b && y - x > best.0 {
                best = (y - x, Some([x, y]));
            }
        }
    }
    best
}

/// Summary of the 1 ms probe over a method's whole window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// Send interval, ms.
    pub interval_ms: f64,
    /// Probes sent.
    pub sent: u64,
    /// Probes lost.
    pub lost: u64,
    /// Longest gap between echoed probes, ms.
    pub longest_gap_ms: f64,
    /// Median RTT, ms.
    pub rtt_median_ms: Option<f64>,
}

impl From<&ProbeReport> for ProbeSummary {
    fn from(r: &ProbeReport) -> Self {
        ProbeSummary {
            interval_ms: r.interval_ms,
            sent: r.sent,
            lost: r.lost,
            longest_gap_ms: r.longest_gap_ms,
            rtt_median_ms: r.rtt_median_ms,
        }
    }
}

/// Summary of `ping` over a method's whole window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingSummary {
    /// Interval, ms.
    pub interval_ms: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests never answered.
    pub lost: u64,
    /// lost × interval, ms.
    pub interruption_ms: f64,
    /// Longest silence between replies, ms.
    pub longest_silence_ms: f64,
}

impl From<&PingReport> for PingSummary {
    fn from(r: &PingReport) -> Self {
        PingSummary {
            interval_ms: r.interval_ms,
            sent: r.sent,
            lost: r.lost,
            interruption_ms: r.interruption_ms,
            longest_silence_ms: r.longest_silence_ms,
        }
    }
}

/// Summary of the video over a method's whole window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSummary {
    /// Frames received.
    pub frames: u64,
    /// Frames expected (duration × fps).
    pub expected_frames: u64,
    /// Frames lost.
    pub lost: u64,
    /// Continuity-counter errors.
    pub cc_errors: u64,
    /// Frames that arrived out of PTS order (late, not lost).
    #[serde(default)]
    pub reordered: u64,
    /// Longest gap between frames, ms: the video interruption.
    pub longest_gap_ms: f64,
}

impl From<&VideoReport> for VideoSummary {
    fn from(r: &VideoReport) -> Self {
        VideoSummary {
            frames: r.frames,
            expected_frames: r.expected_frames,
            lost: r.frames_lost.max(r.frames_missing_by_pts),
            cc_errors: r.cc_errors,
            reordered: r.frames_reordered,
            longest_gap_ms: r.longest_frame_gap_ms,
        }
    }
}

/// Everything measured for one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    /// Which method.
    pub method: Method,
    /// The migrations, in order (out, then back).
    pub migrations: Vec<MigrationReport>,
    /// Longest total migration time among them, ms.
    pub total_ms: f64,
    /// Largest interruption among them, ms: ping's lost × interval, or the probe's longest
    /// gap when probes were lost and that gap is larger. 0 when nothing was lost.
    pub interruption_ms: f64,
    /// The probe over the whole method.
    pub probe: Option<ProbeSummary>,
    /// ping over the whole method.
    pub ping: Option<PingSummary>,
    /// Video over the whole method (relay experiment).
    pub video: Option<VideoSummary>,
    /// Longest gap between echoed probes away from every migration's timeline, ms (the
    /// TDD frame's own bunching plus whatever the machine adds): the baseline the
    /// migrations' [`MigrationReport::probe_gap_timeline_ms`] are held against.
    #[serde(default)]
    pub probe_gap_away_ms: Option<f64>,
}

impl MethodReport {
    /// Builds the method's report; the traffic is already charged to the migrations.
    pub fn new(
        method: Method,
        migrations: Vec<MigrationReport>,
        probe: Option<&ProbeReport>,
        ping: Option<&PingReport>,
        video: Option<&VideoReport>,
    ) -> MethodReport {
        let total_ms = migrations.iter().map(|m| m.total_ms).fold(0.0, f64::max);
        // A probe gap counts only when probes were lost: without loss it is just the probe
        // spacing. The video gap has its own field (normal spacing is a frame time).
        let interruption_ms = migrations
            .iter()
            .map(|m| {
                let probe = match (m.probe_lost, m.probe_longest_gap_ms) {
                    (Some(l), Some(g)) if l > 0 => g,
                    _ => 0.0,
                };
                m.interruption_ms.unwrap_or(0.0).max(probe)
            })
            .fold(0.0, f64::max);
        MethodReport {
            method,
            migrations,
            total_ms,
            interruption_ms,
            probe: probe.map(ProbeSummary::from),
            ping: ping.map(PingSummary::from),
            video: video.map(VideoSummary::from),
            probe_gap_away_ms: None,
        }
    }

    /// Sets [`MethodReport::probe_gap_away_ms`] from the run's probe samples (ms since the
    /// origin, as the migrations' starts).
    pub fn set_probe_gap_away(&mut self, samples: &[Sample]) {
        let times: Vec<f64> = samples
            .iter()
            .filter(|s| s.rtt_ms.is_some())
            .map(|s| s.sent_ms)
            .collect();
        if times.len() < 2 {
            return;
        }
        let windows: Vec<(f64, f64)> = self
            .migrations
            .iter()
            .map(|m| (m.start_ms, m.start_ms + m.total_ms))
            .collect();
        self.probe_gap_away_ms = Some(longest_gap_away(&times, &windows));
    }
}

/// A row of the thesis' table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThesisRow {
    /// Phase name (as `ferry_migrate::timeline` names it).
    pub name: String,
    /// ms.
    pub ms: f64,
}

/// The thesis' measured figures (tables 3-4 and 4-2), carried in every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThesisFigures {
    /// Table 3-4 rows.
    pub table_3_4: Vec<ThesisRow>,
    /// Total migration, ms (1969).
    pub total_ms: f64,
    /// Lost pings (19).
    pub lost_pings: u64,
    /// Ping interval, ms (100).
    pub ping_interval_ms: f64,
    /// Service interruption, ms (1855).
    pub interruption_ms: f64,
    /// Table 4-2: relay total migration, ms (2173).
    pub relay_total_ms: f64,
    /// Table 4-2: video interruption, ms (1858).
    pub relay_video_interruption_ms: f64,
    /// Xen VM migration on the same servers: more than this, ms (20000).
    pub vm_migration_interruption_over_ms: f64,
}

impl ThesisFigures {
    /// The figures as the thesis gives them.
    pub fn thesis() -> ThesisFigures {
        let rows = [
            (tl::PHASE_TUN_IP, 6.0),
            (tl::PHASE_START_D2D, 53.0),
            (tl::PHASE_MAKE_USRP, 55.0),
            (tl::PHASE_ETH3, 6.0),
            (tl::PHASE_LINK, 1743.0),
            (tl::PHASE_RESYNC, 106.0),
        ];
        ThesisFigures {
            table_3_4: rows
                .iter()
                .map(|&(n, ms)| ThesisRow {
                    name: n.to_string(),
                    ms,
                })
                .collect(),
            total_ms: 1969.0,
            lost_pings: 19,
            ping_interval_ms: 100.0,
            interruption_ms: 1855.0,
            relay_total_ms: 2173.0,
            relay_video_interruption_ms: 1858.0,
            vm_migration_interruption_over_ms: 20_000.0,
        }
    }

    /// The thesis' figure for a phase row.
    pub fn row(&self, name: &str) -> Option<f64> {
        self.table_3_4.iter().find(|r| r.name == name).map(|r| r.ms)
    }
}

/// The whole report of a demo run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoReport {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema: u32,
    /// Which experiment.
    pub experiment: Experiment,
    /// Run metadata.
    pub meta: RunMeta,
    /// One entry per method run.
    pub methods: Vec<MethodReport>,
    /// The thesis' figures, for comparison.
    pub thesis: ThesisFigures,
    /// The link's round-trip floor for the probe and the ping (the modem's real-time
    /// pipeline over the frame, no queueing), beside which the measured RTTs are printed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rtt_floor: Vec<RttFloorRow>,
}

/// The link's RTT floor for one kind of packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RttFloorRow {
    /// `probe` or `ping`.
    pub packet: String,
    /// Shortest, median and longest round trip over arrival times across a frame, ms.
    pub min_ms: f64,
    /// Median, ms.
    pub median_ms: f64,
    /// Longest, ms.
    pub max_ms: f64,
    /// What it assumes (frame, TX lead, packet size and TBs).
    pub assumes: String,
}

impl DemoReport {
    /// A report with the thesis' figures.
    pub fn new(experiment: Experiment, meta: RunMeta, methods: Vec<MethodReport>) -> DemoReport {
        DemoReport {
            schema: SCHEMA_VERSION,
            experiment,
            meta,
            methods,
            thesis: ThesisFigures::thesis(),
            rtt_floor: Vec::new(),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Parses a report back.
    pub fn from_json(s: &str) -> Result<DemoReport, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// Text tables in the shape of table 3-4, Ferry's and the thesis' figures side by side.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let th = &self.thesis;
        let relay = self.experiment == Experiment::Relay;
        let fmt = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.0}"));
        for m in &self.methods {
            for (i, mig) in m.migrations.iter().enumerate() {
                // The thesis measured the legacy outbound migration (M) only.
                let compare = m.method == Method::Legacy && i == 0;
                let width = mig
                    .phases
                    .iter()
                    .map(|p| p.name.chars().count())
                    .chain([44])
                    .max()
                    .unwrap_or(44);
                let line = "-".repeat(width + 22);
                let _ = writeln!(s, "{} — {} ({})", m.method.title(), mig.label, mig.route);
                let _ = writeln!(s, "{:<width$}  {:>8}  {:>8}", "phase", "Ferry ms", "thesis");
                let _ = writeln!(s, "{line}");
                for p in &mig.phases {
                    let mark = match (p.ok, p.interrupts_service) {
                        (false, _) => " FAILED",
                        (true, true) => " *",
                        (true, false) => "",
                    };
                    // Table 4-2 gives only totals for the relay, no phase rows.
                    let thesis = if compare && !relay {
                        th.row(&p.name)
                    } else {
                        None
                    };
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8.0}  {:>8}{mark}",
                        p.name,
                        p.duration_ms,
                        fmt(thesis)
                    );
                }
                let _ = writeln!(s, "{line}");
                let t_total = compare.then_some(if relay {
                    th.relay_total_ms
                } else {
                    th.total_ms
                });
                let _ = writeln!(
                    s,
                    "{:<width$}  {:>8.0}  {:>8}",
                    "total migration",
                    mig.total_ms,
                    fmt(t_total)
                );
                // The relay experiment runs video only: no ping or probe rows unless they ran.
                let pinged = !relay || mig.ping_lost.is_some() || mig.probe_lost.is_some();
                if pinged {
                    let ping_label = format!("lost pings ({:.0} ms)", th.ping_interval_ms);
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8}  {:>8}",
                        ping_label,
                        mig.ping_lost.map_or("—".into(), |v| v.to_string()),
                        if compare && !relay {
                            th.lost_pings.to_string()
                        } else {
                            "—".into()
                        }
                    );
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8}  {:>8}",
                        "interruption = lost pings × interval",
                        fmt(mig.interruption_ms),
                        fmt((compare && !relay).then_some(th.interruption_ms))
                    );
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8}  {:>8}",
                        "interruption: longest probe gap",
                        fmt(mig.probe_longest_gap_ms),
                        "—"
                    );
                }
                if let Some(l) = mig.probe_lost {
                    let _ = writeln!(s, "{:<width$}  {:>8}  {:>8}", "probes lost", l, "—");
                }
                if relay || mig.video_longest_gap_ms.is_some() {
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8}  {:>8}",
                        "video interruption: longest frame gap",
                        fmt(mig.video_longest_gap_ms),
                        fmt((compare && relay).then_some(th.relay_video_interruption_ms))
                    );
                }
                let opt = |v: Option<u64>| v.map_or("—".into(), |v| v.to_string());
                if relay || mig.video_frames_lost.is_some() {
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8}  {:>8}",
                        "video frames lost (by PTS)",
                        opt(mig.video_frames_lost),
                        "—"
                    );
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8}  {:>8}",
                        "video frames late (out of PTS order)",
                        opt(mig.video_frames_reordered),
                        "—"
                    );
                    let _ = writeln!(
                        s,
                        "{:<width$}  {:>8}  {:>8}",
                        "TS continuity errors (lost or reordered)",
                        opt(mig.video_cc_errors),
                        "—"
                    );
                }
                let _ = writeln!(
                    s,
                    "{:<width$}  {:>8.0}  {:>8}",
                    "interrupting phases (sum, marked *)",
                    mig.phase_interruption_ms,
                    fmt((compare && !relay).then_some(th.interruption_ms))
                );
                let _ = writeln!(s);
            }
            if let Some(p) = &m.ping {
                let _ = writeln!(
                    s,
                    "  ping over the whole {} run: {} sent, {} lost ({:.0} ms at {:.0} ms)",
                    m.method.title(),
                    p.sent,
                    p.lost,
                    p.interruption_ms,
                    p.interval_ms
                );
            }
            if let Some(p) = &m.probe {
                let _ = writeln!(
                    s,
                    "  probe over the whole run: {} sent, {} lost, longest gap {:.1} ms{}",
                    p.sent,
                    p.lost,
                    p.longest_gap_ms,
                    p.rtt_median_ms
                        .map_or_else(String::new, |r| format!(", RTT median {r:.1} ms"))
                );
            }
            if let Some(v) = &m.video {
                let _ = writeln!(
                    s,
                    "  video over the whole run: {} of {} frames, {} lost, {} late (out of order), {} TS continuity errors, longest gap {:.0} ms",
                    v.frames, v.expected_frames, v.lost, v.reordered, v.cc_errors, v.longest_gap_ms
                );
            }
            let _ = writeln!(s);
        }
        for f in &self.rtt_floor {
            let _ = writeln!(
                s,
                "link RTT floor for the {}: {:.1} / {:.1} / {:.1} ms min / median / max ({})",
                f.packet, f.min_ms, f.median_ms, f.max_ms, f.assumes
            );
        }
        let _ = writeln!(
            s,
            "thesis: VM migration (Xen) on the same servers interrupted service > {:.0} ms",
            th.vm_migration_interruption_over_ms
        );
        s
    }
}

/// The raw series behind the plots (kept out of the JSON; written as CSV).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Probe samples, `sent_ms` in ms since the origin.
    pub probe: Vec<Sample>,
    /// Ping samples, `t_ms` in ms since the origin.
    pub ping: Vec<PingSample>,
    /// Video frame arrival times, ms since the origin.
    pub video_frames_ms: Vec<f64>,
    /// Holes in the video's PTS sequence, `at_ms` since the origin.
    pub video_losses: Vec<FrameLoss>,
    /// Arrivals of TS packets that broke continuity, ms since the origin.
    pub video_cc_errors_ms: Vec<f64>,
    /// Arrivals of frames out of PTS order, ms since the origin.
    pub video_reordered_ms: Vec<f64>,
    /// Indices into `video_frames_ms` where another run's frames begin (one run per
    /// method): the plot shows no gap across them.
    pub video_run_starts: Vec<usize>,
}

impl Series {
    /// Probe samples shifted by `offset_ms` (the probe's start since the origin).
    pub fn shift_probe(samples: &[Sample], offset_ms: f64) -> Vec<Sample> {
        samples
            .iter()
            .map(|s| Sample {
                sent_ms: s.sent_ms + offset_ms,
                ..*s
            })
            .collect()
    }

    /// Ping samples on the origin's axis, using the report's `-D` Unix stamps.
    pub fn ping_on_axis(report: &PingReport, origin_unix_ms: f64) -> Vec<PingSample> {
        let off = report
            .first_sent_unix_ms
            .map_or(0.0, |t| t - origin_unix_ms);
        report
            .samples
            .iter()
            .map(|s| PingSample {
                t_ms: s.t_ms + off,
                ..*s
            })
            .collect()
    }
}

impl Series {
    /// Video frame times shifted by `offset_ms` (the receiver's start since the origin,
    /// `VideoReceiver::started_unix_ms − origin`).
    pub fn shift_frames(frame_times_ms: &[f64], offset_ms: f64) -> Vec<f64> {
        frame_times_ms.iter().map(|t| t + offset_ms).collect()
    }

    /// `video_frames_ms` cut into its runs at `video_run_starts`.
    pub fn video_runs(&self) -> Vec<&[f64]> {
        let mut cuts: Vec<usize> = self
            .video_run_starts
            .iter()
            .copied()
            .filter(|&i| i > 0 && i < self.video_frames_ms.len())
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut runs = Vec::new();
        let mut from = 0;
        for c in cuts.into_iter().chain([self.video_frames_ms.len()]) {
            if let Some(r) = self.video_frames_ms.get(from..c) {
                runs.push(r);
            }
            from = c;
        }
        runs
    }

    /// A video report's frames, PTS holes and continuity errors on the origin's axis
    /// (`offset_ms` = `VideoReceiver::started_unix_ms − origin`).
    pub fn video_on_axis(video: &VideoReport, offset_ms: f64) -> Series {
        Series {
            video_frames_ms: Series::shift_frames(&video.frame_times_ms, offset_ms),
            video_losses: video
                .pts_losses
                .iter()
                .map(|l| FrameLoss {
                    at_ms: l.at_ms + offset_ms,
                    frames: l.frames,
                })
                .collect(),
            video_cc_errors_ms: Series::shift_frames(&video.cc_error_times_ms, offset_ms),
            video_reordered_ms: Series::shift_frames(&video.reordered_times_ms, offset_ms),
            ..Series::default()
        }
    }

    /// Charges every series present to each migration whose window it overlaps
    /// (`ping_interval_ms` is ping's `-i`; `tail_ms` usually [`DEFAULT_TAIL_MS`]).
    pub fn charge(&self, migrations: &mut [MigrationReport], ping_interval_ms: f64, tail_ms: f64) {
        for m in migrations {
            if !self.ping.is_empty() {
                m.attribute_ping(&self.ping, ping_interval_ms, tail_ms);
            }
            if !self.probe.is_empty() {
                m.attribute_probe(&self.probe, tail_ms);
            }
            if !self.video_frames_ms.is_empty() {
                m.attribute_video(&self.video_frames_ms, tail_ms);
                m.attribute_video_losses(
                    &self.video_losses,
                    &self.video_cc_errors_ms,
                    &self.video_reordered_ms,
                    tail_ms,
                );
            }
        }
    }
}

/// Where [`write_outputs`] put things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The JSON report.
    pub json: PathBuf,
    /// Every other file (text, SVG, CSV).
    pub files: Vec<PathBuf>,
}

fn write(path: &Path, data: &str) -> Result<PathBuf, ReportError> {
    std::fs::write(path, data).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(path.to_path_buf())
}

/// Writes into `out_dir` (created if missing): `report.json` (or `json_path` when given,
/// the `--json PATH` option), `report.txt`, `timeline.svg`, `probe.svg` (if probe samples),
/// `ping.svg` (if ping samples), `video.svg` (if frames) and the series as CSV.
pub fn write_outputs(
    report: &DemoReport,
    series: &Series,
    out_dir: &Path,
    json_path: Option<&Path>,
) -> Result<Written, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let json_file = json_path.map_or_else(|| out_dir.join("report.json"), Path::to_path_buf);
    if let Some(parent) = json_file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ReportError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let json = write(&json_file, &(report.to_json()? + "\n"))?;
    let mut files = vec![write(&out_dir.join("report.txt"), &report.render_text())?];
    files.push(write(
        &out_dir.join("timeline.svg"),
        &crate::plot::timeline_svg(report)?,
    )?);
    let marks = crate::plot::migration_marks(report);
    if !series.probe.is_empty() {
        let pts: Vec<(f64, Option<f64>)> =
            series.probe.iter().map(|s| (s.sent_ms, s.rtt_ms)).collect();
        files.push(write(
            &out_dir.join("probe.svg"),
            &crate::plot::delay_svg(
                "UDP sequence probe: round-trip time and losses",
                &pts,
                &marks,
            )?,
        )?);
        let mut csv = String::from("seq,sent_ms,rtt_ms\n");
        for s in &series.probe {
            let _ = writeln!(
                csv,
                "{},{:.3},{}",
                s.seq,
                s.sent_ms,
                s.rtt_ms.map_or(String::new(), |r| format!("{r:.3}"))
            );
        }
        files.push(write(&out_dir.join("probe.csv"), &csv)?);
    }
    if !series.ping.is_empty() {
        let pts: Vec<(f64, Option<f64>)> = series.ping.iter().map(|s| (s.t_ms, s.rtt_ms)).collect();
        files.push(write(
            &out_dir.join("ping.svg"),
            &crate::plot::delay_svg("ping -i 0.1: round-trip time and lost pings", &pts, &marks)?,
        )?);
        let mut csv = String::from("seq,t_ms,rtt_ms\n");
        for s in &series.ping {
            let _ = writeln!(
                csv,
                "{},{:.3},{}",
                s.seq,
                s.t_ms,
                s.rtt_ms.map_or(String::new(), |r| format!("{r:.3}"))
            );
        }
        files.push(write(&out_dir.join("ping.csv"), &csv)?);
    }
    if !series.video_frames_ms.is_empty() {
        files.push(write(
            &out_dir.join("video.svg"),
            &crate::plot::frame_gap_svg_runs(&series.video_runs(), &marks)?,
        )?);
        let mut csv = String::from("frame,arrival_ms\n");
        for (i, t) in series.video_frames_ms.iter().enumerate() {
            let _ = writeln!(csv, "{i},{t:.3}");
        }
        files.push(write(&out_dir.join("video_frames.csv"), &csv)?);
        if !series.video_losses.is_empty()
            || !series.video_cc_errors_ms.is_empty()
            || !series.video_reordered_ms.is_empty()
        {
            // Where frames and TS packets went missing, for placing a loss on the axis.
            let mut csv = String::from("at_ms,event,count\n");
            let mut rows: Vec<(f64, &str, u64)> = series
                .video_losses
                .iter()
                .map(|l| (l.at_ms, "frames_missing_by_pts", l.frames))
                .chain(
                    series
                        .video_cc_errors_ms
                        .iter()
                        .map(|&t| (t, "cc_error", 1)),
                )
                .chain(
                    series
                        .video_reordered_ms
                        .iter()
                        .map(|&t| (t, "frame_reordered", 1)),
                )
                .collect();
            rows.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (t, e, n) in rows {
                let _ = writeln!(csv, "{t:.3},{e},{n}");
            }
            files.push(write(&out_dir.join("video_losses.csv"), &csv)?);
        }
    }
    Ok(Written { json, files })
}

#[cfg(test)]
mod gap_tests {
    use super::*;

    #[test]
    fn the_gap_away_ignores_every_gap_that_touches_a_migration() {
        // Echoes every 1 ms, a 4 ms TDD bunch at 10, a 9 ms gap inside the migration
        // [100, 150], a 6 ms gap straddling its end.
        let mut t: Vec<f64> = (0..=10).map(f64::from).collect();
        t.extend((14..=120).map(f64::from));
        t.extend([129.0]);
        t.extend((130..=148).map(f64::from));
        t.extend((154..=300).map(f64::from));
        assert_eq!(longest_gap_away(&t, &[(100.0, 150.0)]), 4.0);
        assert_eq!(longest_gap_touching(&t, 100.0, 150.0).0, 9.0);
        // No migration: every gap counts; no echoes: nothing.
        assert_eq!(longest_gap_away(&t, &[]), 9.0);
        assert_eq!(longest_gap_away(&[], &[(0.0, 1.0)]), 0.0);
    }
}
