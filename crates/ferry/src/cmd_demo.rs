//! `ferry demo` (chapter 3: ping and the UDP sequence probe across legacy and make-before-break
//! migrations, beside table 3-4) and `ferry demo relay` (chapter 4).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ferry_testbed::demo::{self, DemoOptions};
use ferry_testbed::relay_demo::{self, RelayOptions};
use ferry_testbed::report::{self, Method};
use ferry_testbed::session::{self, SessionError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `ferry demo`.
#[derive(Args)]
#[command(after_help = "\
Needs root (network namespaces, TUN). Brings up the thesis testbed as network namespaces,
runs every piece as a real process (ferry air, the far-end modem on server3, ferry agent on
server1/server2, the thesis console), pings the task from server3 every 100 ms and probes it
every 1 ms, migrates it server1 → server2 → server1 with the thesis' method and with
make-before-break, prints a table per migration beside the thesis' table 3-4, writes a JSON
report and SVG plots, and tears everything down (also on Ctrl-C).")]
pub struct DemoArgs {
    #[command(subcommand)]
    what: Option<What>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Clone)]
struct Common {
    /// Output directory for the report (report.json, report.txt, SVG plots, CSV series).
    #[arg(long, default_value = "ferry-demo-out", global = true)]
    out: PathBuf,
    /// Write the JSON report here instead of OUT/report.json.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Namespace prefix of the demo's testbed (leftovers with it are removed first).
    #[arg(long, default_value = "fdemo", global = true)]
    prefix: String,
    /// Fewer seconds of traffic around the migrations (for tests).
    #[arg(long, global = true)]
    quick: bool,
    /// Interval of the UDP sequence probe in ms (0: no probe, ping only). 1 by default, on
    /// the default 3 MHz carrier; a 1.4 MHz TDD link cannot carry a 1 ms probe and its
    /// echoes (1000 datagrams/s each way): use 10 there.
    #[arg(long, default_value_t = 1.0, global = true)]
    probe_ms: f64,
    /// Route-discovery beacon period of every modem in ms (default: the modem's own). After
    /// a migration the far end reaches the task again only with the next beacon.
    #[arg(long, global = true)]
    discovery_period_ms: Option<u64>,
    /// Methods: legacy, mbb or both.
    #[arg(long, default_value = "both", global = true)]
    method: String,
    /// Serve the live web view here while the demo runs (e.g. 127.0.0.1:8080; loopback
    /// unless --allow-remote). See docs/WEB.md.
    #[arg(long, global = true)]
    web: Option<std::net::SocketAddr>,
    /// Keep serving the web view this many seconds after the run (to look at the end).
    #[arg(long, default_value_t = 0, global = true)]
    web_linger_s: u64,
    /// Let --web listen on a non-loopback address.
    #[arg(long, global = true)]
    allow_remote: bool,
    /// LTE bandwidth of the task's carrier in MHz (1.4, 3, 5, 10, 15, 20): every modem's
    /// --bw and the air's sample rate. Default: 3 MHz (3.84 Msps) for `ferry demo`, the
    /// narrowest that carries the 1 ms probe; 1.4 MHz for `demo relay`. Wider carries more
    /// and costs CPU in proportion to the rate. From 10 MHz the fronthaul runs jumbo frames
    /// (--fronthaul-mtu); with them, on 2 cores, 10 and 20 MHz carry the 1 ms probe through
    /// make-before-break with nothing lost (docs/EXPERIMENTS.md).
    #[arg(long, global = true)]
    bw: Option<f64>,
    /// The air's radio model for --bw (`ferry air --radio-model`): auto (an N210 where it
    /// gives the rate, else a B210 or X310; the demo says which), n210, b210 or x310. A model
    /// that cannot give the rate stops the demo with the air's reason.
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "n210", "b210", "x310"])]
    radio_model: String,
    /// The fronthaul LAN's MTU (1280–9000). 9000 gives jumbo frames, as USRPs on 10 GbE are
    /// run: the air and every modem send fewer, larger sample packets, which is what 15 and
    /// 20 MHz need on two cores (docs/EXPERIMENTS.md). Default: 9000 for --bw 10, 15 and
    /// 20 (the demo says so), 1500 below.
    #[arg(long, global = true)]
    fronthaul_mtu: Option<u16>,
    /// Run a stranger without the key that sends every link-control request during the
    /// traffic (docs/SECURITY.md); the demo fails unless every one is refused.
    #[arg(long, global = true)]
    stranger: bool,
    /// Every modem runs HARQ (`ferry modem --harq on`; docs/MODEM.md, HARQ). For `ferry
    /// demo` (chapter 3); `demo harq` runs with and without by itself.
    #[arg(long)]
    harq: bool,
    /// The pool and far radios get two channels (B210s) and every modem two antennas (2×2:
    /// SFBC + MRC; docs/MODEM.md, Two antennas). For `ferry demo` (chapter 3); not with
    /// --harq.
    #[arg(long)]
    two_antennas: bool,
}

#[derive(Subcommand, Clone)]
enum What {
    /// Chapter 4: video from server3 through the relay on server1 to server4.
    #[command(after_help = "\
Needs root and ffmpeg. The relay task (a base station, workmode 2) runs on server1 under the
agents and forwards between server3 and server4, who cannot hear each other. ffmpeg on
server3 streams H.264 160x120 25 fps 64 kbit/s as MPEG-TS over UDP to 192.168.40.10; Ferry's
receiver on server4 counts frames, PTS holes, late frames and TS continuity errors. The relay
is migrated server1 -> server2 -> server1 with the thesis console (M/MB, routes carried) and
with make-before-break (ferry ctl --relay migrate --method mbb); the tables show each
migration beside table 4-2 (2173 ms, 1858 ms video interruption). --probe-ms does not apply
(no ping or probe runs).")]
    Relay,
    /// Issue #12: unplanned failover. The task on server1 kept protected by a hot standby
    /// by the re-protection controller (`ferry ctl protect --auto`, started once); kill -9
    /// of the serving modem, of the whole serving server, SIGSTOP of the serving modem for
    /// 1 s, and a partition of the serving server (fronthaul down 1 s, management 3 s);
    /// first the same kill without protection, recovered by hand (the baseline).
    #[command(after_help = "\
Needs root. Per event it prints the detection time (the radio's arbiter switched, timed by
`ferry radio watch`), the outage (longest 1 ms probe gap), probes and pings lost, duplicates
(two servers delivering), split brain, how long the task was unprotected (failover to the
controller's new standby, on the radio's clock), the deposed primary's TX the radio fenced,
and whether a paused or partitioned modem stepped down by itself; writes OUT/failover.json
({events: [{kind, protected, detect_ms, outage_ms, probes_lost, pings_lost, duplicates,
split_brain, reprotect_ms, fenced_packets, stepped_down}]}), failover.txt and failover.svg.
The controller's log is OUT/protect-auto.log. With --web ADDR the
live view shows who serves and marks each failover on the chart. See docs/FAILOVER.md.")]
    Failover {
        /// Rounds of the four protected events.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Skip the unprotected baseline.
        #[arg(long)]
        no_baseline: bool,
        /// The baseline operator's reaction time (kill noticed → restart), ms.
        #[arg(long, default_value_t = 2000)]
        operator_ms: u64,
    },
    /// Issue #15: HARQ over a noisy downlink. The task serves on server1; the far radio's
    /// receiver is made noisy (its own noise floor) so the downlink to server3 loses blocks
    /// while the uplink carrying the ACK/NACKs stays clean; server3 pings the task with HARQ
    /// off and on at each noise level.
    #[command(after_help = "\
Needs root. Per run it prints the far end's SNR estimate, the downlink block error rate
(data and filler TBs, all transmissions), pings sent and lost, the round-trip time (median,
95th percentile, maximum) and, with HARQ, the task's retransmissions, TBs given up and TBs the
far end recovered by soft combining. Writes OUT/harq.json and OUT/harq.txt. The downlink
arrives at about -30 dBFS: a noise floor of -30 dBFS is ~0 dB SNR. See docs/MODEM.md, HARQ.")]
    Harq {
        /// The far radio's receiver noise floors to run at, dBFS (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [-29.0, -28.5], allow_hyphen_values = true)]
        noise_dbfs: Vec<f64>,
        /// Seconds of ping per run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Ping interval, ms.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Which runs per noise level: off, on or both.
        #[arg(long, default_value = "both", value_parser = ["off", "on", "both"])]
        only: String,
    },
    /// Issue #15: two antennas over the air. The pool and far radios are two-channel B210s;
    /// the far radio's receivers are made noisy (its own noise floor on each antenna) and
    /// server3 pings the task once per antenna configuration (1x1, 2x2 SFBC + MRC, ...) at
    /// each noise level.
    #[command(after_help = "\
Needs root. Per run it prints the downlink block error rate (CRC failures / TBs at the far
end), the TBs counted, pings sent and lost and the median RTT, then the noise floor at which
each configuration reaches 10 % BLER and its gain over 1x1 in dB. Writes OUT/mimo.json and
OUT/mimo.txt. The downlink arrives at about -30 dBFS per antenna. Without --fading-hz the
antenna pairs are static (diversity shows only the array gain). See docs/MODEM.md.")]
    Mimo {
        /// The far radio's receiver noise floors to run at, dBFS (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [-29.0, -27.0, -25.0], allow_hyphen_values = true)]
        noise_dbfs: Vec<f64>,
        /// Antenna configurations TXxRX of every modem (comma-separated: 1x1, 1x2, 2x1,
        /// 2x2).
        #[arg(long, value_delimiter = ',', default_values_t = ["1x1".to_string(), "2x2".to_string()])]
        antennas: Vec<String>,
        /// Rayleigh fading of every antenna pair with this maximum Doppler, Hz.
        #[arg(long)]
        fading_hz: Option<f64>,
        /// Seconds of ping per run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Ping interval, ms.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// Issue #13: one compressed tidal day of a baseband pool (≥ 4 servers, ≥ 3 cells,
    /// etcd, the pool controller moving cells by make-before-break through the agents).
    #[command(after_help = "\
Needs root and etcd (Debian's etcd-server). Brings up the pool testbed (server1..N, the far
end, a control host with a single-node etcd, the radio room), one cell = a pool-side and a
far-side radio and a far-end modem, every server an agent per cell and `ferry pool register`
measuring its serving modems' CPU into etcd; `ferry pool run` executes the scheduler's moves
as make-before-break migrations. Each cell is probed by the far end at a rate that follows
its tidal profile. Prints per simulated hour: servers on, load, moves, lost probes, late TX;
writes OUT/pool-day.json (or --json) and OUT/pool-day.svg. docs/POOL.md.")]
    Pool(crate::cmd_demo_pool::PoolDemoArgs),
}

/// Parses `legacy|mbb|both`.
pub fn parse_methods(s: &str) -> anyhow::Result<Vec<Method>> {
    Ok(match s {
        "legacy" => vec![Method::Legacy],
        "mbb" => vec![Method::Mbb],
        "both" => vec![Method::Legacy, Method::Mbb],
        other => bail!("--method must be legacy, mbb or both, not {other:?}"),
    })
}

/// Checks root and the tools; says how to get what is missing.
pub fn preflight(extra: &[(&'static str, &'static str)]) -> anyhow::Result<()> {
    if !ferry_testbed::netns::is_root() {
        bail!(
            "ferry demo needs root (it creates network namespaces and TUN devices): run it with sudo, \
             or `sudo bash scripts/demo` from the repository"
        );
    }
    let mut tools: Vec<(&str, &str)> = session::REQUIRED_TOOLS.to_vec();
    tools.extend_from_slice(extra);
    let missing = session::missing_tools(&tools);
    if !missing.is_empty() {
        let pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        bail!(
            "missing tools: {}; install them with `apt-get install {}` (or run `sudo bash scripts/deps`)",
            missing.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", "),
            pkgs.join(" ")
        );
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        bail!("/dev/net/tun is missing: load the tun module (`modprobe tun`)");
    }
    Ok(())
}

/// The table-3-4 demo's carrier: the narrowest LTE bandwidth whose link carries the 1 ms
/// probe (docs/EXPERIMENTS.md, "Which bandwidth carries a 1 ms probe").
const DEMO_BW_MHZ: f64 = 3.0;

/// `--probe-ms` as an interval (`0`: none).
pub fn probe_interval(ms: f64) -> anyhow::Result<Option<Duration>> {
    if ms == 0.0 {
        return Ok(None);
    }
    if !(ms.is_finite() && (0.1..=1000.0).contains(&ms)) {
        bail!("--probe-ms must be 0 (off) or between 0.1 and 1000, got {ms}");
    }
    Ok(Some(Duration::from_secs_f64(ms / 1e3)))
}

/// A progress printer: elapsed seconds and the line, on stderr.
pub fn progress_printer() -> impl FnMut(&str) {
    let t0 = Instant::now();
    move |l: &str| eprintln!("[{:6.1} s] {l}", t0.elapsed().as_secs_f64())
}

fn map_err(e: SessionError) -> anyhow::Error {
    match e {
        // On a terminal's Ctrl-C the children get SIGINT too and the first error seen may
        // be theirs: the flag says what really happened.
        _ if session::interrupted() => anyhow::anyhow!("interrupted; the testbed was torn down"),
        SessionError::Interrupted => anyhow::anyhow!("interrupted; the testbed was torn down"),
        e => anyhow::anyhow!("{e}; the testbed was torn down"),
    }
}

/// Runs `ferry demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if matches!(args.what, Some(What::Relay)) {
        return run_relay(&args.common);
    }
    if let Some(What::Pool(p)) = &args.what {
        let c = &args.common;
        let out = if c.out == std::path::Path::new("ferry-demo-out") {
            PathBuf::from("ferry-demo-pool-out")
        } else {
            c.out.clone()
        };
        let prefix = if c.prefix == "fdemo" {
            "fpool"
        } else {
            &c.prefix
        };
        let web = crate::cmd_demo_pool::WebArgs {
            addr: c.web,
            allow_remote: c.allow_remote,
            linger_s: c.web_linger_s,
        };
        return crate::cmd_demo_pool::run(p, &out, c.json.as_deref(), prefix, &web);
    }
    if let Some(What::Harq {
        noise_dbfs,
        seconds,
        interval_ms,
        only,
    }) = &args.what
    {
        return run_harq(&args.common, noise_dbfs, *seconds, *interval_ms, only);
    }
    if let Some(What::Mimo {
        noise_dbfs,
        antennas,
        fading_hz,
        seconds,
        interval_ms,
    }) = &args.what
    {
        return run_mimo(
            &args.common,
            noise_dbfs,
            antennas,
            *fading_hz,
            *seconds,
            *interval_ms,
        );
    }
    if let Some(What::Failover {
        rounds,
        no_baseline,
        operator_ms,
    }) = &args.what
    {
        return run_failover(&args.common, *rounds, !*no_baseline, *operator_ms);
    }
    preflight(&[])?;
    session::install_signal_flag();
    let c = &args.common;
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let mut opts = DemoOptions::new(ferry, &c.prefix);
    opts.methods = parse_methods(&c.method)?;
    opts.probe_interval = probe_interval(c.probe_ms)?;
    opts.discovery_period_ms = c.discovery_period_ms;
    opts.bw = Some(c.bw.unwrap_or(DEMO_BW_MHZ));
    opts.radio_model = Some(c.radio_model.clone());
    opts.fronthaul_mtu = fronthaul_mtu_for(c.fronthaul_mtu, opts.bw);
    opts.stranger = c.stranger;
    opts.harq = c.harq;
    if c.two_antennas && c.harq {
        bail!("--two-antennas with --harq: HARQ with two antennas is not built (docs/MODEM.md)");
    }
    opts.two_antennas = c.two_antennas;
    if c.quick {
        opts.hold = Duration::from_millis(1200);
    }
    let web = start_web(c)?;
    opts.live = web.as_ref().map(|(hub, _)| hub.sink());
    let mut progress = progress_printer();
    let result = demo::run_demo(&opts, &mut progress).map_err(map_err);
    linger(c, web);
    let (mut rep, series) = result?;
    rep.rtt_floor = rtt_floor_rows(opts.bw.unwrap_or(DEMO_BW_MHZ));
    println!();
    print!("{}", rep.render_text());
    let w = report::write_outputs(&rep, &series, &c.out, c.json.as_deref())
        .context("writing the report")?;
    println!("report: {}", w.json.display());
    for f in &w.files {
        println!("        {}", f.display());
    }
    Ok(())
}

/// The link's RTT floor for the demo's probe and ping at `bw` MHz: the testbed's modems
/// run `ferry modem`'s default Control (TDD configuration 1) with the default TX lead.
fn rtt_floor_rows(bw: f64) -> Vec<report::RttFloorRow> {
    let mut v = crate::cmd_modem::default_control_json();
    crate::cmd_modem::set_bw(&mut v, bw);
    let Ok(control) = ferry_migrate::Control::from_value(&v) else {
        return Vec::new();
    };
    // IPv4 + UDP + the probe's 24 bytes; the default `ping` (56 data bytes + ICMP + IPv4).
    [("probe", 20 + 8 + ferry_testbed::probe::LEN), ("ping", 84)]
        .into_iter()
        .filter_map(|(packet, bytes)| {
            let (f, assumes) = ferry_modem::latency::rtt_floor_for(
                &control,
                crate::cmd_modem::DEFAULT_TX_LEAD,
                bytes,
            )
            .ok()?;
            Some(report::RttFloorRow {
                packet: packet.into(),
                min_ms: f.min_ms,
                median_ms: f.median_ms,
                max_ms: f.max_ms,
                assumes,
            })
        })
        .collect()
}

/// The web view of `--web`: its hub (the demo's live events go there) and server.
fn start_web(c: &Common) -> anyhow::Result<Option<(ferry_web::Hub, ferry_web::WebServer)>> {
    let Some(addr) = c.web else {
        return Ok(None);
    };
    crate::cmd_web::check_addr(addr, c.allow_remote)?;
    let hub = ferry_web::Hub::start(ferry_web::View::thesis(), None);
    let server = crate::cmd_web::serve(addr, hub.clone(), ferry_web::MAX_LIVE_CLIENTS)?;
    Ok(Some((hub, server)))
}

/// Keeps the web view up `--web-linger-s` after the run, then stops it.
fn linger(c: &Common, web: Option<(ferry_web::Hub, ferry_web::WebServer)>) {
    if let Some((_hub, server)) = web {
        if c.web_linger_s > 0 {
            eprintln!(
                "web view stays up {} s at http://{}/",
                c.web_linger_s,
                server.addr()
            );
            let _ = session::sleep(Duration::from_secs(c.web_linger_s));
        }
    }
}

/// `ferry demo relay`: chapter 4, video from server3 through the relay task to server4
/// across migrations of the relay (see docs/EXPERIMENTS.md).
fn run_relay(c: &Common) -> anyhow::Result<()> {
    preflight(&[("ffmpeg", "ffmpeg")])?;
    session::install_signal_flag();
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let mut opts = RelayOptions::new(ferry, &c.prefix);
    opts.methods = parse_methods(&c.method)?;
    opts.discovery_period_ms = c.discovery_period_ms;
    opts.bw = c.bw;
    if c.quick {
        opts.hold = Duration::from_millis(1500);
    }
    let web = start_web(c)?;
    opts.live = web.as_ref().map(|(hub, _)| hub.sink());
    let mut progress = progress_printer();
    let result = relay_demo::run_relay_demo(&opts, &mut progress).map_err(map_err);
    linger(c, web);
    let (mut rep, series) = result?;
    rep.rtt_floor = rtt_floor_rows(opts.bw.unwrap_or(DEMO_BW_MHZ));
    println!();
    print!("{}", rep.render_text());
    let w = report::write_outputs(&rep, &series, &c.out, c.json.as_deref())
        .context("writing the report")?;
    println!("report: {}", w.json.display());
    for f in &w.files {
        println!("        {}", f.display());
    }
    Ok(())
}

/// `ferry demo failover` (issue #12, docs/FAILOVER.md).
/// `ferry demo harq`: loss and latency with and without HARQ over a noisy downlink.
fn run_harq(
    c: &Common,
    noise: &[f64],
    seconds: u64,
    interval_ms: u64,
    only: &str,
) -> anyhow::Result<()> {
    use ferry_testbed::harq_demo::{self, HarqOptions};
    preflight(&[])?;
    session::install_signal_flag();
    if noise.is_empty() || noise.iter().any(|n| !n.is_finite() || *n > 0.0) {
        bail!("--noise-dbfs: give one or more noise floors in dBFS, each <= 0 (e.g. -30,-29)");
    }
    if !(1..=1000).contains(&interval_ms) || seconds == 0 {
        bail!("--interval-ms must be 1..=1000 and --seconds at least 1");
    }
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let mut opts = HarqOptions::new(ferry, &c.prefix);
    opts.noise_floors_dbfs = noise.to_vec();
    opts.duration = Duration::from_secs(if c.quick { seconds.min(8) } else { seconds });
    opts.interval_ms = interval_ms;
    opts.modes = match only {
        "off" => vec![false],
        "on" => vec![true],
        _ => vec![false, true],
    };
    let mut progress = progress_printer();
    let mut rep = harq_demo::run(&opts, &mut progress).map_err(map_err)?;
    // The harq testbed runs the modems' default carrier (1.4 MHz, QPSK).
    if let Some(f) = rtt_floor_rows(1.4).into_iter().find(|f| f.packet == "ping") {
        rep.rtt_floor_ms = Some((f.min_ms, f.median_ms, f.max_ms));
        rep.rtt_floor_note = f.assumes;
    }
    println!();
    print!("{}", rep.render_text());
    std::fs::create_dir_all(&c.out).with_context(|| format!("creating {}", c.out.display()))?;
    let json = c.json.clone().unwrap_or_else(|| c.out.join("harq.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&rep)?)
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(c.out.join("harq.txt"), rep.render_text())?;
    println!("report: {}", json.display());
    Ok(())
}

/// `ferry demo mimo`: BLER and ping loss with one and two antennas over a noisy downlink.
fn run_mimo(
    c: &Common,
    noise: &[f64],
    antennas: &[String],
    fading_hz: Option<f64>,
    seconds: u64,
    interval_ms: u64,
) -> anyhow::Result<()> {
    use ferry_testbed::mimo_demo::{self, MimoOptions};
    preflight(&[])?;
    session::install_signal_flag();
    if noise.is_empty() || noise.iter().any(|n| !n.is_finite() || *n > 0.0) {
        bail!("--noise-dbfs: give one or more noise floors in dBFS, each <= 0 (e.g. -29,-27)");
    }
    if !(1..=1000).contains(&interval_ms) || seconds == 0 {
        bail!("--interval-ms must be 1..=1000 and --seconds at least 1");
    }
    if fading_hz.is_some_and(|f| !(f > 0.0 && f <= 1000.0)) {
        bail!("--fading-hz must be in (0, 1000]");
    }
    let antennas = antennas
        .iter()
        .map(|a| match a.as_str() {
            "1x1" => Ok((1, 1)),
            "1x2" => Ok((1, 2)),
            "2x1" => Ok((2, 1)),
            "2x2" => Ok((2, 2)),
            other => bail!("--antennas: {other} is not one of 1x1, 1x2, 2x1, 2x2"),
        })
        .collect::<anyhow::Result<Vec<(u8, u8)>>>()?;
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let mut opts = MimoOptions::new(ferry, &c.prefix);
    opts.noise_floors_dbfs = noise.to_vec();
    opts.antennas = antennas;
    opts.fading_doppler_hz = fading_hz;
    opts.duration = Duration::from_secs(if c.quick { seconds.min(8) } else { seconds });
    opts.interval_ms = interval_ms;
    let mut progress = progress_printer();
    let rep = mimo_demo::run(&opts, &mut progress).map_err(map_err)?;
    println!();
    print!("{}", rep.render_text());
    std::fs::create_dir_all(&c.out).with_context(|| format!("creating {}", c.out.display()))?;
    let json = c.json.clone().unwrap_or_else(|| c.out.join("mimo.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&rep)?)
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(c.out.join("mimo.txt"), rep.render_text())?;
    println!("report: {}", json.display());
    Ok(())
}

fn run_failover(c: &Common, rounds: usize, baseline: bool, operator_ms: u64) -> anyhow::Result<()> {
    use ferry_testbed::failover::{self, FailoverOptions, FaultKind};
    preflight(&[])?;
    session::install_signal_flag();
    if rounds == 0 && !baseline {
        bail!("nothing to do: --rounds 0 and --no-baseline");
    }
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let mut opts = FailoverOptions::new(ferry, &c.prefix);
    opts.events = (0..rounds).flat_map(|_| FaultKind::ALL).collect();
    opts.baseline = baseline;
    opts.operator_reaction = Duration::from_millis(operator_ms);
    opts.probe_interval = probe_interval(c.probe_ms)?.unwrap_or(Duration::from_millis(1));
    opts.bw = Some(c.bw.unwrap_or(DEMO_BW_MHZ));
    if c.quick {
        opts.hold = Duration::from_millis(1200);
    }
    let web = start_web(c)?;
    opts.live = web.as_ref().map(|(hub, _)| hub.sink());
    let mut progress = progress_printer();
    let result = failover::run(&opts, &mut progress).map_err(map_err);
    linger(c, web);
    let rep = result?;
    println!();
    print!("{}", rep.render_text());
    std::fs::create_dir_all(&c.out).with_context(|| format!("creating {}", c.out.display()))?;
    let json = c
        .json
        .clone()
        .unwrap_or_else(|| c.out.join("failover.json"));
    std::fs::write(&json, rep.to_json()?).with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(c.out.join("failover.txt"), rep.render_text())?;
    std::fs::write(c.out.join("protect-auto.log"), &rep.controller_log)?;
    match rep.svg() {
        Ok(svg) => std::fs::write(c.out.join("failover.svg"), svg)?,
        Err(e) => eprintln!("plot: {e}"),
    }
    println!("report: {}", json.display());
    Ok(())
}

/// The fronthaul MTU for a carrier: as given, else jumbo frames (9000) from 10 MHz up —
/// at 1500 bytes the packet rate of the air and the modems at 15.36 Msps and more does not
/// fit two cores (20 MHz never reaches its first ping; at 10 MHz 7 of 20 make-before-break
/// migrations were undone, 0 with jumbo frames: docs/BENCH-MIGRATE.md) — and the LAN's
/// 1500 below.
pub fn fronthaul_mtu_for(given: Option<u16>, bw_mhz: Option<f64>) -> Option<u16> {
    given.or(bw_mhz.filter(|&b| b >= 10.0).map(|_| 9000))
}

#[cfg(test)]
mod tests {
    use super::fronthaul_mtu_for;

    #[test]
    fn jumbo_frames_from_10_mhz_unless_told() {
        assert_eq!(fronthaul_mtu_for(None, Some(5.0)), None);
        assert_eq!(fronthaul_mtu_for(None, Some(10.0)), Some(9000));
        assert_eq!(fronthaul_mtu_for(None, None), None);
        assert_eq!(fronthaul_mtu_for(None, Some(15.0)), Some(9000));
        assert_eq!(fronthaul_mtu_for(None, Some(20.0)), Some(9000));
        assert_eq!(fronthaul_mtu_for(Some(1500), Some(20.0)), Some(1500));
        assert_eq!(fronthaul_mtu_for(Some(9000), Some(3.0)), Some(9000));
    }
}
