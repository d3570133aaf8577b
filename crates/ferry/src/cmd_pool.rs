//! `ferry pool`: the baseband pool's scheduler. `simulate` plays it over a tidal day at
//! scale without processes (the ferry-pool core with a seeded synthetic cell mix), timing
//! every decision; `run` is the controller on etcd (ferry-pool-etcd); `register`, `cell`,
//! `status`, `drain` and `policy` read and write the pool's state in etcd.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ferry_pool::{
    AreaKind, Bandwidth, CellTraffic, DayLedger, Modulation, Policy, Pool, Power, SchedulerConfig,
    ServerId, ServerSpec,
};
use ferry_pool_etcd::layout::{AgentSlot, CellRadio, ServerRecord};
use ferry_pool_etcd::{
    AgentExecutor, AgentExecutorConfig, ControllerConfig, DryRunLog, MoveExecutor, PoolStore,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

/// Arguments of `ferry pool`.
#[derive(Args)]
pub struct PoolArgs {
    #[command(subcommand)]
    what: PoolWhat,
}

#[derive(Subcommand)]
enum PoolWhat {
    /// The scheduler over one simulated tidal day at scale (no processes): server-hours
    /// against static placement, moves, decision time.
    Simulate(SimulateArgs),
    /// The pool controller on etcd: campaigns for leadership (a second one stands by and
    /// takes over when the leader dies), then schedules and executes moves as
    /// make-before-break migrations through the agents (--key), or only records them
    /// (--dry-run-log).
    Run(RunArgs),
    /// Registers a server under a lease and keeps it alive until killed.
    Register(RegisterArgs),
    /// Creates a cell on a server, or updates its measured demand.
    Cell(CellArgs),
    /// Servers, cells, where each runs, power states, policy and leader.
    Status(StatusArgs),
    /// Moves every cell off a server (make-before-break), then powers it off.
    Drain {
        server: String,
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// Sets the pool's policy: static, spread or consolidate.
    Policy {
        policy: String,
        #[command(flatten)]
        etcd: EtcdArgs,
    },
}

#[derive(Args, Clone)]
struct EtcdArgs {
    /// etcd client URLs, comma-separated (three for a production cluster).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    etcd: String,
}

impl EtcdArgs {
    fn endpoints(&self) -> Vec<String> {
        self.etcd.split(',').map(|s| s.trim().to_string()).collect()
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// This controller's name (its value in the election).
    #[arg(long)]
    name: String,
    /// Lease of the leadership, s: a standby leads at most this long after the leader died.
    #[arg(long, default_value_t = 5)]
    lease_ttl_s: i64,
    /// Time between scheduling rounds, ms.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Policy while etcd holds none.
    #[arg(long, default_value = "static")]
    policy: String,
    /// Records the moves in this file instead of executing them (no agents); every
    /// controller of the pool must be given the same file. Exclusive with --key.
    #[arg(long)]
    dry_run_log: Option<PathBuf>,
    /// With --dry-run-log: how long a recorded move takes, ms.
    #[arg(long, default_value_t = 0)]
    move_ms: u64,
    /// The agents' shared key file (mode 0600, as `ferry ctl --key`): moves are executed
    /// through the agents (make-before-break), from the agent slots and cell radios in etcd.
    #[arg(long, conflicts_with = "dry_run_log")]
    key: Option<PathBuf>,
    /// Link-control key file of the radios (`ferry air --key`); none: open link control.
    #[arg(long)]
    radio_key: Option<PathBuf>,
    /// The air's identity.
    #[arg(long, default_value = ferry_radio::DEFAULT_AIR_IDENTITY)]
    radio_identity: String,
    /// Deadline of one agent request, ms.
    #[arg(long, default_value_t = 15_000)]
    timeout_ms: u64,
    /// How far ahead of the radio clock each move's switch time T is placed, ms.
    #[arg(long, default_value_t = 40)]
    margin_ms: u64,
}

#[derive(Args)]
struct RegisterArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[arg(long)]
    server: String,
    #[arg(long, default_value_t = 8)]
    cores: u32,
    #[arg(long, default_value_t = 120)]
    boot_s: u64,
    #[arg(long, default_value_t = 120.0)]
    idle_w: f64,
    #[arg(long, default_value_t = 300.0)]
    busy_w: f64,
    /// The server's agent endpoint (ZeroMQ), e.g. tcp://10.0.0.1:5555.
    #[arg(long, default_value = "")]
    agent: String,
    /// Lease TTL, s: the registration vanishes this long after this process dies.
    #[arg(long, default_value_t = 5)]
    ttl_s: i64,
    /// A cell this server can host: CELL=AGENT_NAME@AGENT_ENDPOINT,FRONTHAUL,FORWARD
    /// (repeat), e.g. cell1=server2-cell1@tcp://10.99.0.2:5601,192.168.10.12:49201,192.168.10.12:7001.
    #[arg(long = "slot")]
    slots: Vec<String>,
    /// The agents' key file: with --slot, measure every serving modem every --measure-ms
    /// and write its demand as the cell's (and the sum as the server's load).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Measuring period, ms.
    #[arg(long, default_value_t = 2000)]
    measure_ms: u64,
    /// What a cell's demand is: `cpu` (its modem's CPU, cores) or `prb:BW:MOD` (its
    /// measured PRB use — the share of its link's bytes that carried traffic — through the
    /// measured cost of a BW MHz MOD cell, e.g. prb:20:64qam: 0.1 cores idle, 1.39 full).
    #[arg(long, default_value = "cpu")]
    demand: crate::pool_load::DemandModel,
}

#[derive(Args)]
struct CellArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    name: String,
    /// Server the new cell runs on (ignored if the cell exists).
    #[arg(long)]
    on: String,
    /// Measured CPU demand, cores.
    #[arg(long)]
    demand: f64,
    /// The cell's radio link control (a new cell; needed to move it through the agents).
    #[arg(long, requires = "radio_name")]
    radio_control: Option<String>,
    /// The cell's radio name at that link control.
    #[arg(long, requires = "radio_control")]
    radio_name: Option<String>,
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// Prints the state as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SimulateArgs {
    /// Cells in the pool.
    #[arg(long, default_value_t = 10_000)]
    cells: usize,
    /// Servers in the pool (all on at the start, cells placed round-robin: the static
    /// deployment).
    #[arg(long, default_value_t = 1_000)]
    servers: usize,
    /// Area profiles, assigned to the cells round-robin (office, residential, mixed).
    #[arg(long, default_value = "office,residential,mixed")]
    day: String,
    /// static, spread or consolidate.
    #[arg(long, default_value = "consolidate")]
    policy: String,
    /// Cores per server.
    #[arg(long, default_value_t = 8)]
    cores: u32,
    /// Seconds from power-on to a warm agent.
    #[arg(long, default_value_t = 120)]
    boot_s: u64,
    /// Idle and busy power of a server, W.
    #[arg(long, default_value_t = 120.0)]
    idle_w: f64,
    #[arg(long, default_value_t = 300.0)]
    busy_w: f64,
    /// Simulated seconds between decisions.
    #[arg(long, default_value_t = 300)]
    interval_s: u64,
    /// Cell bandwidths to draw from, MHz (1.4, 3, 5, 10, 15, 20).
    #[arg(long, default_value = "5,10,20")]
    bw: String,
    /// Share of each server's cores never planned.
    #[arg(long, default_value_t = 0.2)]
    headroom: f64,
    /// Consolidate: drain a server only while the others stay at most this share of usable.
    #[arg(long, default_value_t = SchedulerConfig::default().drain_below)]
    drain_below: f64,
    /// Consolidate: wake servers when the planned load passes this share of usable.
    #[arg(long, default_value_t = SchedulerConfig::default().wake_above)]
    wake_above: f64,
    /// Consolidate: fill servers to at most this share of usable when packing.
    #[arg(long, default_value_t = SchedulerConfig::default().fill_limit)]
    fill_limit: f64,
    /// Days simulated; the figures are those of the last (the first packs the static
    /// deployment, which a running pool did long ago).
    #[arg(long, default_value_t = 2)]
    days: u64,
    /// Moves per decision at most.
    #[arg(long, default_value_t = 2000)]
    max_moves: usize,
    /// Seed of the cell mix (bandwidth, modulation, peak PRB use).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Writes the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `ferry pool`.
pub fn run(args: PoolArgs) -> anyhow::Result<()> {
    match args.what {
        PoolWhat::Simulate(a) => simulate(a),
        PoolWhat::Run(a) => run_controller(a),
        PoolWhat::Register(a) => register(a),
        PoolWhat::Cell(a) => block_on(async {
            if !a.demand.is_finite() || a.demand < 0.0 {
                bail!("--demand must be a non-negative number of cores");
            }
            let mut store = PoolStore::connect(&a.etcd.endpoints()).await?;
            let radio = a
                .radio_control
                .zip(a.radio_name)
                .map(|(control, name)| CellRadio { control, name });
            if store
                .create_cell_with_radio(&a.name, &a.on, a.demand, radio)
                .await?
            {
                println!("cell {} created on {}", a.name, a.on);
            } else if store.set_demand(&a.name, a.demand).await? {
                println!("cell {} demand {} cores", a.name, a.demand);
            } else {
                bail!("cell {} changed meanwhile (a move?); try again", a.name);
            }
            Ok(())
        }),
        PoolWhat::Status(a) => status(a),
        PoolWhat::Drain { server, etcd } => {
            block_on(async {
                let mut store = PoolStore::connect(&etcd.endpoints()).await?;
                let state = store.read().await?;
                if !state.servers.contains_key(&server) {
                    bail!("no registered server {server:?} (see `ferry pool status`)");
                }
                store.request_drain(&server).await?;
                println!("drain of {server} requested: the leader moves its cells away, then powers it off");
                Ok(())
            })
        }
        PoolWhat::Policy { policy, etcd } => block_on(async {
            let p = Policy::parse(&policy).with_context(|| {
                format!("unknown policy {policy:?} (static, spread, consolidate)")
            })?;
            PoolStore::connect(&etcd.endpoints())
                .await?
                .set_policy(p)
                .await?;
            println!("policy {}", p.name());
            Ok(())
        }),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn run_controller(a: RunArgs) -> anyhow::Result<()> {
    let policy = Policy::parse(&a.policy).with_context(|| {
        format!(
            "unknown policy {:?} (static, spread, consolidate)",
            a.policy
        )
    })?;
    let mut executor: Box<dyn MoveExecutor> = match (a.dry_run_log, a.key) {
        (Some(log), None) => Box::new(DryRunLog {
            path: log,
            move_ms: a.move_ms,
        }),
        (None, Some(key)) => Box::new(AgentExecutor::new(AgentExecutorConfig {
            key: crate::cmd_agent::load_key(&key)?,
            radio_auth: crate::cmd_air::link_auth(a.radio_key.as_ref(), &a.radio_identity)?,
            request_timeout: std::time::Duration::from_millis(a.timeout_ms),
            margin_ms: a.margin_ms,
        })),
        _ => bail!(
            "give --key FILE (the agents' key: moves through the agents) or --dry-run-log \
             PATH (moves only recorded)"
        ),
    };
    let config = ControllerConfig {
        name: a.name,
        endpoints: a.etcd.endpoints(),
        lease_ttl_s: a.lease_ttl_s.max(1),
        interval: std::time::Duration::from_millis(a.interval_ms),
        default_policy: policy,
        scheduler: SchedulerConfig::default(),
    };
    block_on(async move {
        ferry_pool_etcd::run_controller(config, executor.as_mut()).await?;
        Ok(())
    })
}

fn register(a: RegisterArgs) -> anyhow::Result<()> {
    let endpoints = a.etcd.endpoints();
    block_on(async move {
        let mut store = PoolStore::connect(&endpoints).await?;
        let lease = store.client.lease_grant(a.ttl_s.max(1), None).await?.id();
        let record = ServerRecord {
            cores: a.cores,
            boot_ms: a.boot_s * 1000,
            idle_w: a.idle_w,
            busy_w: a.busy_w,
            load_cores: 0.0,
            agent: a.agent.clone(),
            slots: a
                .slots
                .iter()
                .map(|s| parse_slot(s))
                .collect::<anyhow::Result<_>>()?,
        };
        store.register_server(&a.server, &record, lease).await?;
        println!(
            "server {} registered (lease {:x}, {} s)",
            a.server, lease, a.ttl_s
        );
        let (mut keeper, mut stream) = store.client.lease_keep_alive(lease).await?;
        let period = std::time::Duration::from_millis(a.ttl_s.max(1) as u64 * 1000 / 3);
        // Measuring asks the agents (ZeroMQ, blocking): on its own thread, so the lease's
        // keep-alive never waits for a slow agent.
        let samples = match &a.key {
            Some(k) if !record.slots.is_empty() => Some(crate::pool_load::spawn_reporter(
                record.slots.clone(),
                crate::cmd_agent::load_key(k)?,
                std::time::Duration::from_millis(a.measure_ms.max(100)),
                a.demand,
            )),
            _ => None,
        };
        let mut next_keepalive = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if now >= next_keepalive {
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(r) if r.ttl() > 0 => {}
                    _ => bail!("lease of {} expired", a.server),
                }
                next_keepalive = now + period;
            }
            if let Some(rx) = &samples {
                while let Ok(sample) = rx.try_recv() {
                    crate::pool_load::write(&mut store, &a.server, &record, lease, &sample).await?;
                }
            }
            tokio::time::sleep(period.min(std::time::Duration::from_millis(200))).await;
        }
    })
}

/// `CELL=AGENT_NAME@AGENT_ENDPOINT,FRONTHAUL,FORWARD`.
fn parse_slot(s: &str) -> anyhow::Result<(String, AgentSlot)> {
    let bad = || {
        anyhow::anyhow!("--slot {s:?}: expected CELL=AGENT_NAME@AGENT_ENDPOINT,FRONTHAUL,FORWARD")
    };
    let (cell, rest) = s.split_once('=').ok_or_else(bad)?;
    let (name, rest) = rest.split_once('@').ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split(',').collect();
    let [agent, fronthaul, forward] = parts.as_slice() else {
        return Err(bad());
    };
    for addr in [fronthaul, forward] {
        addr.parse::<std::net::SocketAddr>()
            .map_err(|_| anyhow::anyhow!("--slot {s:?}: {addr:?} is not ip:port"))?;
    }
    if !ferry_pool_etcd::layout::valid_name(cell) || name.is_empty() || !agent.contains("://") {
        return Err(bad());
    }
    Ok((
        cell.to_string(),
        AgentSlot {
            agent: agent.to_string(),
            name: name.to_string(),
            fronthaul: fronthaul.to_string(),
            forward: forward.to_string(),
        },
    ))
}

fn status(a: StatusArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut store = PoolStore::connect(&a.etcd.endpoints()).await?;
        let state = store.read().await?;
        let snapshot = store.snapshot().await?;
        let leader = store
            .client
            .leader(ferry_pool_etcd::layout::ELECTION)
            .await
            .ok()
            .and_then(|r| {
                r.kv()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            });
        if a.json {
            let servers: Vec<_> = state
                .servers
                .iter()
                .map(|(n, r)| {
                    serde_json::json!({
                        "name": n, "cores": r.cores, "agent": r.agent,
                        "power": state.power.get(n).copied().unwrap_or(Power::On),
                        "drain_requested": state.drains.contains(n),
                        "load_cores": state.cells.values().filter(|c| &c.actual == n)
                            .map(|c| c.demand_cores).sum::<f64>() + 0.0,
                    })
                })
                .collect();
            let out = serde_json::json!({
                "leader": leader,
                "policy": state.policy.map(|p| p.name()),
                "servers": servers,
                "cells": state.cells,
                "snapshot": snapshot,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        println!(
            "leader {}  policy {}",
            leader.as_deref().unwrap_or("(none)"),
            state.policy.map(|p| p.name()).unwrap_or("(unset)")
        );
        if let Some(snap) = &snapshot {
            let l = &snap.ledger;
            println!(
                "servers on {}  load {:.2} cores  moves {}  server-hours {:.3} vs static {:.3} \
                 (saved {:.1} %)  overloads {}",
                snap.servers_on,
                snap.load_cores,
                l.moves,
                l.server_hours,
                l.static_server_hours,
                snap.saved_pct,
                l.overloads
            );
        }
        println!(
            "{:<16} {:>5} {:>10} {:>6} {:<10}",
            "server", "cores", "load", "cells", "power"
        );
        for (n, r) in &state.servers {
            let cells: Vec<_> = state.cells.values().filter(|c| &c.actual == n).collect();
            // + 0.0: an empty f64 sum is −0.0.
            let load: f64 = cells.iter().map(|c| c.demand_cores).sum::<f64>() + 0.0;
            let power = state.power.get(n).copied().unwrap_or(Power::On);
            let drain = if state.drains.contains(n) {
                " (drain requested)"
            } else {
                ""
            };
            println!(
                "{n:<16} {:>5} {load:>10.2} {:>6} {power:?}{drain}",
                r.cores,
                cells.len()
            );
        }
        println!(
            "{:<16} {:<16} {:<16} {:>6} {:>8}",
            "cell", "actual", "desired", "epoch", "demand"
        );
        for (n, c) in &state.cells {
            println!(
                "{n:<16} {:<16} {:<16} {:>6} {:>8.2}",
                c.actual, c.desired, c.epoch, c.demand_cores
            );
        }
        Ok(())
    })
}

/// The figures of one simulated day.
#[derive(serde::Serialize)]
struct SimulateReport {
    policy: &'static str,
    cells: usize,
    servers: usize,
    saved_pct: f64,
    server_hours: f64,
    static_server_hours: f64,
    /// Servers a static placement packed for each cell's peak would keep on all day.
    static_packed_server_hours: f64,
    saved_vs_packed_pct: f64,
    energy_kwh: f64,
    static_energy_kwh: f64,
    moves: u64,
    peak_moves_per_interval: u64,
    /// Moves of the warm-up days (the static deployment packed once).
    moves_warm_up: u64,
    /// Thread CPU time of each decision (not wall time: the machine is shared).
    decision_ms_median: f64,
    decision_ms_max: f64,
    overloads: u64,
    over_headroom: u64,
    intervals: u64,
    /// The fluid lower bound: at every interval the total load / usable cores of a server
    /// (rounded up), i.e. perfect packing with free, instant moves.
    lower_bound_server_hours: f64,
    /// Per hour of the day: servers powered at its start, load (cores), moves in the hour.
    hourly: Vec<HourFigures>,
}

#[derive(serde::Serialize)]
struct HourFigures {
    hour: u64,
    servers_on: usize,
    load_cores: f64,
    moves: u64,
}

fn parse_list<T>(
    text: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<Vec<T>> {
    let out: Vec<T> = text
        .split(',')
        .map(|s| parse(s).with_context(|| format!("unknown {what} {s:?}")))
        .collect::<anyhow::Result<_>>()?;
    if out.is_empty() {
        bail!("no {what} given");
    }
    Ok(out)
}

fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let policy = Policy::parse(&a.policy).with_context(|| {
        format!(
            "unknown policy {:?} (static, spread, consolidate)",
            a.policy
        )
    })?;
    let areas = parse_list(&a.day, "area", AreaKind::parse)?;
    let bandwidths = parse_list(&a.bw, "bandwidth", Bandwidth::from_mhz)?;
    if a.servers == 0 || a.cells == 0 || a.cores == 0 || a.interval_s == 0 {
        bail!("--cells, --servers, --cores and --interval-s must be positive");
    }
    if !(0.0..0.9).contains(&a.headroom) {
        bail!("--headroom must be in [0, 0.9)");
    }

    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let traffic: Vec<CellTraffic> = (0..a.cells)
        .map(|i| CellTraffic {
            bandwidth: bandwidths[rng.random_range(0..bandwidths.len())],
            modulation: Modulation::ALL[rng.random_range(0..3)],
            peak_prb_use: rng.random_range(0.5..0.9),
            area: areas[i % areas.len()],
        })
        .collect();
    let specs: Vec<ServerSpec> = (0..a.servers)
        .map(|i| ServerSpec {
            name: format!("server{}", i + 1),
            cores: a.cores,
            boot_ms: a.boot_s * 1000,
            idle_w: a.idle_w,
            busy_w: a.busy_w,
        })
        .collect();
    let placement: Vec<(String, ServerId)> = (0..a.cells)
        .map(|i| (format!("cell{}", i + 1), ServerId((i % a.servers) as u32)))
        .collect();
    let config = SchedulerConfig {
        headroom: a.headroom,
        max_moves_per_decision: a.max_moves,
        drain_below: a.drain_below,
        wake_above: a.wake_above,
        fill_limit: a.fill_limit,
        ..SchedulerConfig::default()
    };
    let mut pool = Pool::new(specs, Power::On, placement, config)?;
    let static_powered = a.servers.min(a.cells);
    let usable = a.cores as f64 * (1.0 - a.headroom);
    let packed = packed_servers(&traffic, usable);

    let interval_ms = a.interval_s * 1000;
    let intervals = 86_400 / a.interval_s;
    let lookahead_s = (a.boot_s + a.interval_s) as f64;
    let mut ledger = DayLedger::default();
    let mut static_energy_wh = 0.0;
    let mut decision_ms = Vec::with_capacity(intervals as usize);
    let mut moves_warm_up = 0;
    if a.days == 0 {
        bail!("--days must be at least 1");
    }
    let warm_up = (a.days - 1) * intervals;
    let mut lower_bound_server_hours = 0.0;
    let mut hourly: Vec<HourFigures> = Vec::new();
    let bar = ProgressBar::new(a.days * intervals);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} intervals {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for k in 0..a.days * intervals {
        let now_ms = k * interval_ms;
        let t = (now_ms % 86_400_000) as f64 / 1000.0;
        pool.advance(now_ms);
        let demand: Vec<_> = traffic.iter().map(|c| c.demand(t, lookahead_s)).collect();
        let start = thread_cpu_ms();
        let decision = pool.decide(now_ms, &demand, policy)?;
        decision_ms.push(thread_cpu_ms() - start);
        pool.apply(&decision)?;
        bar.inc(1);
        if k < warm_up {
            moves_warm_up += decision.moves.len() as u64;
            continue;
        }
        let real: Vec<f64> = demand.iter().map(|d| d.now).collect();
        let total: f64 = real.iter().sum();
        lower_bound_server_hours += (total / usable).ceil() * interval_ms as f64 / 3_600_000.0;
        let hour = (now_ms % 86_400_000) / 3_600_000;
        if hourly.last().is_none_or(|h| h.hour != hour) {
            hourly.push(HourFigures {
                hour,
                servers_on: pool.servers.iter().filter(|s| s.power.is_powered()).count(),
                load_cores: total,
                moves: 0,
            });
        }
        if let Some(h) = hourly.last_mut() {
            h.moves += decision.moves.len() as u64;
        }
        ledger.record(&pool, &decision, &real, static_powered, interval_ms);
        // Static's energy: every server on, each carrying its round-robin share.
        let mut per_server = vec![0.0; a.servers];
        for (i, x) in real.iter().enumerate() {
            per_server[i % a.servers] += x;
        }
        static_energy_wh += per_server
            .iter()
            .take(static_powered)
            .map(|l| a.idle_w + (a.busy_w - a.idle_w) * (l / a.cores as f64).clamp(0.0, 1.0))
            .sum::<f64>()
            * (interval_ms as f64 / 3_600_000.0);
        bar.set_message(format!(
            "{:02}:{:02} on {} moves {}",
            hour,
            t as u64 % 3600 / 60,
            pool.servers.iter().filter(|s| s.power.is_powered()).count(),
            ledger.moves
        ));
    }
    bar.finish_and_clear();

    decision_ms.sort_by(f64::total_cmp);
    let packed_hours = packed as f64 * ledger.elapsed_h;
    let report = SimulateReport {
        policy: policy.name(),
        cells: a.cells,
        servers: a.servers,
        saved_pct: ledger.saved_pct(),
        server_hours: ledger.server_hours,
        static_server_hours: ledger.static_server_hours,
        static_packed_server_hours: packed_hours,
        saved_vs_packed_pct: 100.0 * (1.0 - ledger.server_hours / packed_hours.max(1e-9)),
        energy_kwh: ledger.energy_wh / 1000.0,
        static_energy_kwh: static_energy_wh / 1000.0,
        moves: ledger.moves,
        peak_moves_per_interval: ledger.peak_moves_per_interval,
        moves_warm_up,
        decision_ms_median: decision_ms[decision_ms.len() / 2],
        decision_ms_max: *decision_ms.last().unwrap_or(&0.0),
        overloads: ledger.overloads,
        over_headroom: ledger.over_headroom,
        intervals: ledger.intervals,
        lower_bound_server_hours,
        hourly,
    };
    println!(
        "{} cells on {} servers, {} day ({}), policy {}: {:.1} server-hours vs static {:.1} \
         (saved {:.1} %; vs static packed for peak {:.1} h: {:.1} %), {:.1} kWh vs {:.1}, \
         {} moves (peak {} per interval, {} in the warm-up), decision median {:.2} ms max {:.2} ms (thread CPU), \
         overloads {}, over headroom {}; fluid lower bound {:.1} server-hours",
        report.cells,
        report.servers,
        a.day,
        intervals,
        report.policy,
        report.server_hours,
        report.static_server_hours,
        report.saved_pct,
        report.static_packed_server_hours,
        report.saved_vs_packed_pct,
        report.energy_kwh,
        report.static_energy_kwh,
        report.moves,
        report.peak_moves_per_interval,
        report.moves_warm_up,
        report.decision_ms_median,
        report.decision_ms_max,
        report.overloads,
        report.over_headroom,
        report.lower_bound_server_hours,
    );
    for h in &report.hourly {
        println!(
            "  {:02}:00  servers on {:5}  load {:8.1} cores  moves {:5}",
            h.hour, h.servers_on, h.load_cores, h.moves
        );
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Servers a placement packed for each cell's own peak needs (first-fit decreasing): the
/// best any placement that never moves can do.
fn packed_servers(traffic: &[CellTraffic], usable: f64) -> usize {
    let mut peaks: Vec<f64> = traffic.iter().map(|c| c.peak_cores()).collect();
    peaks.sort_by(|a, b| b.total_cmp(a));
    let mut bins: Vec<f64> = Vec::new();
    for p in peaks {
        match bins.iter_mut().find(|b| **b + p <= usable) {
            Some(b) => *b += p,
            None => bins.push(p),
        }
    }
    bins.len()
}

#[cfg(test)]
mod slot_tests {
    use super::parse_slot;

    #[test]
    fn slots_parse_and_bad_ones_are_refused_with_the_expected_form() {
        let (cell, slot) = parse_slot(
            "cell1=server2-cell1@tcp://10.99.0.2:5601,192.168.10.12:49201,192.168.10.12:7001",
        )
        .unwrap();
        assert_eq!(cell, "cell1");
        assert_eq!(slot.name, "server2-cell1");
        assert_eq!(slot.agent, "tcp://10.99.0.2:5601");
        assert_eq!(slot.fronthaul, "192.168.10.12:49201");
        assert_eq!(slot.forward, "192.168.10.12:7001");
        for bad in [
            "cell1",
            "cell1=name",
            "cell1=name@tcp://h:1,1.2.3.4:5",
            "cell1=name@tcp://h:1,1.2.3.4,1.2.3.4:6",
            "cell/1=name@tcp://h:1,1.2.3.4:5,1.2.3.4:6",
            "cell1=@tcp://h:1,1.2.3.4:5,1.2.3.4:6",
            "cell1=name@h:1,1.2.3.4:5,1.2.3.4:6",
        ] {
            let e = parse_slot(bad).unwrap_err().to_string();
            assert!(e.contains("--slot"), "{bad}: {e}");
        }
    }
}
