//! `ferry ctl`: the thesis operator console on stdin, and scriptable subcommands
//! (`migrate`, `run`, `send`, `status`) over the same Lazy Pirate client.

use crate::cmd_agent::{load_key, HostArgs};
use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use ferry_agent::HostExec;
use ferry_ctl::{print_outcome, run_console, AgentClient, ConsoleOptions, Driver, RadioControl};
use ferry_migrate::{
    mbb, ConsoleCommand, LegacyConfig, MbbConfig, Pause, PausePoint, Peer, Reply, Request,
};
use ferry_radio::ControlClient;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `ferry ctl`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  ferry ctl --key k.hex --peer server2=tcp://10.99.0.2:5555 --remote server2 console\n  \
ferry ctl --key k.hex --peer server2=tcp://10.99.0.2:5555 run DS M MB KL\n  \
ferry ctl --key k.hex --local tcp://10.99.0.1:5555 --peer server2=tcp://10.99.0.2:5555 migrate --to server2 --method mbb --json\n  \
ferry ctl --key k.hex send status --to tcp://10.99.0.2:5555\n  \
ferry ctl --key k.hex send set_tun_ip '{\"tun_ip\":\"192.168.40.9\"}' --to server2"
)]
pub struct CtlArgs {
    /// Shared key file of the agents.
    #[arg(long)]
    key: PathBuf,
    /// Named agents, NAME=ENDPOINT (repeat), e.g. server2=tcp://10.99.0.2:5555.
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// The remote agent (a --peer name or an endpoint) for the thesis commands.
    #[arg(long)]
    remote: Option<String>,
    /// This server's own agent (make-before-break source when moving out).
    #[arg(long)]
    local: Option<String>,
    /// Deadline of each agent request, ms, retries included: a dead agent costs this long.
    #[arg(long, default_value_t = 4_000)]
    timeout_ms: u64,
    /// Deadline of the requests that take seconds, ms: start_d2d (the modem links and tunes
    /// its radio before it answers), start_usrp (full USRP init) and link_usrp (up to 8
    /// probes, then the link).
    #[arg(long, default_value_t = 15_000)]
    slow_timeout_ms: u64,
    /// Resend an unanswered request this many times (the same signed frames: the agent
    /// runs it once and answers retries from its reply cache).
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Don't wait for the modem to report sync after a legacy link.
    #[arg(long)]
    no_resync: bool,
    /// Relay task: carry the route list too.
    #[arg(long)]
    relay: bool,
    /// Hold a migration (M or mbb) for --pause-ms after the destination's D2D started
    /// (`started`: M before make_usrp, mbb before the radio shadows) or, mbb only, after it
    /// synchronised in shadow (`synced`, before T is chosen; sync is confirmed again
    /// after). The source is untouched during the hold: inspect the warm destination or
    /// inject a failure. Shown as its own timeline phase.
    #[arg(long, value_enum, requires = "pause_ms")]
    pause_after: Option<PauseAt>,
    /// Length of the --pause-after hold, ms.
    #[arg(long, requires = "pause_after")]
    pause_ms: Option<u64>,
    #[command(flatten)]
    host: HostArgs,
    #[command(subcommand)]
    op: CtlOp,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Method {
    /// The thesis' break-before-make (M).
    Legacy,
    /// Ferry's make-before-break.
    Mbb,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum PauseAt {
    /// After the destination's D2D program started.
    Started,
    /// After the destination synchronised in shadow (make-before-break only).
    Synced,
}

#[derive(Subcommand)]
enum CtlOp {
    /// The interactive console (DS KL M MB DSR KR h end q) on stdin.
    Console {
        /// Print each migration's timeline as JSON too.
        #[arg(long)]
        json: bool,
    },
    /// Run console commands in order, e.g. `run DS M MB KL`; stops at the first failure.
    Run {
        /// Console commands.
        commands: Vec<String>,
        /// Print timelines as JSON too.
        #[arg(long)]
        json: bool,
    },
    /// One migration to --to.
    Migrate {
        /// Destination agent (a --peer name or an endpoint).
        #[arg(long)]
        to: String,
        /// legacy (thesis M: this host's task moves out) or mbb (make-before-break).
        #[arg(long, value_enum, default_value = "legacy")]
        method: Method,
        /// Print the timeline as JSON too.
        #[arg(long)]
        json: bool,
        /// mbb: the destination modem's radio endpoint (ip:port).
        #[arg(long)]
        dest_port: Option<String>,
        /// mbb: the destination modem's forwarding endpoint (ip:port).
        #[arg(long)]
        forward_to: Option<SocketAddr>,
        /// mbb: how far ahead of the radio clock T is placed at most, ms. The margin used
        /// is twice the sum of the largest of the last 4 round trips this migration measured
        /// to the source, the destination and the radio, plus the modems' TX lead (8) and a
        /// 2 ms guard, between --margin-floor-ms and this. Arming (three round trips) must
        /// fit in it.
        #[arg(long, default_value_t = 40)]
        margin_ms: u64,
        /// mbb: the least margin, ms. Set it to --margin-ms for a fixed margin; raise it on
        /// a host whose round trips jump between the measurement and the arming.
        #[arg(long, default_value_t = 20)]
        margin_floor_ms: u64,
    },
    /// Protect the task served by --local with a hot standby on --standby (issue #12): the
    /// standby gets the task's TUN address, routes and Control, starts warm, synchronises
    /// on the radio's copy and sends filler; the radio then fails the task over to it at
    /// the next subframe boundary when the primary sends no TX for its liveness interval
    /// (docs/FAULTS.md). Nothing moves. Needs --radio-control and --radio-key.
    ///
    /// With --auto, a long-running controller instead (docs/FAILOVER.md): it polls the
    /// radio's status every --poll-ms and, whenever the task is unprotected (after every
    /// failover), stops the deposed primary's modem on its agent and protects the serving
    /// server with a clean one of --standby-candidates, retrying with backoff; it logs
    /// each action and "unprotected for X ms" per failover. Every candidate's agent is a
    /// --peer. SIGINT/SIGTERM stop it (a protect in flight finishes or rolls back first);
    /// the protection in force stays.
    #[command(
        after_help = "Examples:\n  ferry ctl --key k.hex --radio-key k.hex --local server1=tcp://10.99.0.1:5555 --peer server2=tcp://10.99.0.2:5555 protect --standby server2 --dest-port 192.168.10.12:49200\n  \
ferry ctl --key k.hex --radio-key k.hex --peer server1=tcp://10.99.0.1:5555 --peer server2=tcp://10.99.0.2:5555 protect --auto --standby-candidates server1@192.168.10.11:49200,server2@192.168.10.12:49200"
    )]
    Protect {
        /// Standby agent (a --peer name or an endpoint).
        #[arg(long, required_unless_present = "auto", conflicts_with = "auto")]
        standby: Option<String>,
        /// The standby modem's radio endpoint (ip:port).
        #[arg(long, required_unless_present = "auto", conflicts_with = "auto")]
        dest_port: Option<String>,
        /// Print the timeline as JSON too.
        #[arg(long)]
        json: bool,
        /// Keep the task protected: re-protect after every failover (a controller that runs
        /// until SIGINT/SIGTERM).
        #[arg(long, requires = "standby_candidates")]
        auto: bool,
        /// --auto: every server that may serve the task or protect it, NAME@IP:PORT (a
        /// --peer name and its modem's radio endpoint), comma-separated, in order of
        /// preference; the serving one is never picked.
        #[arg(long, value_delimiter = ',')]
        standby_candidates: Vec<String>,
        /// --auto: poll the radio's status this often, ms.
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
        /// --auto: the task must stay unprotected this long before a protect starts, ms
        /// (a flapping status starts nothing).
        #[arg(long, default_value_t = 40)]
        settle_ms: u64,
        /// --auto: failed jobs in a row after which a server is set aside (30 s) and the
        /// others are preferred.
        #[arg(long, default_value_t = 5)]
        give_up_after: u32,
    },
    /// Stop protecting: the radio drops the standby, then the standby's modem is stopped.
    Unprotect {
        /// Standby agent (a --peer name or an endpoint).
        #[arg(long)]
        standby: String,
    },
    /// Send one request and print the reply as JSON (exit status 1 unless ok).
    Send {
        /// Command name (`status`, `get_tun_ip`, ... or anything: unknown ones get "wrong command").
        cmd: String,
        /// Other fields, as a JSON object.
        json: Option<String>,
        /// Agent (a --peer name or an endpoint); default --remote.
        #[arg(long)]
        to: Option<String>,
    },
    /// `status` of every named peer (and --local / --remote).
    Status,
}

/// An agent's identity and endpoint: a --peer name, `NAME=ENDPOINT`, or a bare endpoint
/// (the agent then must have the default name).
fn resolve(peers: &[String], name: &str) -> anyhow::Result<(String, String)> {
    for p in peers {
        let Some((n, e)) = p.split_once('=') else {
            bail!("--peer {p:?}: expected NAME=ENDPOINT");
        };
        if n == name {
            return Ok((n.to_string(), e.to_string()));
        }
    }
    if let Some((n, e)) = name.split_once('=').filter(|(_, e)| e.contains("://")) {
        Ok((n.to_string(), e.to_string()))
    } else if name.contains("://") {
        Ok((ferry_ctl::DEFAULT_AGENT_NAME.to_string(), name.to_string()))
    } else {
        bail!("unknown agent {name:?}: give --peer {name}=tcp://HOST:PORT or an endpoint")
    }
}

/// Runs `ferry ctl`.
pub fn run(args: CtlArgs) -> anyhow::Result<()> {
    let key = load_key(&args.key)?;
    let radio_auth = args.host.radio_auth()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    // The sequences bound each request themselves (ordinary or slow); the client's own
    // deadline is only their ceiling.
    let seq_timeout = Duration::from_millis(args.timeout_ms.max(args.slow_timeout_ms));
    let client = |name: &str| -> anyhow::Result<AgentClient> {
        let (name, endpoint) = resolve(&args.peers, name)?;
        Ok(AgentClient::named(name, endpoint, key.clone(), seq_timeout).with_retries(args.retries))
    };
    let mut legacy = LegacyConfig {
        active_addr: args.host.active,
        parked_addr: args.host.parked,
        relay: args.relay,
        confirm_resync: !args.no_resync,
        ..LegacyConfig::default()
    };
    legacy.timeouts.request_ms = args.timeout_ms;
    legacy.slow_request_ms = args.slow_timeout_ms;
    let pause = match (args.pause_after, args.pause_ms) {
        (Some(at), Some(ms)) => Some(Pause {
            after: match at {
                PauseAt::Started => PausePoint::DestinationStarted,
                PauseAt::Synced => PausePoint::DestinationSynced,
            },
            ms,
        }),
        _ => None,
    };
    if pause.is_some_and(|p| p.after == PausePoint::DestinationStarted) {
        legacy.pause = pause;
    }
    let remote = args.remote.as_deref().map(client).transpose()?;
    let local = args.local.as_deref().map(client).transpose()?;
    let radio = || RadioControl {
        client: ControlClient::new(args.host.radio_control.clone(), Duration::from_millis(500))
            .with_auth(radio_auth.clone())
            .with_name("ctl"),
        radio: args.host.radio_name.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match &args.op {
        CtlOp::Console { json } => {
            let mut driver = Driver::new(
                Some(HostExec::new(args.host.host_config()?)),
                local,
                remote,
                Some(radio()),
            );
            let opts = ConsoleOptions {
                legacy,
                json: *json,
                prompt: std::io::stdin().is_terminal(),
            };
            ferry_ctl::interrupt::install();
            // A task an earlier console (or agent) on this host left running is this
            // console's: it reports, migrates (M) and stops (KL) it.
            if let Some(what) = driver.host.as_mut().and_then(|h| h.adopt_modem()) {
                eprintln!("console: {what}");
            }
            if opts.prompt {
                writeln!(out, "{}", ferry_migrate::console::HELP)?;
            }
            let mut input = ferry_ctl::InterruptibleStdin::new();
            run_console(&mut input, &mut out, &mut driver, &opts)?;
            out.flush()?;
            // End of input, `q`, SIGINT or SIGTERM: the task keeps running where it runs.
            let why = if ferry_ctl::interrupt::requested() {
                "interrupted (SIGINT/SIGTERM)"
            } else {
                "input ended"
            };
            match driver.host.as_mut().and_then(|h| h.detach()) {
                Some(left) => eprintln!(
                    "console: {why}; the task keeps running on this host: {left}. A new \
                     `ferry ctl console` here adopts it; KL stops it."
                ),
                None => eprintln!("console: {why}; no task runs on this host."),
            }
            Ok(())
        }
        CtlOp::Run { commands, json } => {
            let mut driver = Driver::new(
                Some(HostExec::new(args.host.host_config()?)),
                local,
                remote,
                Some(radio()),
            );
            let opts = ConsoleOptions {
                legacy,
                json: *json,
                prompt: false,
            };
            for c in commands {
                writeln!(out, "ferry> {c}")?;
                if !matches!(ConsoleCommand::parse(c), ConsoleCommand::Unknown(_)) {
                    let (o, quit) = ferry_ctl::run_line(c, &mut driver, &opts, &mut out)?;
                    if o.is_some_and(|o| !o.ok) {
                        bail!("{c} failed");
                    }
                    if quit {
                        break;
                    }
                } else {
                    bail!("unknown console command {c:?}; see ferry ctl console, h");
                }
            }
            Ok(())
        }
        CtlOp::Migrate {
            to,
            method,
            json,
            dest_port,
            forward_to,
            margin_ms,
            margin_floor_ms,
        } => {
            ferry_ctl::interrupt::install();
            let dest = client(to)?;
            let outcome = match method {
                Method::Legacy => {
                    let mut driver = Driver::new(
                        Some(HostExec::new(args.host.host_config()?)),
                        local,
                        Some(dest),
                        None,
                    );
                    let seq = ConsoleCommand::Migrate
                        .start(&legacy, driver.now())
                        .map_err(anyhow::Error::msg)?;
                    driver.run(seq, &mut |r| eprintln!("  {}", r.text))
                }
                Method::Mbb => {
                    let Some(local) = local else {
                        bail!("mbb needs --local (this server's agent: the source)");
                    };
                    let (Some(port), Some(fwd)) = (dest_port, forward_to) else {
                        bail!("mbb needs --dest-port and --forward-to");
                    };
                    let mut cfg = MbbConfig::new(Peer::Local, Peer::Remote, port.clone(), *fwd);
                    cfg.relay = args.relay;
                    cfg.pause = pause;
                    cfg.margin_ms = *margin_ms;
                    cfg.margin_floor_ms = *margin_floor_ms;
                    let mut driver = Driver::new(None, Some(local), Some(dest), Some(radio()));
                    let seq = mbb::migrate(cfg, driver.now());
                    driver.run(seq, &mut |r| eprintln!("  {}", r.text))
                }
            };
            print_outcome(&mut out, &outcome, *json)?;
            if !outcome.ok {
                bail!("migration failed: {}", outcome.summary);
            }
            Ok(())
        }
        CtlOp::Protect {
            auto: true,
            standby_candidates,
            poll_ms,
            settle_ms,
            give_up_after,
            ..
        } => {
            let mut servers = Vec::new();
            for c in standby_candidates {
                let Some((name, ep)) = c.split_once('@') else {
                    bail!("--standby-candidates {c:?}: expected NAME@IP:PORT (a --peer name and its modem's radio endpoint)");
                };
                ep.parse::<SocketAddr>().with_context(|| {
                    format!("--standby-candidates {c:?}: {ep:?} is not ip:port")
                })?;
                resolve(&args.peers, name)?;
                servers.push(ferry_migrate::reprotect::Server {
                    name: name.to_string(),
                    endpoint: ep.to_string(),
                });
            }
            if servers.len() < 2 {
                bail!("--standby-candidates needs at least two servers (the serving one and a standby)");
            }
            if radio_auth.is_none() {
                bail!("protect --auto needs --radio-key (the radio's status and protect are authenticated)");
            }
            ferry_ctl::interrupt::install();
            let mut core = ferry_migrate::reprotect::ReprotectConfig::new(
                args.host.radio_name.clone(),
                servers,
            );
            core.settle_ms = *settle_ms;
            core.give_up_after = (*give_up_after).max(1);
            let peers = args.peers.clone();
            let retries = args.retries;
            let agent_key = key.clone();
            let agents: ferry_ctl::auto_protect::AgentFactory = Box::new(move |name: &str| {
                let (name, endpoint) = resolve(&peers, name).map_err(|e| e.to_string())?;
                Ok(
                    AgentClient::named(name, endpoint, agent_key.clone(), timeout)
                        .with_retries(retries),
                )
            });
            let control = args.host.radio_control.clone();
            let radio_name = args.host.radio_name.clone();
            let auth = radio_auth.clone();
            let radios: ferry_ctl::auto_protect::RadioFactory = Box::new(move || RadioControl {
                client: ControlClient::new(control.clone(), Duration::from_millis(500))
                    .with_auth(auth.clone())
                    .with_name("ctl-auto"),
                radio: radio_name.clone(),
            });
            let opts = ferry_ctl::auto_protect::AutoProtect {
                core,
                poll: Duration::from_millis((*poll_ms).max(1)),
                relay: args.relay,
                // The agent stops a modem with SIGTERM, then SIGKILL after 500 ms (a
                // paused one needs the SIGKILL): its reply can take that long.
                stop_timeout: Duration::from_millis(1500),
                health_every: Duration::from_millis(250),
                health_timeout: Duration::from_millis(500),
                agents: std::sync::Arc::new(agents),
                radio: std::sync::Arc::new(radios),
            };
            let t0 = std::time::Instant::now();
            let say = |l: String| {
                tracing::debug!("{l}");
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "[{:9.3} s] {l}", t0.elapsed().as_secs_f64());
                let _ = o.flush();
            };
            let summary = ferry_ctl::auto_protect::run(opts, &say);
            let c = summary.counts;
            let gaps: Vec<String> = summary
                .reprotected
                .iter()
                .map(|r| format!("{:.0}", r.unprotected_ms))
                .collect();
            say(format!(
                "stopped (protection left in place): {} re-protections (unprotected ms: [{}]); {} protects ({} failed), {} modem stops ({} failed); ignored {} strangers, {} garbled, {} stale; {} polls unanswered",
                c.reprotections,
                gaps.join(", "),
                c.protects,
                c.protects_failed,
                c.stops,
                c.stops_failed,
                c.strangers,
                c.garbled,
                c.stale,
                c.no_status
            ));
            Ok(())
        }
        CtlOp::Protect {
            standby,
            dest_port,
            json,
            ..
        } => {
            let (Some(standby), Some(dest_port)) = (standby, dest_port) else {
                bail!("protect needs --standby and --dest-port (or --auto)");
            };
            let Some(local) = local else {
                bail!("protect needs --local (this server's agent: it serves the task)");
            };
            ferry_ctl::interrupt::install();
            let dest = client(standby)?;
            // Nothing is forwarded when protecting: the address is never used.
            let unused = SocketAddr::from(([0, 0, 0, 0], 0));
            let mut cfg = MbbConfig::new(Peer::Local, Peer::Remote, dest_port.clone(), unused);
            cfg.relay = args.relay;
            let mut driver = Driver::new(None, Some(local), Some(dest), Some(radio()));
            let seq = ferry_migrate::protect::protect(cfg, driver.now());
            let outcome = driver.run(seq, &mut |r| eprintln!("  {}", r.text));
            print_outcome(&mut out, &outcome, *json)?;
            if !outcome.ok {
                bail!("protect failed: {}", outcome.summary);
            }
            Ok(())
        }
        CtlOp::Unprotect { standby } => {
            let dest = client(standby)?;
            let mut driver = Driver::new(None, None, Some(dest), Some(radio()));
            let t = MbbConfig::new(Peer::Local, Peer::Remote, "", SocketAddr::from(([0; 4], 0)))
                .timeouts;
            let seq = ferry_migrate::protect::unprotect(Peer::Remote, t, driver.now());
            let outcome = driver.run(seq, &mut |r| eprintln!("  {}", r.text));
            print_outcome(&mut out, &outcome, false)?;
            if !outcome.ok {
                bail!("unprotect failed: {}", outcome.summary);
            }
            Ok(())
        }
        CtlOp::Send { cmd, json, to } => {
            let target = to
                .as_deref()
                .or(args.remote.as_deref())
                .context("send needs --to or --remote")?;
            let mut c = client(target)?;
            let mut body = match json {
                Some(j) => {
                    serde_json::from_str::<serde_json::Value>(j).context("the JSON argument")?
                }
                None => serde_json::json!({}),
            };
            let Some(obj) = body.as_object_mut() else {
                bail!("the JSON argument must be an object");
            };
            obj.insert("cmd".into(), cmd.clone().into());
            let body = body.to_string();
            // A modem start or a USRP init takes seconds: the slow deadline, as the
            // sequences give it.
            let within = match Request::decode(body.as_bytes()) {
                Ok(r) if r.is_slow() => seq_timeout,
                _ => timeout,
            };
            let reply = c.call_body(body.as_bytes(), within)?;
            writeln!(out, "{}", String::from_utf8_lossy(&reply.encode()))?;
            if !reply.ok {
                std::process::exit(1);
            }
            Ok(())
        }
        CtlOp::Status => {
            let mut names: Vec<String> = args
                .peers
                .iter()
                .filter_map(|p| p.split_once('=').map(|(n, _)| n.to_string()))
                .collect();
            names.extend(args.local.iter().cloned());
            names.extend(args.remote.iter().cloned());
            names.dedup();
            let mut all_ok = true;
            for n in names {
                let mut c = client(&n)?;
                let line = match c.call_body(&Request::Observe.encode(), timeout) {
                    Ok(r) => String::from_utf8_lossy(&Reply::encode(&r)).into_owned(),
                    Err(e) => {
                        all_ok = false;
                        format!("{{\"error\":{}}}", serde_json::Value::from(e.to_string()))
                    }
                };
                writeln!(out, "{n}: {line}")?;
            }
            // Who serves the task and whether it is protected, as the radio (the arbiter)
            // sees it; only when this console may talk to the radio.
            if radio_auth.is_some() {
                let r = radio();
                let line = match r.client.status(&r.radio) {
                    Ok((now, st)) => protection_line(now, &st),
                    Err(e) => {
                        all_ok = false;
                        format!("radio {}: no status ({e})", r.radio)
                    }
                };
                writeln!(out, "{line}")?;
            }
            if !all_ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// One line on who serves and whether a standby protects it, from the radio's `status`
/// taken at radio time `now`.
fn protection_line(now: u64, st: &ferry_fronthaul::control::StatusReport) -> String {
    let rate = f64::from(st.info.sample_rate_hz.max(1));
    let ago = |since: u64| now.saturating_sub(since) as f64 / rate;
    let a = &st.arbiter;
    let primary = st
        .linked
        .map_or_else(|| "nobody".to_string(), |p| p.to_string());
    let protection = match a.standby {
        Some(s) => format!("protected by {s} for {:.1} s", ago(a.protection_since)),
        None => format!("unprotected for {:.1} s", ago(a.protection_since)),
    };
    format!(
        "radio {}: primary {primary} (epoch {}, for {:.1} s), {protection}; failovers {}, fallbacks {}",
        st.info.radio,
        a.epoch,
        ago(a.primary_since),
        a.failovers,
        a.fallbacks
    )
}

#[cfg(test)]
mod protection_tests {
    use super::protection_line;
    use ferry_fronthaul::control::{ArbiterStatus, StatusReport};

    #[test]
    fn says_who_serves_and_since_when_it_is_protected() {
        let mut st = StatusReport {
            info: serde_json::from_value(serde_json::json!({
                "radio": "pool", "number": 1, "serial": "F1", "fronthaul": "10.0.0.1:1",
                "sample_rate_hz": 1_000_000, "freq_hz": 1.9e9, "legacy": false
            }))
            .expect("radio info"),
            ready: true,
            linked: Some("192.168.10.11:49200".parse().unwrap()),
            shadow: None,
            pending_switch: None,
            counters: Default::default(),
            arbiter: ArbiterStatus {
                epoch: 3,
                standby: Some("192.168.10.12:49200".parse().unwrap()),
                failovers: 1,
                primary_since: 1_000_000,
                protection_since: 2_500_000,
                ..Default::default()
            },
        };
        let l = protection_line(4_000_000, &st);
        assert!(
            l.contains("primary 192.168.10.11:49200 (epoch 3, for 3.0 s)"),
            "{l}"
        );
        assert!(
            l.contains("protected by 192.168.10.12:49200 for 1.5 s"),
            "{l}"
        );
        st.arbiter.standby = None;
        assert!(protection_line(4_000_000, &st).contains("unprotected for 1.5 s"));
    }
}
