//! `ferry radiohead`: one radio served to the pool exactly as `ferry air` serves its
//! emulated radios (ZeroMQ link control, VITA-49 fronthaul, link/shadow/switch_at), but
//! whose samples go to real hardware: a USRP through UHD (`--medium uhd`, cargo feature
//! `uhd`) or the cabled-loopback model of one (`--medium loopback`, always built).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ferry_radio::config::{AirConfig, RadioConfig};
use ferry_radio::medium::{Loopback, LoopbackConfig, Medium};
use ferry_radio::resample::{N210Plan, ResampledMedium};
use ferry_radio::AirServer;

/// Where the head's samples go.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MediumArg {
    /// A USRP through UHD (needs a build with `--features uhd` and a device).
    Uhd,
    /// TX cabled back into RX through an attenuator (bench set-up; no hardware needed).
    Loopback,
}

/// Arguments of `ferry radiohead`.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
ferry radiohead --medium uhd --uhd-args addr=192.168.10.2 --control tcp://0.0.0.0:5550 \\\n      \
--fronthaul 192.168.10.3:49156        # needs: cargo build --release -p ferry --features uhd\n  \
ferry radiohead --medium loopback --duration 5   # cabled loopback model, prints a JSON summary\n\
Modems then link to it as to `ferry air`: ferry modem --radio-control tcp://HEAD:5550 --radio pool ...\n\
The radio's RF settings (thesis table 3-2) come from --config (one radio of `ferry air \
--print-default-config`); see docs/RADIO.md, \"Radio head and real USRPs\".")]
pub struct RadioHeadArgs {
    /// What carries the samples.
    #[arg(long, value_enum, default_value = "loopback")]
    medium: MediumArg,
    /// JSON file with one radio entry (`name`, `fronthaul`, `rf`, ...); default: the air's
    /// `pool` radio (LTE 1.4 MHz at 1.92 Msps, 30.72 MHz master clock). An `rf` with
    /// `master_clock_hz` 100e6 is an N210: the head runs it at 100 MHz / decimation behind
    /// the rational resampler (loopback model and UHD alike).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Link-control endpoint to bind.
    #[arg(long, default_value = "tcp://127.0.0.1:5550")]
    control: String,
    /// Fronthaul UDP address of the radio (overrides the config).
    #[arg(long)]
    fronthaul: Option<SocketAddr>,
    /// UHD device arguments (e.g. addr=192.168.10.2, type=b200).
    #[arg(long, default_value = "")]
    uhd_args: String,
    /// TX is handed to the hardware this far ahead of RX (ms); hosts' TX arriving later
    /// than that counts as late.
    #[arg(long, default_value_t = 2.0)]
    tx_advance_ms: f64,
    /// Loopback: cable plus attenuator gain (dB).
    #[arg(long, default_value_t = -30.0, allow_hyphen_values = true)]
    loopback_gain_db: f64,
    /// Loopback: TX-to-RX delay of the radio's DSP chain (samples).
    #[arg(long, default_value_t = 24)]
    loopback_delay_samples: u64,
    /// Stop after this many seconds and print a JSON run summary.
    #[arg(long)]
    duration: Option<f64>,
    /// Link-control key file (mode 0600): every request must be signed with it.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Run without --key (a private test head on loopback only).
    #[arg(long, conflicts_with = "key")]
    open_control: bool,
    /// This radio head's identity: requests must name it as their recipient.
    #[arg(long, default_value = "radiohead")]
    identity: String,
    /// The only directory `capture` requests write into; without it they are refused.
    #[arg(long)]
    capture_dir: Option<PathBuf>,
}

fn radio_config(args: &RadioHeadArgs) -> anyhow::Result<AirConfig> {
    let mut cfg = AirConfig::default().with_init_ms(0);
    let radio = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str::<RadioConfig>(&text)
                .with_context(|| format!("{} is not one radio's configuration", p.display()))?
        }
        None => cfg
            .radios
            .iter()
            .find(|r| r.name == "pool")
            .cloned()
            .context("the default air has no pool radio")?,
    };
    cfg.sample_rate_hz = radio.rf.rate_hz;
    cfg.tick_samples = (radio.rf.rate_hz / 1000) as usize;
    cfg.radios = vec![radio];
    cfg.links.clear();
    cfg.noise_floor_dbfs = None;
    cfg.control = args.control.clone();
    if args.key.is_none() && !args.open_control {
        anyhow::bail!(
            "give --key FILE: link control must be authenticated (docs/SECURITY.md); \
             --open-control runs a private test head without it"
        );
    }
    cfg.auth = crate::cmd_air::link_auth(args.key.as_ref(), &args.identity)?;
    cfg.capture_dir = args.capture_dir.clone();
    if let Some(f) = args.fronthaul {
        cfg.radios[0].fronthaul = f;
    }
    cfg.validate().context("radio head configuration")?;
    Ok(cfg)
}

fn medium(args: &RadioHeadArgs, cfg: &AirConfig) -> anyhow::Result<Box<dyn Medium>> {
    if !(0.0..=100.0).contains(&args.tx_advance_ms) {
        bail!("--tx-advance-ms must be within 0..=100 ms");
    }
    let rate = cfg.sample_rate_hz;
    let advance = (args.tx_advance_ms * f64::from(rate) / 1000.0).round() as u64;
    match args.medium {
        MediumArg::Loopback => {
            if !args.loopback_gain_db.is_finite() || args.loopback_gain_db > 0.0 {
                bail!("--loopback-gain-db must be a finite attenuation (≤ 0 dB)");
            }
            let rf = &cfg.radios[0].rf;
            if (rf.master_clock_hz - 100e6).abs() < 1.0 {
                // An N210 model: the cable runs at 100 MHz / decimation, the head at the
                // LTE rate through the rational resampler, exactly as `--medium uhd` does.
                let plan = N210Plan::for_lte_rate(rate).map_err(anyhow::Error::msg)?;
                let device_tick = (cfg.tick_samples * plan.down).div_ceil(plan.up);
                let device = Loopback::new(LoopbackConfig {
                    rate_hz: plan.device_rate_hz().round() as u32,
                    gain_db: args.loopback_gain_db,
                    delay_samples: args.loopback_delay_samples,
                    tx_advance: advance * plan.down as u64 / plan.up as u64,
                });
                return Ok(Box::new(ResampledMedium::new(
                    Box::new(device),
                    &plan,
                    device_tick,
                )));
            }
            Ok(Box::new(Loopback::new(LoopbackConfig {
                rate_hz: rate,
                gain_db: args.loopback_gain_db,
                delay_samples: args.loopback_delay_samples,
                tx_advance: advance,
            })))
        }
        MediumArg::Uhd => uhd_medium(args, cfg, advance),
    }
}

#[cfg(feature = "uhd")]
fn uhd_medium(
    args: &RadioHeadArgs,
    cfg: &AirConfig,
    advance: u64,
) -> anyhow::Result<Box<dyn Medium>> {
    // An N210 (100 MHz master clock) gets the rational resampler in front of it.
    let tick = cfg.tick_samples;
    Ok(ferry_radio::uhd::open_lte(
        &args.uhd_args,
        &cfg.radios[0].rf,
        advance,
        tick,
    )?)
}

#[cfg(not(feature = "uhd"))]
fn uhd_medium(
    args: &RadioHeadArgs,
    _cfg: &AirConfig,
    _advance: u64,
) -> anyhow::Result<Box<dyn Medium>> {
    bail!(
        "this ferry was built without UHD, so it cannot open a USRP ({:?}). Build it with \
         `cargo build --release -p ferry --features uhd` after `apt-get install libuhd-dev \
         libclang-dev libboost-system-dev` (scripts/deps installs them as root).",
        args.uhd_args
    )
}

/// Runs `ferry radiohead`.
pub fn run(args: RadioHeadArgs) -> anyhow::Result<()> {
    let cfg = radio_config(&args)?;
    let medium = medium(&args, &cfg)?;
    let name = cfg.radios[0].name.clone();
    let server = AirServer::bind_with_medium(cfg, medium).context("starting the radio head")?;
    eprintln!(
        "ferry radiohead: radio {name} ({:?}), link control on {}, fronthaul on udp {}",
        args.medium,
        server.control_endpoint(),
        server
            .fronthaul_addrs()
            .first()
            .map_or_else(String::new, ToString::to_string)
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Ctrl-C / SIGTERM only set a flag; this watcher hands it to the loop, which notices
    // within one tick and still prints its summary.
    ferry_testbed::session::install_signal_flag();
    let watch = stop.clone();
    std::thread::spawn(move || {
        while !watch.load(Ordering::Relaxed) {
            if ferry_testbed::session::interrupted() {
                watch.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let summary = server.run(&stop, args.duration.map(Duration::from_secs_f64));
    stop.store(true, Ordering::Relaxed);
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
