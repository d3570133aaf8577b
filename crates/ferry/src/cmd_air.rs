//! `ferry air` (the emulated radio room) and `ferry radio` (operator access to link
//! control: discover, status, link, unlink, shadow, switch-at, capture, reset, probe).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use ferry_fronthaul::control::{CaptureFormat, CaptureStream, Reply, Request};
use ferry_radio::config::AirConfig;
use ferry_radio::rf::RadioModel;
use ferry_radio::{AirServer, ControlClient, LinkAuth, RadioLink, DEFAULT_AIR_IDENTITY};

/// Load the link-control key (refusing a file other users can read) for `identity`.
pub fn link_auth(key: Option<&PathBuf>, identity: &str) -> anyhow::Result<Option<LinkAuth>> {
    let Some(path) = key else {
        return Ok(None);
    };
    if !ferry_auth::valid_identity(identity) {
        bail!("identity {identity:?}: 1-64 characters of [A-Za-z0-9._:@-]");
    }
    Ok(Some(LinkAuth {
        key: ferry_auth::load_key_file(path)?,
        identity: identity.to_string(),
    }))
}

/// Arguments of `ferry air`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  ferry air --print-default-config > air.json\n  \
ferry air --config air.json\n  ferry air --fast-init --duration 10 --load   # CPU budget, JSON summary"
)]
pub struct AirArgs {
    /// JSON configuration file (default: the thesis topology: pool, far, relayrx, bs).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the built-in default configuration as JSON and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Skip the radios' power-up initialisation time (tests, quick demos).
    #[arg(long)]
    fast_init: bool,
    /// Override the link-control endpoint (e.g. tcp://127.0.0.1:5550).
    #[arg(long)]
    control: Option<String>,
    /// Stop after this many seconds and print a JSON run summary (CPU use of the air).
    #[arg(long)]
    duration: Option<f64>,
    /// Link a load-generating host to every radio (RX in, TX back 20 ms ahead).
    #[arg(long)]
    load: bool,
    /// Oscillator error of the radios' sample clock against this host's clock, in ppm
    /// (e.g. -50: the radios run 50 ppm slow, as a free-running crystal may); overrides the
    /// configuration's `clock_ppm`. Modems must track it (docs/FAULTS.md).
    #[arg(long, allow_hyphen_values = true)]
    clock_ppm: Option<f64>,
    /// Slow drift of that error in ppm per hour (overrides `clock_drift_ppm_per_hour`).
    #[arg(long, allow_hyphen_values = true)]
    clock_drift_ppm_per_hour: Option<f64>,
    /// Link-control key file (hex or raw, at least 16 bytes, mode 0600): every request
    /// must be signed with it (docs/SECURITY.md).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Run without --key: link control takes unsigned requests from anyone who reaches the
    /// socket. Only for a private air on loopback (tests); never on a shared LAN.
    #[arg(long, conflicts_with = "key")]
    open_control: bool,
    /// This radio room's identity: requests must name it as their recipient.
    #[arg(long, default_value = DEFAULT_AIR_IDENTITY)]
    identity: String,
    /// The only directory `capture` requests write into (files named by the air);
    /// without it `capture` requests are refused.
    #[arg(long)]
    capture_dir: Option<PathBuf>,
    /// Largest `capture` request, in samples.
    #[arg(long, default_value_t = ferry_radio::config::DEFAULT_MAX_CAPTURE_SAMPLES)]
    max_capture_samples: u64,
    /// LTE bandwidth in MHz (1.4, 3, 5, 10, 15, 20): puts the air's clock and every radio at
    /// its sample rate (also with --print-default-config). Radios whose model cannot give
    /// the rate become one that can (see --radio-model); which, and why, goes to stderr.
    #[arg(long)]
    bw: Option<f64>,
    /// With --bw: the radio model, or `auto` (keep each radio's model when it gives the
    /// rate, else the first of N210, B210, X310 that does). A forced model that cannot
    /// give the rate makes the air refuse to start, naming why.
    #[arg(long, value_enum, default_value_t = ModelChoice::Auto, requires = "bw")]
    radio_model: ModelChoice,
    /// One system call per fronthaul datagram instead of batches of `recvmmsg`/`sendmmsg`
    /// (to measure what batching saves; docs/BENCH-RADIO.md).
    #[arg(long)]
    unbatched_io: bool,
    /// MTU of the fronthaul LAN in bytes: sets the samples per data packet (RX from the
    /// radios and, with --load, the hosts' TX) so a packet fills one frame; 1500 gives 363
    /// samples, a 9000-byte jumbo frame 2238 (docs/FRONTHAUL.md).
    #[arg(long)]
    fronthaul_mtu: Option<usize>,
}

/// `--radio-model`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelChoice {
    /// Keep each radio's model when it can, else the first that can.
    Auto,
    /// USRP N210 + WBX (gigabit Ethernet, 25 Msps).
    N210,
    /// USRP B210 (USB 3, master clock 5–61.44 MHz).
    B210,
    /// USRP X310 + UBX-160 (10 GigE, 184.32 / 200 MHz).
    X310,
}

impl ModelChoice {
    fn model(self) -> Option<RadioModel> {
        match self {
            ModelChoice::Auto => None,
            ModelChoice::N210 => Some(RadioModel::N210),
            ModelChoice::B210 => Some(RadioModel::B210),
            ModelChoice::X310 => Some(RadioModel::X310),
        }
    }
}

/// Applies `--bw` / `--radio-model` to `cfg` and says on stderr which model the radios are.
fn apply_bw(cfg: &mut AirConfig, args: &AirArgs) -> anyhow::Result<()> {
    let Some(mhz) = args.bw else {
        return Ok(());
    };
    let bw = ferry_phy::numerology::Bandwidth::from_mhz(mhz)
        .map_err(|_| anyhow::anyhow!("--bw {mhz}: not an LTE bandwidth (1.4, 3, 5, 10, 15, 20)"))?;
    let note = cfg.set_lte_rate(
        bw.sample_rate_hz() as u32,
        mhz * 1e6,
        args.radio_model.model(),
    );
    eprintln!("ferry air: {note}");
    Ok(())
}

/// Runs `ferry air`.
pub fn run_air(args: AirArgs) -> anyhow::Result<()> {
    if args.print_default_config {
        // Not validated here: a forced model that cannot give --bw is refused by the air
        // that runs the configuration, with the reason in its error.
        let mut cfg = AirConfig::default();
        apply_bw(&mut cfg, &args)?;
        println!("{}", cfg.to_json_pretty());
        return Ok(());
    }
    let mut cfg = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            AirConfig::from_json(&text).with_context(|| format!("in {}", p.display()))?
        }
        None => AirConfig::default(),
    };
    apply_bw(&mut cfg, &args)?;
    if let Some(mtu) = args.fronthaul_mtu {
        cfg.samples_per_packet = ferry_fronthaul::vrt::samples_per_packet_for_mtu(mtu);
    }
    if args.fast_init {
        cfg = cfg.with_init_ms(0);
    }
    if let Some(c) = &args.control {
        cfg.control = c.clone();
    }
    if let Some(p) = args.clock_ppm {
        cfg.clock_ppm = p;
    }
    if let Some(d) = args.clock_drift_ppm_per_hour {
        cfg.clock_drift_ppm_per_hour = d;
    }
    cfg.validate().context("air configuration")?;
    if args.key.is_none() && !args.open_control {
        bail!(
            "give --key FILE: link control must be authenticated (docs/SECURITY.md); \
             --open-control runs a private test air without it"
        );
    }
    cfg.auth = link_auth(args.key.as_ref(), &args.identity)?;
    if cfg.auth.is_none() {
        tracing::warn!(
            "link control is OPEN (--open-control): anyone reaching it can take the radios"
        );
    }
    if args.capture_dir.is_some() {
        cfg.capture_dir = args.capture_dir.clone();
    }
    cfg.max_capture_samples = args.max_capture_samples;
    let auth = cfg.auth.clone();
    let names: Vec<String> = cfg.radios.iter().map(|r| r.name.clone()).collect();
    let rate = cfg.sample_rate_hz;
    let samples_per_packet = cfg.samples_per_packet;
    let mut server = AirServer::bind(cfg).context("starting the air")?;
    server.set_batched_io(!args.unbatched_io);
    eprintln!("ferry air: link control on {}", server.control_endpoint());
    for (n, a) in names.iter().zip(server.fronthaul_addrs()) {
        eprintln!("ferry air: radio {n} fronthaul on udp {a}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hosts = if args.load {
        ferry_radio::loadgen::spawn_hosts(
            server.control_endpoint(),
            &names,
            u64::from(rate) / 50,
            samples_per_packet,
            auth,
            stop.clone(),
        )
    } else {
        Vec::new()
    };
    let summary = server.run(&stop, args.duration.map(Duration::from_secs_f64));
    stop.store(true, Ordering::Relaxed);
    let mut load = Vec::new();
    for h in hosts {
        match h.join() {
            Ok(Ok(s)) => load.push(serde_json::json!({
                "radio": s.radio, "rx_samples": s.rx_samples,
                "rx_gap_samples": s.rx_gap_samples, "tx_samples": s.tx_samples,
            })),
            Ok(Err(e)) => load.push(serde_json::json!({ "error": e.to_string() })),
            Err(_) => load.push(serde_json::json!({ "error": "host thread panicked" })),
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "air": summary, "load_hosts": load }))?
    );
    Ok(())
}

/// Arguments of `ferry radio`.
#[derive(Args)]
pub struct RadioArgs {
    /// Link-control endpoint of `ferry air`.
    #[arg(long, default_value = "tcp://127.0.0.1:5550", global = true)]
    control: String,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 1000, global = true)]
    timeout_ms: u64,
    /// Link-control key file of the air (mode 0600).
    #[arg(long, global = true)]
    key: Option<PathBuf>,
    /// The air's identity (its `--identity`).
    #[arg(long, default_value = DEFAULT_AIR_IDENTITY, global = true)]
    air_identity: String,
    #[command(subcommand)]
    op: RadioOp,
}

#[derive(Clone, Copy, ValueEnum)]
enum StreamArg {
    Rx,
    Tx,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Ci16Le,
    Cf32Le,
}

#[derive(Subcommand)]
enum RadioOp {
    /// List initialised radios (like uhd_find_devices); with RADIO, that one or an error.
    Discover { radio: Option<String> },
    /// Counters and link state (JSON).
    Status { radio: Option<String> },
    /// Stream RADIO's RX to ENDPOINT and take TX from it.
    Link { radio: String, endpoint: SocketAddr },
    /// Stop RADIO streaming (only if linked to --only-if, when given).
    Unlink {
        radio: String,
        #[arg(long)]
        only_if: Option<SocketAddr>,
    },
    /// Copy RADIO's RX to ENDPOINT as well (omit ENDPOINT to stop the copy).
    Shadow {
        radio: String,
        endpoint: Option<SocketAddr>,
    },
    /// Stop copying RADIO's RX to ENDPOINT, only if ENDPOINT is the shadow (refused
    /// otherwise: another host's copy stays). What an agent's lease does to a warm modem
    /// nobody armed.
    Unshadow { radio: String, endpoint: SocketAddr },
    /// Move RADIO's link to ENDPOINT at sample time --at, or --in-ms from now.
    SwitchAt {
        radio: String,
        endpoint: SocketAddr,
        #[arg(long, conflicts_with = "in_ms")]
        at: Option<u64>,
        #[arg(long)]
        in_ms: Option<u64>,
    },
    /// Record SAMPLES samples of RADIO's stream into the air's capture directory (the air
    /// names the files and says which).
    Capture {
        radio: String,
        #[arg(long, default_value_t = 1_920_000)]
        samples: u64,
        #[arg(long, value_enum, default_value = "rx")]
        stream: StreamArg,
        #[arg(long, value_enum, default_value = "ci16-le")]
        format: FormatArg,
    },
    /// Stop every capture of RADIO now.
    StopCapture { radio: String },
    /// Protect RADIO's primary with the warm standby at ENDPOINT: the radio copies RX to it
    /// and switches to it when the primary sends no TX for its liveness interval (omit
    /// ENDPOINT to unprotect). `ferry ctl protect` does this with a hot standby modem.
    Protect {
        radio: String,
        endpoint: Option<SocketAddr>,
    },
    /// Disarm RADIO's pending switch before its instant.
    CancelSwitch { radio: String },
    /// Report RADIO's primary at ENDPOINT dead (what an agent does when its modem exits):
    /// the radio fails over to the standby (or a live fallback) at the next subframe
    /// boundary; refused if ENDPOINT is no longer the primary or nobody can take over.
    PrimaryDead { radio: String, endpoint: SocketAddr },
    /// Poll RADIO's status every --interval-ms and print one JSON line (with the Unix time
    /// in ms) whenever its primary, epoch, fallbacks, failovers or fenced packets change —
    /// for watching a failover happen (`ferry demo failover` times detection with it).
    Watch {
        radio: String,
        #[arg(long, default_value_t = 1)]
        interval_ms: u64,
        /// Stop after this many seconds (default: until killed).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Power-cycle RADIO (it re-initialises; links are lost).
    Reset { radio: String },
    /// Probe a radio's fronthaul address directly (8 tries, as the thesis controller).
    Probe {
        addr: SocketAddr,
        #[arg(long, default_value_t = 8)]
        tries: u32,
    },
}

/// Runs `ferry radio`.
pub fn run_radio(args: RadioArgs) -> anyhow::Result<()> {
    let ctl = ControlClient::new(args.control.clone(), Duration::from_millis(args.timeout_ms))
        .with_auth(link_auth(args.key.as_ref(), &args.air_identity)?)
        .with_name("ferry-radio");
    let req = match args.op {
        RadioOp::Discover { radio } => Request::Discover { radio },
        RadioOp::Status { radio } => Request::Status { radio },
        RadioOp::Link { radio, endpoint } => Request::Link { radio, endpoint },
        RadioOp::Unlink { radio, only_if } => Request::Unlink {
            radio,
            endpoint: only_if,
        },
        RadioOp::Shadow { radio, endpoint } => Request::Shadow { radio, endpoint },
        RadioOp::Unshadow { radio, endpoint } => Request::Unshadow { radio, endpoint },
        RadioOp::SwitchAt {
            radio,
            endpoint,
            at,
            in_ms,
        } => {
            let at = match (at, in_ms) {
                (Some(t), _) => t,
                (None, Some(ms)) => {
                    let (now, st) = ctl.status(&radio)?;
                    now + ms * u64::from(st.info.sample_rate_hz) / 1000
                }
                (None, None) => bail!("give --at SAMPLE or --in-ms MS"),
            };
            Request::SwitchAt {
                radio,
                at,
                endpoint,
            }
        }
        RadioOp::Capture {
            radio,
            samples,
            stream,
            format,
        } => Request::Capture {
            radio,
            samples,
            stream: match stream {
                StreamArg::Rx => CaptureStream::Rx,
                StreamArg::Tx => CaptureStream::Tx,
            },
            format: match format {
                FormatArg::Ci16Le => CaptureFormat::Ci16Le,
                FormatArg::Cf32Le => CaptureFormat::Cf32Le,
            },
        },
        RadioOp::StopCapture { radio } => Request::StopCapture { radio },
        RadioOp::Protect { radio, endpoint } => Request::Protect { radio, endpoint },
        RadioOp::CancelSwitch { radio } => Request::CancelSwitch { radio },
        RadioOp::PrimaryDead { radio, endpoint } => Request::PrimaryDead { radio, endpoint },
        RadioOp::Watch {
            radio,
            interval_ms,
            duration,
        } => return watch(&ctl, &radio, interval_ms, duration),
        RadioOp::Reset { radio } => Request::Reset { radio },
        RadioOp::Probe { addr, tries } => {
            let link = RadioLink::create_legacy("0.0.0.0:0".parse()?, addr, 0, 1)?;
            let a = link.probe(tries, Duration::from_millis(250))?;
            println!("{}", serde_json::to_string_pretty(&a)?);
            return Ok(());
        }
    };
    let reply = ctl.request(&req)?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    if let Reply::Error { message, .. } = reply {
        bail!("{message}");
    }
    Ok(())
}

/// `ferry radio watch`: one JSON line per change of RADIO's arbiter state.
fn watch(
    ctl: &ControlClient,
    radio: &str,
    interval_ms: u64,
    duration: Option<f64>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let t0 = std::time::Instant::now();
    let mut last: Option<serde_json::Value> = None;
    let mut out = std::io::stdout().lock();
    loop {
        if duration.is_some_and(|d| t0.elapsed().as_secs_f64() >= d) {
            return Ok(());
        }
        match ctl.status(radio) {
            Ok((sample, st)) => {
                let a = &st.arbiter;
                let key = serde_json::json!({
                    "primary": st.linked,
                    "epoch": a.epoch,
                    "standby": a.standby,
                    "fallbacks": a.fallbacks,
                    "failovers": a.failovers,
                    "fenced_packets": a.fenced_packets,
                });
                if last.as_ref() != Some(&key) {
                    let unix_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64() * 1e3);
                    let mut line = key.clone();
                    line["unix_ms"] = unix_ms.into();
                    line["sample"] = sample.into();
                    line["rate_hz"] = st.info.sample_rate_hz.into();
                    line["primary_since"] = a.primary_since.into();
                    line["last_silence_samples"] = a.last_silence_samples.into();
                    line["protection_since"] = a.protection_since.into();
                    writeln!(out, "{line}")?;
                    out.flush()?;
                    last = Some(key);
                }
            }
            Err(e) => {
                // A missed poll is reported, not fatal: the watcher outlives a busy radio.
                eprintln!("status: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(interval_ms.max(1)));
    }
}
