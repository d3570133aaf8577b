//! `ferry probe send|echo`: the 1 ms UDP sequence probe.

use anyhow::Context;
use clap::{Args, Subcommand};
use ferry_testbed::probe;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `ferry probe`.
#[derive(Args)]
#[command(after_help = "\
Measures service interruption far more finely than `ping -i 0.1`: a numbered datagram every
interval, echoed back by `ferry probe echo` on the serving host. Run an echo responder on every
pool server, and the sender on the far end:

  ferry testbed exec server1 -- ferry probe echo
  ferry testbed exec server2 -- ferry probe echo
  ferry testbed exec server3 -- ferry probe send --to 192.168.40.9:7777 --count 30000

The report gives sent/lost, the longest run of losses, interruption = lost × interval (the
thesis' measure) and the longest gap between two echoed probes.")]
pub struct ProbeArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Send probes and report what came back.
    Send {
        /// Where the echo responder listens.
        #[arg(long, default_value = "192.168.40.9:7777")]
        to: SocketAddr,
        /// Interval between probes in milliseconds (fractions allowed).
        #[arg(long, default_value_t = 1.0)]
        interval_ms: f64,
        /// Number of probes (Ctrl-C stops early and still reports).
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// How long to wait for late echoes after the last send, ms.
        #[arg(long, default_value_t = 500)]
        linger_ms: u64,
        /// Write the report and per-probe samples as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Echo probes back to their sender until killed.
    Echo {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:7777")]
        bind: SocketAddr,
    },
}

/// Runs `ferry probe`.
pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc_flag(s);
    match args.action {
        Action::Send {
            to,
            interval_ms,
            count,
            linger_ms,
            json,
        } => {
            anyhow::ensure!(
                interval_ms.is_finite() && (0.05..=10_000.0).contains(&interval_ms),
                "--interval-ms must be between 0.05 and 10000, got {interval_ms}"
            );
            let interval = Duration::from_secs_f64(interval_ms / 1e3);
            let log =
                probe::run_sender(to, interval, count, Duration::from_millis(linger_ms), &stop)
                    .with_context(|| format!("probing {to}"))?;
            let r = log.report();
            println!(
                "probe {to}: sent {} lost {} (longest run {}), interruption {:.1} ms, longest gap {:.1} ms, rtt median {} ms",
                r.sent,
                r.lost,
                r.longest_loss_run,
                r.interruption_ms,
                r.longest_gap_ms,
                r.rtt_median_ms.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
            );
            if let Some(path) = json {
                let doc = serde_json::json!({ "report": r, "samples": log.samples() });
                std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Action::Echo { bind } => {
            let n = probe::run_echo(bind, &stop).with_context(|| format!("echo on {bind}"))?;
            eprintln!("echoed {n} probes");
        }
    }
    Ok(())
}

/// Sets `flag` on SIGINT/SIGTERM so loops end cleanly and still report.
pub fn ctrlc_flag(flag: Arc<AtomicBool>) {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let _ = FLAG.set(flag);
    extern "C" fn on_signal(_: libc::c_int) {
        if let Some(f) = FLAG.get() {
            f.store(true, Ordering::Relaxed);
        }
    }
    // SAFETY: the handler only does an atomic store, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}
