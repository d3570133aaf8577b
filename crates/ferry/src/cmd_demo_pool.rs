//! `ferry demo pool` (issue #13): one compressed tidal day of a baseband pool in the
//! namespace testbed. Every piece is a real process: `ferry air` with one pool-side and one
//! far-side radio per cell, a far-end modem per cell, on every pool server one `ferry
//! agent` per cell (an agent supervises one modem task), a real single-node etcd on the
//! management network, on every server `ferry pool register` (lease, agent slots, and the
//! measured CPU of its serving modems written as each cell's demand), and `ferry pool run`
//! executing the scheduler's moves as make-before-break migrations through the agents.
//! Every cell is probed by the far end's UDP probe at a rate that follows the cell's tidal
//! profile. Prints per simulated hour: servers on, load, moves, lost probes, late TX; at the
//! end server-hours and energy against the cells' static placement in the same run, and
//! checks that etcd's placement equals where each cell really serves.

use anyhow::{bail, Context};
use clap::Args;
use ferry_pool::{AreaKind, Power};
use ferry_pool_etcd::{AgentExecutor, AgentExecutorConfig, LocalEtcd, MoveExecutor, PoolStore};
use ferry_testbed::pool_bed::{pool_ip, send, slot_arg, start_agent, start_air, start_far};
use ferry_testbed::session::{self, Bed, SessionError, RADIO_CTL};
use ferry_testbed::Topology;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Arguments of `ferry demo pool`.
#[derive(Args, Clone)]
pub struct PoolDemoArgs {
    /// Pool servers (2–9).
    #[arg(long, default_value_t = 4)]
    servers: u8,
    /// Cells (1.4 MHz each; 1–6), placed round-robin on the servers at the start.
    #[arg(long, default_value_t = 3)]
    cells: u8,
    /// Real seconds of the compressed day (24 h in this many seconds).
    #[arg(long, default_value_t = 240.0)]
    day_seconds: f64,
    /// The controller's policy: static, spread or consolidate.
    #[arg(long, default_value = "consolidate")]
    policy: String,
    /// Cores each server offers the scheduler (it plans 80 % of them); default 2 with a
    /// `prb:` demand (a 20 MHz 64QAM cell needs 0.1 idle, 1.39 at full use), 1 with `cpu`.
    #[arg(long)]
    cores: Option<u32>,
    /// What a cell's demand is (`ferry pool register --demand`): `prb:BW:MOD`, the cell's
    /// measured PRB use through the measured cost of a BW MHz MOD cell (the 1.4 MHz testbed
    /// cells stand for wide cells whose CPU follows their traffic), or `cpu`, the modem
    /// process's CPU (a 1.4 MHz modem's barely depends on its traffic: no tide).
    #[arg(long, default_value = "prb:20:64qam")]
    demand: crate::pool_load::DemandModel,
    /// Probe interval at a cell's peak activity, ms (a 1.4 MHz link carries 10 ms).
    #[arg(long, default_value_t = 10.0)]
    peak_probe_ms: f64,
    /// Size of each probe datagram, bytes (24–1472; padded with zeros): the probes are
    /// also the cells' traffic, so their size sets the PRB use at the peak (200 bytes every
    /// 10 ms each way uses about half a 1.4 MHz TDD link).
    #[arg(long, default_value_t = 200)]
    probe_bytes: usize,
    /// Real ms between the controller's rounds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Real ms between load measurements on every server.
    #[arg(long, default_value_t = 1000)]
    measure_ms: u64,
    /// Area profiles of the cells, round-robin (office, residential, mixed).
    #[arg(long, default_value = "office,residential,mixed")]
    day: String,
    /// Idle and busy power of a server, W (energy figures).
    #[arg(long, default_value_t = 120.0)]
    idle_w: f64,
    #[arg(long, default_value_t = 300.0)]
    busy_w: f64,
    /// With --web: hold the start of the day this many seconds (time to open the page).
    #[arg(long, default_value_t = 0)]
    web_wait_s: u64,
}

impl PoolDemoArgs {
    /// Cores per server: as given, else 2 for a `prb:` demand and 1 for `cpu`.
    fn cores(&self) -> u32 {
        self.cores.unwrap_or(match self.demand {
            crate::pool_load::DemandModel::Cpu => 1,
            crate::pool_load::DemandModel::Prb { .. } => 2,
        })
    }
}

/// `--web`, `--allow-remote`, `--web-linger-s` of `ferry demo`.
pub struct WebArgs {
    pub addr: Option<SocketAddr>,
    pub allow_remote: bool,
    pub linger_s: u64,
}

/// The demo's figures (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct PoolDayReport {
    pub policy: String,
    /// How the cells' demand was measured (`--demand`).
    pub demand: String,
    /// Cores per server.
    pub cores: u32,
    /// Probe datagram size, bytes.
    pub probe_bytes: usize,
    pub server_hours: f64,
    pub static_server_hours: f64,
    pub saved_pct: f64,
    pub energy_kwh: f64,
    pub static_energy_kwh: f64,
    pub moves: u64,
    pub failed_moves: u64,
    pub lost_probes: u64,
    pub sent_probes: u64,
    pub late_tx: u64,
    pub servers: u8,
    pub cells: u8,
    pub day_seconds: f64,
    /// Per cell at the end: etcd's actual and desired server, and where the agents say it
    /// serves.
    pub placement: Vec<CellPlacement>,
    pub placement_matches: bool,
    pub hours: Vec<HourRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellPlacement {
    pub cell: String,
    pub etcd_actual: String,
    pub etcd_desired: String,
    pub serving: Option<String>,
}

/// One simulated hour.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HourRow {
    pub hour: u32,
    /// Mean servers on (on, booting or draining) over the hour.
    pub servers_on: f64,
    /// Mean measured load of all cells, cores.
    pub load_cores: f64,
    pub moves: u64,
    pub lost_probes: u64,
    pub sent_probes: u64,
    pub late_tx: u64,
    /// Mean probe rate of all cells, probes/s (follows the profiles).
    pub probe_rate: f64,
}

fn cell_name(k: u8) -> String {
    format!("cell{k}")
}

fn home(k: u8, servers: u8) -> u8 {
    (k - 1) % servers + 1
}

/// Runs `ferry demo pool`.
pub fn run(
    a: &PoolDemoArgs,
    out: &Path,
    json: Option<&Path>,
    prefix: &str,
    web: &WebArgs,
) -> anyhow::Result<()> {
    crate::cmd_demo::preflight(&[])?;
    if ferry_pool_etcd::local::etcd_binary().is_none() {
        bail!(
            "ferry demo pool needs etcd: `apt-get install etcd-server` (or sudo bash scripts/deps)"
        );
    }
    if !(2..=9).contains(&a.servers) || !(1..=6).contains(&a.cells) {
        bail!("--servers must be 2–9 and --cells 1–6");
    }
    if !(ferry_testbed::probe::LEN..=ferry_testbed::probe::MAX_LEN).contains(&a.probe_bytes) {
        bail!(
            "--probe-bytes must be {}–{}",
            ferry_testbed::probe::LEN,
            ferry_testbed::probe::MAX_LEN
        );
    }
    if !(a.day_seconds.is_finite() && a.day_seconds >= 24.0) {
        bail!("--day-seconds must be at least 24 (one real second per simulated hour)");
    }
    let policy = ferry_pool::Policy::parse(&a.policy)
        .with_context(|| format!("unknown policy {:?}", a.policy))?;
    let areas: Vec<AreaKind> = a
        .day
        .split(',')
        .map(|s| AreaKind::parse(s.trim()).with_context(|| format!("unknown area {s:?}")))
        .collect::<anyhow::Result<_>>()?;
    session::install_signal_flag();
    let web_view = match web.addr {
        Some(addr) => {
            crate::cmd_web::check_addr(addr, web.allow_remote)?;
            let view = ferry_web::View {
                experiment: Some(format!("ferry demo pool (policy {})", policy.name())),
                sources: vec!["the pool's state in etcd (the demo reads it every 250 ms)".into()],
                ..ferry_web::View::default()
            };
            let hub = ferry_web::Hub::start(view, None);
            let server = crate::cmd_web::serve(addr, hub.clone(), ferry_web::MAX_LIVE_CLIENTS)?;
            Some((hub, server))
        }
        None => None,
    };
    let hub = web_view.as_ref().map(|(h, _)| h.clone());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let topo = Topology::pool(prefix, a.servers).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut log = crate::cmd_demo::progress_printer();
    log(&format!(
        "bringing up the pool testbed: {} servers, {} cells at 1.4 MHz, etcd on 10.99.0.9",
        a.servers, a.cells
    ));
    let mut bed = Bed::up_with(&ferry, topo).map_err(err)?;
    let etcd = LocalEtcd::start_in(&bed.ns("control"), "10.99.0.9", Duration::from_secs(20))
        .context("starting etcd in the control namespace")?;
    let result = day(
        a,
        policy,
        &areas,
        &mut bed,
        &etcd.client_url,
        hub.as_ref(),
        &mut log,
    );
    bed.stop_all();
    // The processes' logs outlive the scratch directory (removed with the testbed).
    let logs = out.join("logs");
    if std::fs::create_dir_all(&logs).is_ok() {
        for e in std::fs::read_dir(&bed.dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(e.path(), logs.join(e.file_name()));
            }
        }
    }
    drop(etcd);
    if let Some(h) = &hub {
        h.send(ferry_web::Input::Event(
            ferry_testbed::live::LiveEvent::Finished,
        ));
    }
    let report = result?;
    print_report(&report);
    let json_path = json
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.join("pool-day.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let rows: Vec<ferry_testbed::pool_plot::DayPoint> = report
        .hours
        .iter()
        .map(|h| ferry_testbed::pool_plot::DayPoint {
            hour: f64::from(h.hour),
            load_cores: h.load_cores,
            servers_on: h.servers_on,
            static_servers_on: report.static_server_hours / 24.0,
            moves: h.moves,
        })
        .collect();
    let svg = ferry_testbed::pool_plot::day_svg(&rows, &report.policy)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(out.join("pool-day.svg"), svg)?;
    log(&format!(
        "wrote {} and {}",
        json_path.display(),
        out.join("pool-day.svg").display()
    ));
    if let Some((_hub, server)) = web_view {
        if web.linger_s > 0 {
            log(&format!(
                "web view stays up {} s at http://{}/",
                web.linger_s,
                server.addr()
            ));
            let _ = session::sleep(Duration::from_secs(web.linger_s));
        }
        drop(server);
    }
    if !report.placement_matches {
        bail!("etcd's placement differs from where the cells serve (see the table above)");
    }
    Ok(())
}

fn err(e: SessionError) -> anyhow::Error {
    if session::interrupted() {
        anyhow::anyhow!("interrupted; the testbed was torn down")
    } else {
        anyhow::anyhow!("{e}; the testbed was torn down")
    }
}

fn ferry_ok(bed: &Bed, host: &str, args: &[&str]) -> anyhow::Result<String> {
    let o = bed.ferry_in(host).args(args).output()?;
    if !o.status.success() {
        bail!(
            "ferry {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// What the monitor thread sees every tick.
#[derive(Debug, Clone, Default)]
struct Tick {
    servers_on: usize,
    load: f64,
    /// Per server: on?, load of its cells.
    per_server: BTreeMap<String, (bool, f64)>,
    /// Per server: its power state's name.
    power: BTreeMap<String, &'static str>,
    /// Per cell: actual server and demand.
    cells: BTreeMap<String, (String, f64)>,
    late_tx: u64,
}

/// When the lost probes of `log` were sent (UTC time of day, ms; the first ten), to find
/// them in the agents' and controller's logs.
fn lost_at(log: &ferry_testbed::probe::ProbeLog, run_start: std::time::SystemTime) -> String {
    let lost: Vec<_> = log
        .samples()
        .into_iter()
        .filter(|s| s.rtt_ms.is_none())
        .collect();
    let mut at: Vec<String> = lost
        .iter()
        .take(10)
        .map(|s| {
            let t = run_start + Duration::from_secs_f64(s.sent_ms / 1000.0);
            let ms = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() % 86_400_000);
            format!(
                "{:02}:{:02}:{:02}.{:03} (seq {})",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000,
                s.seq
            )
        })
        .collect();
    if lost.len() > 10 {
        at.push(format!("and {} more", lost.len() - 10));
    }
    at.join(", ")
}

/// One hour of one cell's probe.
#[derive(Debug, Clone, Copy)]
struct ProbeHour {
    hour: u32,
    sent: u64,
    lost: u64,
    rate: f64,
}

fn day(
    a: &PoolDemoArgs,
    policy: ferry_pool::Policy,
    areas: &[AreaKind],
    bed: &mut Bed,
    etcd_url: &str,
    hub: Option<&ferry_web::Hub>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<PoolDayReport> {
    let (servers, cells) = (a.servers, a.cells);
    log("starting ferry air, the far-end modems and the agents");
    start_air(bed, cells).map_err(err)?;
    for k in 1..=cells {
        start_far(bed, k).map_err(err)?;
    }
    for n in 1..=servers {
        for k in 1..=cells {
            start_agent(bed, n, k).map_err(err)?;
        }
        // One echo responder per server answers every cell's probe (the task addresses
        // live on whichever server serves).
        let mut c = bed.ferry_in(&format!("server{n}"));
        c.args(["probe", "echo", "--bind", "0.0.0.0:7777"]);
        bed.spawn(&format!("echo-server{n}"), c).map_err(err)?;
    }
    session::sleep(Duration::from_millis(800)).map_err(err)?;
    for k in 1..=cells {
        let n = home(k, servers);
        send(
            bed,
            n,
            k,
            "set_tun_ip",
            &format!(r#"{{"tun_ip":"{}"}}"#, pool_ip(k)),
        )?;
        send(bed, n, k, "start_d2d", r#"{"control_flag":0}"#)?;
    }
    for k in 1..=cells {
        let to = pool_ip(k);
        let t0 = Instant::now();
        loop {
            bed.check_alive().map_err(err)?;
            if session::interrupted() {
                bail!("interrupted; the testbed was torn down");
            }
            let ok = ferry_testbed::netns::command_in(&bed.ns("farend"), "ping")
                .args(["-c", "1", "-W", "1", &to.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                log(&format!(
                    "cell{k} serves on server{} ({to} answers)",
                    home(k, servers)
                ));
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("no ping reached cell{k} ({to}) in 60 s; see the logs under OUT/logs");
            }
        }
    }
    // etcd: servers register (lease, slots, measured load), cells with their radios.
    let key = bed.key().to_string_lossy().into_owned();
    for n in 1..=servers {
        let mut c = bed.ferry_in(&format!("server{n}"));
        c.args([
            "pool",
            "register",
            "--etcd",
            etcd_url,
            "--server",
            &format!("server{n}"),
            "--cores",
            &a.cores().to_string(),
            "--boot-s",
            "1",
            "--idle-w",
            &a.idle_w.to_string(),
            "--busy-w",
            &a.busy_w.to_string(),
            "--agent",
            &format!("tcp://10.99.0.{n}:5601"),
            "--key",
            &key,
            "--measure-ms",
            &a.measure_ms.to_string(),
            "--demand",
            &a.demand.to_string(),
        ]);
        for k in 1..=cells {
            c.args(["--slot", &slot_arg(n, k)]);
        }
        bed.spawn(&format!("register-server{n}"), c).map_err(err)?;
    }
    for k in 1..=cells {
        ferry_ok(
            bed,
            "control",
            &[
                "pool",
                "cell",
                &cell_name(k),
                "--etcd",
                etcd_url,
                "--on",
                &format!("server{}", home(k, servers)),
                "--demand",
                "0",
                "--radio-control",
                RADIO_CTL,
                "--radio-name",
                &cell_name(k),
            ],
        )?;
    }
    ferry_ok(
        bed,
        "control",
        &["pool", "policy", policy.name(), "--etcd", etcd_url],
    )?;
    // The monitor: a thread in the control namespace reads etcd and the radios' counters.
    let (mtx, mrx) = mpsc::channel::<Tick>();
    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (ns, url, stop, key) = (
            bed.ns("control"),
            etcd_url.to_string(),
            monitor_stop.clone(),
            bed.key(),
        );
        let far_socks: Vec<PathBuf> = (1..=cells)
            .map(|k| bed.dir.join(format!("far{k}.sock")))
            .collect();
        std::thread::spawn(move || monitor_loop(&ns, &url, &key, cells, &far_socks, &stop, &mtx))
    };

    // Let the first load measurements arrive before the controller's first round (and,
    // with --web-wait-s, give a browser time to open the page).
    let initial: BTreeMap<String, String> = (1..=cells)
        .map(|k| (cell_name(k), format!("server{}", home(k, servers))))
        .collect();
    let hold = Duration::from_millis(2 * a.measure_ms + 500)
        + Duration::from_secs(if hub.is_some() { a.web_wait_s } else { 0 });
    let t_hold = Instant::now();
    let mut on_along_day: Vec<(f64, u32)> = Vec::new();
    while t_hold.elapsed() < hold {
        bed.check_alive().map_err(err)?;
        if session::interrupted() {
            monitor_stop.store(true, Ordering::Relaxed);
            bail!("interrupted; the testbed was torn down");
        }
        while let Ok(t) = mrx.try_recv() {
            if let Some(h) = hub {
                h.send(ferry_web::Input::Pool(pool_view(
                    &t,
                    a.cores(),
                    policy,
                    0.0,
                    0,
                    0.0,
                    &on_along_day,
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = bed.ferry_in("control");
    c.args([
        "pool",
        "run",
        "--etcd",
        etcd_url,
        "--name",
        "pool-a",
        "--key",
        &key,
        "--radio-key",
        &key,
        "--interval-ms",
        &a.interval_ms.to_string(),
        "--policy",
        policy.name(),
    ])
    .env("RUST_LOG", "info");
    bed.spawn("pool-run", c).map_err(err)?;
    log(&format!(
        "the day begins: policy {}, 24 h in {} s",
        policy.name(),
        a.day_seconds
    ));

    // The probes: one thread per cell in the far end's namespace, one run per simulated
    // hour at the profile's rate.
    let hour_s = a.day_seconds / 24.0;
    let stop = Arc::new(AtomicBool::new(false));
    let (ptx, prx) = mpsc::channel::<(u8, ProbeHour)>();
    let mut probes = Vec::new();
    let day_start = Instant::now();
    for k in 1..=cells {
        let area = areas[(usize::from(k) - 1) % areas.len()];
        let (ns, stop, ptx) = (bed.ns("farend"), stop.clone(), ptx.clone());
        let (peak, size) = (a.peak_probe_ms, a.probe_bytes);
        probes.push(std::thread::spawn(move || {
            if ferry_testbed::video::enter_netns(&ns).is_err() {
                return;
            }
            let to = SocketAddr::new(pool_ip(k).into(), 7777);
            for hour in 0..24u32 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // The rate at the middle of the hour, and at least one probe per second.
                let activity = area.activity((f64::from(hour) + 0.5) * 3600.0).max(0.01);
                let interval_ms = (peak / activity).min(1000.0);
                let linger = Duration::from_millis(300);
                let end = day_start + Duration::from_secs_f64(hour_s * f64::from(hour + 1));
                let window = end
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(linger);
                let count = (window.as_secs_f64() * 1000.0 / interval_ms).floor() as u64;
                let run_start = std::time::SystemTime::now();
                let report = if count > 0 {
                    ferry_testbed::probe::run_sender_sized(
                        to,
                        Duration::from_secs_f64(interval_ms / 1000.0),
                        count,
                        size,
                        linger,
                        &stop,
                    )
                    .map(|l| {
                        let r = l.report();
                        if r.lost > 0 {
                            eprintln!(
                                "cell{k} hour {hour}: {} of {} probes lost, sent at {} UTC",
                                r.lost,
                                r.sent,
                                lost_at(&l, run_start)
                            );
                        }
                        r
                    })
                    .ok()
                } else {
                    None
                };
                let (sent, lost) = report.map_or((0, 0), |r| (r.sent, r.lost));
                let _ = ptx.send((
                    k,
                    ProbeHour {
                        hour,
                        sent,
                        lost,
                        rate: 1000.0 / interval_ms,
                    },
                ));
                let now = Instant::now();
                if end > now {
                    std::thread::sleep(end - now);
                }
            }
        }));
    }
    drop(ptx);

    let mut hours: Vec<HourRow> = (0..24)
        .map(|h| HourRow {
            hour: h,
            ..HourRow::default()
        })
        .collect();
    let mut samples = [0u32; 24];
    let (mut server_hours, mut static_hours, mut energy_wh, mut static_wh) = (0.0, 0.0, 0.0, 0.0);
    let mut last_actual: BTreeMap<String, String> = BTreeMap::new();
    let mut moves = 0u64;
    let mut late_base: Option<u64> = None;
    let mut last_late = 0u64;
    let mut last_tick_at = Instant::now();
    let mut printed = 0u32;
    let static_servers: std::collections::BTreeSet<&String> = initial.values().collect();
    println!(
        "{:>4}  {:>10}  {:>10}  {:>5}  {:>11}  {:>7}  {:>8}",
        "hour", "servers on", "load cores", "moves", "lost probes", "late TX", "probes/s"
    );
    loop {
        bed.check_alive().map_err(err)?;
        if session::interrupted() {
            stop.store(true, Ordering::Relaxed);
            monitor_stop.store(true, Ordering::Relaxed);
            bail!("interrupted; the testbed was torn down");
        }
        let elapsed = day_start.elapsed().as_secs_f64();
        while let Ok(t) = mrx.try_recv() {
            let now = Instant::now();
            let dt_h = now.duration_since(last_tick_at).as_secs_f64() / hour_s;
            last_tick_at = now;
            let h =
                (((now.duration_since(day_start).as_secs_f64()) / hour_s).floor() as usize).min(23);
            server_hours += t.servers_on as f64 * dt_h;
            static_hours += static_servers.len() as f64 * dt_h;
            let cores = f64::from(a.cores());
            let power = |load: f64| a.idle_w + (a.busy_w - a.idle_w) * (load / cores).min(1.0);
            energy_wh += t
                .per_server
                .values()
                .filter(|(on, _)| *on)
                .map(|(_, l)| power(*l))
                .sum::<f64>()
                * dt_h;
            static_wh += static_servers
                .iter()
                .map(|s| {
                    power(
                        t.cells
                            .iter()
                            .filter(|(c, _)| initial.get(*c) == Some(*s))
                            .map(|(_, (_, d))| d)
                            .sum(),
                    )
                })
                .sum::<f64>()
                * dt_h;
            for (c, (actual, _)) in &t.cells {
                if let Some(prev) = last_actual.insert(c.clone(), actual.clone()) {
                    if &prev != actual {
                        moves += 1;
                        hours[h].moves += 1;
                    }
                }
            }
            let base = *late_base.get_or_insert(t.late_tx);
            let late = t.late_tx.saturating_sub(base);
            hours[h].late_tx += late.saturating_sub(last_late);
            last_late = late;
            let hour_now = now.duration_since(day_start).as_secs_f64() / hour_s;
            if on_along_day.last().is_none_or(|(x, _)| hour_now - x >= 0.1) {
                on_along_day.push((hour_now.min(24.0), t.servers_on as u32));
            }
            if let Some(hb) = hub {
                hb.send(ferry_web::Input::Pool(pool_view(
                    &t,
                    a.cores(),
                    policy,
                    hour_now.min(24.0),
                    moves,
                    static_hours - server_hours,
                    &on_along_day,
                )));
            }
            hours[h].servers_on += t.servers_on as f64;
            hours[h].load_cores += t.load;
            samples[h] += 1;
        }
        while let Ok((_, p)) = prx.try_recv() {
            let row = &mut hours[p.hour as usize];
            row.lost_probes += p.lost;
            row.sent_probes += p.sent;
            row.probe_rate += p.rate / f64::from(cells);
        }
        // Print an hour once it is over (its probes report at its end).
        let done = elapsed >= a.day_seconds + 1.0;
        while printed < 24 && (done || elapsed >= (f64::from(printed) + 1.0) * hour_s + 0.5) {
            let h = printed as usize;
            let n = f64::from(samples[h].max(1));
            println!(
                "{:>4}  {:>10.1}  {:>10.3}  {:>5}  {:>11}  {:>7}  {:>8.1}",
                format!("{h:02}"),
                hours[h].servers_on / n,
                hours[h].load_cores / n,
                hours[h].moves,
                hours[h].lost_probes,
                hours[h].late_tx,
                hours[h].probe_rate
            );
            printed += 1;
        }
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for p in probes {
        let _ = p.join();
    }
    while let Ok((_, p)) = prx.try_recv() {
        let row = &mut hours[p.hour as usize];
        row.lost_probes += p.lost;
        row.sent_probes += p.sent;
        row.probe_rate += p.rate / f64::from(cells);
    }
    monitor_stop.store(true, Ordering::Relaxed);
    let _ = monitor.join();
    for (h, row) in hours.iter_mut().enumerate() {
        let n = f64::from(samples[h].max(1));
        row.servers_on /= n;
        row.load_cores /= n;
    }
    // Stop the controller before checking placement (no move under way while we look).
    bed.stop_named("pool-run");
    let placement = verify_placement(bed, etcd_url, cells)?;
    let placement_matches = placement.iter().all(|p| {
        p.serving.as_deref() == Some(p.etcd_actual.as_str()) && p.etcd_actual == p.etcd_desired
    });
    let failed_moves = count_in_log(&bed.dir.join("pool-run.log"), "move failed");
    let (lost, sent) = hours
        .iter()
        .fold((0, 0), |(l, s), h| (l + h.lost_probes, s + h.sent_probes));
    Ok(PoolDayReport {
        demand: a.demand.to_string(),
        cores: a.cores(),
        probe_bytes: a.probe_bytes,
        policy: policy.name().into(),
        server_hours,
        static_server_hours: static_hours,
        saved_pct: if static_hours > 0.0 {
            100.0 * (1.0 - server_hours / static_hours)
        } else {
            0.0
        },
        energy_kwh: energy_wh / 1000.0,
        static_energy_kwh: static_wh / 1000.0,
        moves,
        failed_moves,
        lost_probes: lost,
        sent_probes: sent,
        late_tx: last_late,
        servers,
        cells,
        day_seconds: a.day_seconds,
        placement,
        placement_matches,
        hours,
    })
}

/// Stops the route keepers when the day ends, however it ends.
fn count_in_log(path: &Path, needle: &str) -> u64 {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count() as u64)
        .unwrap_or(0)
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || ferry_testbed::video::enter_netns(&ns).map(|()| f()))
        .join()
        .map_err(|_| anyhow::anyhow!("thread panicked"))?
        .context("entering the control namespace")
}

/// Per cell: etcd's placement and where the agents say it serves.
fn verify_placement(bed: &Bed, etcd_url: &str, cells: u8) -> anyhow::Result<Vec<CellPlacement>> {
    let key = ferry_auth::load_key_file(&bed.key())?;
    let url = etcd_url.to_string();
    in_netns(
        &bed.ns("control"),
        move || -> anyhow::Result<Vec<CellPlacement>> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let state = rt.block_on(async {
                let mut store = PoolStore::connect(&[url]).await?;
                store.read().await
            })?;
            let mut ex = AgentExecutor::new(AgentExecutorConfig {
                key,
                radio_auth: None,
                request_timeout: Duration::from_secs(3),
                margin_ms: 40,
            });
            ex.observe(&state);
            let mut out = Vec::new();
            for k in 1..=cells {
                let c = cell_name(k);
                let rec = state.cells.get(&c).context("a cell vanished from etcd")?;
                out.push(CellPlacement {
                    cell: c.clone(),
                    etcd_actual: rec.actual.clone(),
                    etcd_desired: rec.desired.clone(),
                    serving: ex.locate(&c).unwrap_or(None),
                });
            }
            Ok(out)
        },
    )?
}

fn monitor_loop(
    ns: &str,
    url: &str,
    key: &Path,
    cells: u8,
    far_socks: &[PathBuf],
    stop: &AtomicBool,
    tx: &mpsc::Sender<Tick>,
) {
    if ferry_testbed::video::enter_netns(ns).is_err() {
        return;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let auth = ferry_auth::load_key_file(key)
        .ok()
        .map(|k| ferry_radio::LinkAuth {
            key: k,
            identity: ferry_radio::DEFAULT_AIR_IDENTITY.to_string(),
        });
    let radio = ferry_radio::ControlClient::new(RADIO_CTL, Duration::from_millis(500))
        .with_auth(auth)
        .with_name("pool-demo");
    let Ok(mut store) = rt.block_on(PoolStore::connect(&[url.to_string()])) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        if let Ok(state) = rt.block_on(store.read()) {
            let mut t = Tick::default();
            for name in state.servers.keys() {
                let power = state.power.get(name).copied().unwrap_or(Power::On);
                let on = !matches!(power, Power::Off);
                t.power.insert(
                    name.clone(),
                    match power {
                        Power::Off => "off",
                        Power::Booting { .. } => "booting",
                        Power::On => "on",
                        Power::Draining => "draining",
                    },
                );
                t.per_server.insert(name.clone(), (on, 0.0));
                if on {
                    t.servers_on += 1;
                }
            }
            for (c, r) in &state.cells {
                t.load += r.demand_cores;
                t.cells
                    .insert(c.clone(), (r.actual.clone(), r.demand_cores));
                if let Some(s) = t.per_server.get_mut(&r.actual) {
                    s.1 += r.demand_cores;
                }
            }
            // Late TX: pool-side TX that reached a cell radio late, and far-end modems'
            // TX deadline misses.
            for k in 1..=cells {
                if let Ok((_, st)) = radio.status(&format!("cell{k}")) {
                    t.late_tx += st.counters.late_packets;
                }
            }
            for s in far_socks {
                if let Some(n) = far_deadline_misses(s) {
                    t.late_tx += n;
                }
            }
            if tx.send(t).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The web view's pool figures from one tick.
fn pool_view(
    t: &Tick,
    cores: u32,
    policy: ferry_pool::Policy,
    hour: f64,
    moves: u64,
    saved_server_hours: f64,
    on_along_day: &[(f64, u32)],
) -> ferry_web::PoolView {
    ferry_web::PoolView {
        servers_on: t.servers_on as u32,
        servers_total: t.per_server.len() as u32,
        load: t.load / (t.per_server.len().max(1) as f64 * f64::from(cores.max(1))),
        moves,
        saved_server_hours,
        on_along_day: on_along_day.to_vec(),
        hour,
        policy: policy.name().into(),
        servers: t
            .per_server
            .iter()
            .map(|(name, (_, load))| ferry_web::PoolServerView {
                name: name.clone(),
                power: t.power.get(name).copied().unwrap_or("on").into(),
                load_cores: *load,
                cells: t
                    .cells
                    .iter()
                    .filter(|(_, (at, _))| at == name)
                    .map(|(c, _)| c.clone())
                    .collect(),
            })
            .collect(),
    }
}

fn far_deadline_misses(sock: &Path) -> Option<u64> {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(sock).ok()?;
    c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    c.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 4096];
    while !line.contains(&b'\n') {
        let n = c.read(&mut b).ok()?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(b.get(..n)?);
    }
    let v: serde_json::Value = serde_json::from_slice(line.split(|&x| x == b'\n').next()?).ok()?;
    v["result"]["counters"]["deadline_misses"].as_u64()
}

fn print_report(r: &PoolDayReport) {
    println!();
    println!(
        "policy {}: {:.1} server-hours against {:.1} static ({:.1} % saved); energy {:.3} kWh against {:.3} kWh static",
        r.policy, r.server_hours, r.static_server_hours, r.saved_pct, r.energy_kwh, r.static_energy_kwh
    );
    println!(
        "moves {} ({} failed), probes lost {} of {}, late TX {}",
        r.moves, r.failed_moves, r.lost_probes, r.sent_probes, r.late_tx
    );
    for p in &r.placement {
        println!(
            "  {}: etcd actual {} desired {}, serving at {}",
            p.cell,
            p.etcd_actual,
            p.etcd_desired,
            p.serving.as_deref().unwrap_or("nowhere")
        );
    }
    println!(
        "etcd's placement {} where the cells serve",
        if r.placement_matches {
            "equals"
        } else {
            "DIFFERS FROM"
        }
    );
}
