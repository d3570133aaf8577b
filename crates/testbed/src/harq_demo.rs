//! The HARQ experiment (issue #15): the thesis testbed with the task serving on server1 and
//! the far end on server3, the far radio's receiver made noisy (its own noise floor, so the
//! downlink degrades while the uplink that carries the ACK/NACKs stays at 30 dB), and ping
//! from server3 to the task, once with HARQ off and once on, at each noise level. It
//! measures what the issue asks: the downlink's block error rate without HARQ, packet loss
//! with and without, and the latency HARQ adds.

use crate::ping::{PingReport, PingRun};
use crate::session::{self, Bed, SessionError};
use crate::topology::POOL_TUN;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct HarqOptions {
    /// The `ferry` binary started in the namespaces.
    pub ferry: PathBuf,
    /// Namespace prefix of the testbed.
    pub prefix: String,
    /// The far radio's receiver noise floors to run at (dBFS; the air's default is −60 and
    /// the downlink arrives at about −30 dBFS).
    pub noise_floors_dbfs: Vec<f64>,
    /// Ping interval (ms).
    pub interval_ms: u64,
    /// How long each run pings.
    pub duration: Duration,
    /// How long to wait for the first ping to pass.
    pub first_ping_timeout: Duration,
    /// HARQ off / on runs per noise level, in order.
    pub modes: Vec<bool>,
}

impl HarqOptions {
    /// Defaults: the noise levels of about 1 % and 12 % block errors in this testbed, 30 s
    /// of 20 ms pings each.
    pub fn new(ferry: PathBuf, prefix: &str) -> HarqOptions {
        HarqOptions {
            ferry,
            prefix: prefix.to_string(),
            noise_floors_dbfs: vec![-29.0, -28.5],
            interval_ms: 20,
            duration: Duration::from_secs(30),
            first_ping_timeout: Duration::from_secs(60),
            modes: vec![false, true],
        }
    }
}

/// One run: one noise level, HARQ on or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarqRun {
    /// The far radio's noise floor (dBFS).
    pub noise_floor_dbfs: f64,
    /// HARQ on.
    pub harq: bool,
    /// The far modem's own SNR estimate (CRS), dB.
    pub far_snr_db: Option<f64>,
    /// Pings sent (those sent in the run's last second are not counted: stopping ping
    /// cut their answers off).
    pub sent: u64,
    /// Pings lost.
    pub lost: u64,
    /// Loss in percent.
    pub loss_pct: f64,
    /// Round-trip time: median, 95th percentile and maximum (ms) of the answered pings.
    pub rtt_median_ms: f64,
    /// 95th percentile.
    pub rtt_p95_ms: f64,
    /// Maximum.
    pub rtt_max_ms: f64,
    /// Downlink subframes (data and filler TBs) the far end decoded / failed during the
    /// run: the block error rate of single transmissions (with HARQ, retransmissions too).
    pub far_decode_ok: u64,
    /// CRC failures.
    pub far_decode_fail: u64,
    /// Block error rate: failures / (decoded + failures).
    pub bler: f64,
    /// HARQ: the task's retransmissions, TBs it gave up, and TBs the far end recovered by
    /// combining (0 without HARQ).
    pub retransmissions: u64,
    /// TBs given up after four transmissions.
    pub gave_up: u64,
    /// TBs recovered by soft combining.
    pub recovered: u64,
    /// Far-end control messages that did not decode in subframes with energy.
    pub control_fail: u64,
    /// Uplink (far → task) TBs the task decoded / failed: the feedback's path.
    pub up_decode_ok: u64,
    /// Uplink CRC failures.
    pub up_decode_fail: u64,
    /// The far end's CFO estimate at the end (Hz; the air's pool–far link has 150 Hz).
    pub far_cfo_hz: Option<f64>,
    /// The far modem's and the task's `status` at the end (every counter, for the record).
    pub far_status: serde_json::Value,
    /// The task's.
    pub task_status: serde_json::Value,
}

/// The whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarqReport {
    /// Ping interval (ms).
    pub interval_ms: u64,
    /// Seconds of ping per run.
    pub duration_s: f64,
    /// Runs in order (per noise level: off, then on).
    pub runs: Vec<HarqRun>,
    /// The link's RTT floor for a ping (min, median, max ms): the modem's pipeline over the
    /// TDD frame with no queueing or processing (`ferry_modem::latency`), and what it assumes.
    #[serde(default)]
    pub rtt_floor_ms: Option<(f64, f64, f64)>,
    /// What the floor assumes (TDD configuration, TX lead, TBs per packet).
    #[serde(default)]
    pub rtt_floor_note: String,
}

impl HarqReport {
    /// A text table.
    pub fn render_text(&self) -> String {
        let mut s = format!(
            "HARQ over a noisy downlink ({} ms pings, {:.0} s per run)\n{}\
             noise dBFS  SNR dB  HARQ   BLER   sent  lost  loss %  RTT med  p95    max    retx  gave-up recovered  up-BLER\n",
            self.interval_ms,
            self.duration_s,
            self.rtt_floor_ms.map_or_else(String::new, |(lo, med, hi)| format!(
                "RTT floor ({}): {lo:.1} / {med:.1} / {hi:.1} ms min / median / max\n",
                self.rtt_floor_note
            )),
        );
        for r in &self.runs {
            s += &format!(
                "{:>10.1}  {:>6}  {:<4}  {:>5.1}%  {:>5} {:>5} {:>6.2}  {:>7.1} {:>6.1} {:>6.1} {:>5} {:>7} {:>9}  {:>6.1}%\n",
                r.noise_floor_dbfs,
                r.far_snr_db.map_or("-".into(), |v| format!("{v:.1}")),
                if r.harq { "on" } else { "off" },
                100.0 * r.bler,
                r.sent,
                r.lost,
                r.loss_pct,
                r.rtt_median_ms,
                r.rtt_p95_ms,
                r.rtt_max_ms,
                r.retransmissions,
                r.gave_up,
                r.recovered,
                100.0 * r.up_decode_fail as f64 / (r.up_decode_ok + r.up_decode_fail).max(1) as f64,
            );
        }
        s
    }
}

fn u(v: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One run on a fresh testbed.
fn run_one(
    opts: &HarqOptions,
    noise: f64,
    harq: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<HarqRun, SessionError> {
    let mut bed = Bed::up(&opts.ferry, &opts.prefix)?;
    bed.far_noise_floor_dbfs = Some(noise);
    bed.modem_flags = vec![format!("--harq={}", if harq { "on" } else { "off" })];
    progress(&format!(
        "noise floor {noise} dBFS, HARQ {}: starting the testbed",
        if harq { "on" } else { "off" }
    ));
    bed.start_air(false)?;
    bed.start_far()?;
    bed.start_agent(false, 1)?;
    bed.start_agent(false, 2)?;
    session::sleep(Duration::from_millis(600))?;
    bed.check_alive()?;
    bed.send(1, "set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#)?;
    bed.send(1, "start_d2d", r#"{"control_flag":0}"#)?;
    bed.wait_first_ping(opts.first_ping_timeout)?;
    session::sleep(Duration::from_secs(1))?;
    let far0 = bed.modem_status("far.sock").unwrap_or_default();
    let pool0 = bed.modem_status("s1.sock").unwrap_or_default();
    let ping = PingRun::start(
        Some(&bed.ns("server3")),
        IpAddr::V4(POOL_TUN),
        opts.interval_ms,
    )
    .map_err(|e| SessionError::Failed(format!("ping: {e}")))?;
    session::sleep(opts.duration)?;
    let rep: PingReport = ping
        .stop()
        .map_err(|e| SessionError::Failed(format!("ping: {e}")))?;
    // Let the last answers' counters settle.
    session::sleep(Duration::from_millis(300))?;
    bed.check_alive()?;
    let far1 = bed.modem_status("far.sock").unwrap_or_default();
    let pool1 = bed.modem_status("s1.sock").unwrap_or_default();
    let d =
        |a: &serde_json::Value, b: &serde_json::Value, p: &[&str]| u(b, p).saturating_sub(u(a, p));
    let ok = d(&far0, &far1, &["counters", "decode_ok"]);
    let fail = d(&far0, &far1, &["counters", "decode_fail"]);
    // Requests sent in the last second were cut off by stopping ping, not lost.
    let last = rep.samples.iter().map(|s| s.t_ms).fold(0.0, f64::max);
    let counted: Vec<_> = rep
        .samples
        .iter()
        .filter(|s| s.t_ms <= last - 1000.0)
        .collect();
    let mut rtts: Vec<f64> = counted.iter().filter_map(|s| s.rtt_ms).collect();
    rtts.sort_by(f64::total_cmp);
    let sent = counted.len() as u64;
    let lost = counted.iter().filter(|s| s.rtt_ms.is_none()).count() as u64;
    Ok(HarqRun {
        noise_floor_dbfs: noise,
        harq,
        far_snr_db: far1["snr_db"].as_f64(),
        sent,
        lost,
        loss_pct: if sent > 0 {
            100.0 * lost as f64 / sent as f64
        } else {
            0.0
        },
        rtt_median_ms: percentile(&rtts, 0.5),
        rtt_p95_ms: percentile(&rtts, 0.95),
        rtt_max_ms: rtts.last().copied().unwrap_or(f64::NAN),
        far_decode_ok: ok,
        far_decode_fail: fail,
        bler: if ok + fail > 0 {
            fail as f64 / (ok + fail) as f64
        } else {
            0.0
        },
        retransmissions: d(&pool0, &pool1, &["harq", "tx", "retransmissions"]),
        gave_up: d(&pool0, &pool1, &["harq", "tx", "gave_up"]),
        recovered: d(&far0, &far1, &["harq", "rx", "recovered"]),
        control_fail: d(&far0, &far1, &["harq", "control_fail"]),
        up_decode_ok: d(&pool0, &pool1, &["counters", "decode_ok"]),
        up_decode_fail: d(&pool0, &pool1, &["counters", "decode_fail"]),
        far_cfo_hz: far1["cfo_hz"].as_f64(),
        far_status: far1.clone(),
        task_status: pool1.clone(),
    })
}

/// Runs every noise level with HARQ off, then on.
pub fn run(opts: &HarqOptions, progress: &mut dyn FnMut(&str)) -> Result<HarqReport, SessionError> {
    let mut runs = Vec::new();
    for &noise in &opts.noise_floors_dbfs {
        for &harq in &opts.modes {
            let r = run_one(opts, noise, harq, progress)?;
            progress(&format!(
                "noise {noise} dBFS HARQ {}: BLER {:.1} %, {} of {} pings lost, RTT median {:.1} ms p95 {:.1} ms, {} retransmissions",
                if harq { "on" } else { "off" },
                100.0 * r.bler,
                r.lost,
                r.sent,
                r.rtt_median_ms,
                r.rtt_p95_ms,
                r.retransmissions
            ));
            runs.push(r);
        }
    }
    Ok(HarqReport {
        interval_ms: opts.interval_ms,
        duration_s: opts.duration.as_secs_f64(),
        runs,
        rtt_floor_ms: None,
        rtt_floor_note: String::new(),
    })
}
