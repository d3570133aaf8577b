//! `ferry bench migrate`: repeated migrations back and forth in the namespace testbed with
//! real processes and real traffic; median, p95 and max of interruption and total time, and
//! lost packets, written as a Markdown table with the command line.

use crate::cmd_demo::{parse_methods, preflight, progress_printer};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ferry_testbed::demo::{self, DemoOptions};
use ferry_testbed::report::{MethodReport, RunMeta};
use ferry_testbed::session::{self, Bed};
use ferry_testbed::video::unix_ms;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `ferry bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Repeated migrations server1 ⇄ server2 with ping and the UDP sequence probe (needs root).
    Migrate {
        /// Migrations per method.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// legacy, mbb or both.
        #[arg(long, default_value = "both")]
        method: String,
        /// Markdown output (figures and the command line).
        #[arg(long, default_value = "docs/BENCH-MIGRATE.md")]
        doc: PathBuf,
        /// Namespace prefix of the bench's testbed.
        #[arg(long, default_value = "fbench")]
        prefix: String,
        /// Interval of the UDP probe in ms (0: off); see `ferry demo --help`.
        #[arg(long, default_value_t = 10.0)]
        probe_ms: f64,
        /// Route-discovery beacon period of every modem, ms (default: the modem's own).
        #[arg(long)]
        discovery_period_ms: Option<u64>,
        /// Traffic held between migrations, ms.
        #[arg(long, default_value_t = 1000)]
        hold_ms: u64,
        /// LTE bandwidth of the task's carrier in MHz (1.4, 3, 5, 10, 15, 20): every
        /// modem's --bw and the air's sample rate. Default 1.4 (1.92 Msps).
        #[arg(long)]
        bw: Option<f64>,
        /// Extra `ferry modem` flag for every modem (repeat), e.g. --modem-flag=--type-mode=2.
        #[arg(long = "modem-flag", allow_hyphen_values = true)]
        modem_flags: Vec<String>,
        /// Oscillator error of the emulated radios in ppm (e.g. -100 or 50): their sample
        /// clocks run that much slow or fast against the host (docs/FAULTS.md).
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        clock_ppm: f64,
        /// The fronthaul LAN's MTU (1280–9000): 9000 gives jumbo frames, as USRPs on 10 GbE
        /// are run — fewer, larger sample packets for the air and the modems (what 15 and
        /// 20 MHz need on two cores). Default: 9000 for --bw 10, 15 and 20, 1500 below.
        #[arg(long)]
        fronthaul_mtu: Option<u16>,
    },
}

/// Runs `ferry bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchWhat::Migrate {
        runs,
        method,
        doc,
        prefix,
        hold_ms,
        probe_ms,
        discovery_period_ms,
        bw,
        modem_flags,
        clock_ppm,
        fronthaul_mtu,
    } = args.what;
    if !(clock_ppm.is_finite() && clock_ppm.abs() <= 1000.0) {
        bail!("--clock-ppm must be within ±1000, got {clock_ppm}");
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let methods = parse_methods(&method)?;
    preflight(&[])?;
    session::install_signal_flag();
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let mut opts = DemoOptions::new(ferry, &prefix);
    opts.migrations = runs;
    opts.keep_going = true;
    opts.hold = Duration::from_millis(hold_ms);
    opts.probe_interval = crate::cmd_demo::probe_interval(probe_ms)?;
    let mut progress = progress_printer();
    let mut bed = Bed::up(&opts.ferry, &prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
    bed.discovery_period_ms = discovery_period_ms;
    bed.bw = bw;
    bed.modem_flags = modem_flags;
    bed.clock_ppm = clock_ppm;
    if let Some(mtu) = crate::cmd_demo::fronthaul_mtu_for(fronthaul_mtu, bw) {
        bed.set_fronthaul_mtu(mtu)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let origin = unix_ms();
    let meta = RunMeta::collect(origin);
    let mut reports = Vec::new();
    let mut radios = String::new();
    for m in methods {
        let run = demo::run_method(&mut bed, m, &opts, origin, &mut progress)
            .map_err(|e| anyhow::anyhow!("{e}; the testbed was torn down"))?;
        radios.push_str(&radio_counters(
            m.title(),
            &run.radio_snapshots,
            &run.radio,
            clock_ppm,
        ));
        reports.push(demo::method_report(run, origin, demo::tail_ms(&opts)).0);
    }
    drop(bed);
    let mut text = render(&reports, &meta);
    text.push_str(&radios);
    print!("{text}");
    if let Some(parent) = doc.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&doc, &text).with_context(|| format!("writing {}", doc.display()))?;
    eprintln!("written to {}", doc.display());
    let plot = doc.with_extension("svg");
    let series: Vec<_> = reports
        .iter()
        .map(|r| {
            let points = r
                .migrations
                .iter()
                .map(|m| (m.total_ms, interruption_ms(m)))
                .collect();
            (r.method, points)
        })
        .collect();
    let svg = ferry_testbed::plot::bench_svg(&series).context("drawing the benchmark plot")?;
    std::fs::write(&plot, svg).with_context(|| format!("writing {}", plot.display()))?;
    eprintln!("plot: {}", plot.display());
    Ok(())
}

/// One radio's TX counters: late packets, late samples, underflow events.
type TxCounters = (u64, u64, u64);

/// Per radio name, its TX counters in an air `status` reply (empty if the air did not answer).
fn tx_counters(status: &serde_json::Value) -> Vec<(String, TxCounters)> {
    status["radios"]
        .as_array()
        .map(|radios| {
            radios
                .iter()
                .map(|r| {
                    let c = &r["counters"];
                    let n = |k: &str| c[k].as_u64().unwrap_or(0);
                    (
                        r["info"]["radio"].as_str().unwrap_or("?").to_string(),
                        (n("late_packets"), n("late_samples"), n("underflow_events")),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `to − from` per radio (a radio missing from `from` counts from zero).
fn tx_delta(
    from: &[(String, TxCounters)],
    to: &[(String, TxCounters)],
) -> Vec<(String, TxCounters)> {
    to.iter()
        .map(|(name, (l, s, u))| {
            let (l0, s0, u0) = from
                .iter()
                .find(|(n, _)| n == name)
                .map_or((0, 0, 0), |(_, c)| *c);
            (
                name.clone(),
                (
                    l.saturating_sub(l0),
                    s.saturating_sub(s0),
                    u.saturating_sub(u0),
                ),
            )
        })
        .collect()
}

fn tx_line(c: &[(String, TxCounters)]) -> String {
    c.iter()
        .map(|(name, (l, s, u))| {
            format!("{name}: {l} late TX packets ({s} samples), {u} underflows")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The radios' late and missing TX: over start-up (air start to the first ping through the
/// task, the far end's cell search included), over the measured run (traffic on: every
/// hold and migration), and the windows of the run in which any counter moved.
fn radio_counters(
    method: &str,
    snapshots: &[serde_json::Value],
    end: &serde_json::Value,
    clock_ppm: f64,
) -> String {
    let mut s = format!("\n{method}: the radios' TX (oscillators at {clock_ppm} ppm):\n\n");
    let end = tx_counters(end);
    let Some(start) = snapshots.first().map(tx_counters) else {
        s.push_str("- no status from the air.\n");
        return s;
    };
    if end.is_empty() || start.is_empty() {
        s.push_str("- no status from the air at the start or the end of the run.\n");
        return s;
    }
    let _ = writeln!(
        s,
        "- start-up, until the traffic started: {}",
        tx_line(&start)
    );
    let run_delta = tx_delta(&start, &end);
    let _ = writeln!(s, "- the run (traffic on): {}", tx_line(&run_delta));
    let mut points: Vec<Vec<(String, TxCounters)>> = snapshots.iter().map(tx_counters).collect();
    points.push(end);
    let mut moved = Vec::new();
    for (k, w) in points.windows(2).enumerate() {
        if w[0].is_empty() || w[1].is_empty() {
            continue;
        }
        let d: Vec<_> = tx_delta(&w[0], &w[1])
            .into_iter()
            .filter(|(_, (l, _, u))| l + u > 0)
            .collect();
        if !d.is_empty() {
            let label = if k == 0 {
                "the hold before the first migration".to_string()
            } else {
                format!("migration {k} and its hold")
            };
            moved.push(format!("{label} ({})", tx_line(&d)));
        }
    }
    let _ = writeln!(
        s,
        "- windows of the run with late TX or underflows: {}",
        if moved.is_empty() {
            "none".to_string()
        } else {
            moved.join("; ")
        }
    );
    s
}

/// The bench's interruption of one migration: lost pings × 100 ms, or the probe's longest
/// gap when probes were lost, whichever is longer.
fn interruption_ms(m: &ferry_testbed::report::MigrationReport) -> f64 {
    let probe = match (m.probe_lost, m.probe_longest_gap_ms) {
        (Some(l), Some(g)) if l > 0 => g,
        _ => 0.0,
    };
    m.interruption_ms.unwrap_or(0.0).max(probe)
}

fn cell(v: Option<(f64, f64, f64)>) -> String {
    v.map_or_else(
        || "— | — | —".into(),
        |(a, b, c)| format!("{a:.0} | {b:.0} | {c:.0}"),
    )
}

/// The Markdown report of a bench.
pub fn render(reports: &[MethodReport], meta: &RunMeta) -> String {
    let mut s = String::from("# Migration benchmark (`ferry bench migrate`)\n\n");
    let _ = writeln!(
        s,
        "Command: `{}`  \nDate (UTC): {}; host {}; commit {}.\n",
        meta.command_line.join(" "),
        meta.date_utc,
        meta.host,
        meta.git_commit.as_deref().unwrap_or("unknown")
    );
    s.push_str(
        "Namespace testbed, every piece a real process (ferry air, far-end modem on server3, \
         ferry agent on the pool servers); migrations alternate server1 → server2 and back while \
         server3 runs `ping -i 0.1` and the UDP probe (`--probe-ms`) to the task. Per migration: total = \
         the migration's timeline; interruption = max(lost pings × 100 ms, the probe's longest \
         gap when probes were lost) from the migration's start until 100 ms before the next one (`--hold-ms` − 100, at least 500 ms). A make-before-break \
         migration that fails safely (ctl undoes it and the radio still serves from the source) \
         counts as not ok and the run goes on from the same server; totals are over the ok ones, \
         losses over all. Nearest-rank percentiles.\n\n",
    );
    s.push_str(
        "| method | migrations (ok) | total ms median | p95 | max | interruption ms median | p95 | max | lost pings (sum, max) | lost probes (sum, max) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let ok = r.migrations.iter().filter(|m| m.ok).count();
        // Totals of the migrations that moved the task; losses of all of them.
        let totals: Vec<f64> = r
            .migrations
            .iter()
            .filter(|m| m.ok)
            .map(|m| m.total_ms)
            .collect();
        let intr: Vec<f64> = r.migrations.iter().map(interruption_ms).collect();
        let pings: Vec<u64> = r.migrations.iter().filter_map(|m| m.ping_lost).collect();
        let probes: Vec<u64> = r.migrations.iter().filter_map(|m| m.probe_lost).collect();
        let _ = writeln!(
            s,
            "| {} | {} ({ok}) | {} | {} | {}, {} | {}, {} |",
            r.method.title(),
            r.migrations.len(),
            cell(demo::stats(&totals)),
            cell(demo::stats(&intr)),
            pings.iter().sum::<u64>(),
            pings.iter().max().copied().unwrap_or(0),
            probes.iter().sum::<u64>(),
            probes.iter().max().copied().unwrap_or(0),
        );
    }
    s.push_str("\nPer migration (ms):\n\n| method | # | route | total | lost pings | lost probes | longest probe gap |\n|---|---|---|---|---|---|---|\n");
    for r in reports {
        for (i, m) in r.migrations.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {:.0} | {} | {} | {} |",
                r.method.title(),
                i + 1,
                m.route,
                if m.ok { "" } else { " (failed, undone)" },
                m.total_ms,
                m.ping_lost.map_or("—".into(), |v| v.to_string()),
                m.probe_lost.map_or("—".into(), |v| v.to_string()),
                m.probe_longest_gap_ms
                    .map_or("—".into(), |v| format!("{v:.1}")),
            );
        }
    }
    s.push_str(&phases_table(reports));
    s.push_str("\nThesis (table 3-4, one legacy migration on USRP N210s): 1969 ms total, 19 lost pings, 1855 ms interruption.\n");
    s
}

/// The phase after which a make-before-break migration has moved the task: the destination
/// confirmed serving (what follows is the source's fallback grace and cleanup).
const MOVED_AFTER: &str = "destination confirms serving";

/// Per method, each phase (in the order the migrations ran them) with its start and
/// duration over the migrations (median and max), and for make-before-break when the task
/// was moved (the end of [`MOVED_AFTER`]).
fn phases_table(reports: &[MethodReport]) -> String {
    let mut s = String::from(
        "\nPer phase (ms since the migration's start; median and max over the migrations that ran it):\n\n\
         | method | phase | migrations | start median | duration median | duration max |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in reports {
        let mut names: Vec<&str> = Vec::new();
        for m in &r.migrations {
            for p in &m.phases {
                if !names.contains(&p.name.as_str()) {
                    names.push(&p.name);
                }
            }
        }
        for name in names {
            let (starts, durs): (Vec<f64>, Vec<f64>) = r
                .migrations
                .iter()
                .flat_map(|m| m.phases.iter().filter(|p| p.name == name))
                .map(|p| (p.start_ms, p.duration_ms))
                .unzip();
            let (Some(st), Some(du)) = (demo::stats(&starts), demo::stats(&durs)) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {name} | {} | {:.0} | {:.0} | {:.0} |",
                r.method.title(),
                durs.len(),
                st.0,
                du.0,
                du.2
            );
        }
        let moved: Vec<f64> = r
            .migrations
            .iter()
            .filter_map(|m| m.phases.iter().find(|p| p.name == MOVED_AFTER))
            .map(|p| p.start_ms + p.duration_ms)
            .collect();
        let margins: Vec<f64> = r
            .migrations
            .iter()
            .filter_map(|m| m.margin_ms)
            .map(|v| v as f64)
            .collect();
        if let Some((med, _, max)) = demo::stats(&margins) {
            let min = margins.iter().copied().fold(f64::INFINITY, f64::min);
            let _ = writeln!(
                s,
                "\n{}: margin before T (from the measured round trips) median {med:.0} ms, min {min:.0}, max {max:.0}.",
                r.method.title()
            );
        }
        if let Some((med, p95, max)) = demo::stats(&moved) {
            let _ = writeln!(
                s,
                "\n{}: the task moved (destination confirmed serving) {med:.0} ms after the start, median (p95 {p95:.0}, max {max:.0}); the rest of the total is the source's fallback grace and its cleanup, which no longer hold the service.\n",
                r.method.title()
            );
        }
        let on_timeline: Vec<f64> = r
            .migrations
            .iter()
            .filter_map(|m| m.probe_gap_timeline_ms)
            .collect();
        if let (Some((med, _, max)), Some(away)) = (demo::stats(&on_timeline), r.probe_gap_away_ms)
        {
            let within = on_timeline.iter().filter(|&&g| g <= away + 1.0).count();
            let _ = writeln!(
                s,
                "{}: longest probe gap touching a migration's timeline (start to end, no tail) median {med:.1} ms, max {max:.1}; away from every migration {away:.1} ms; {within} of {} migrations within 1 ms of that.\n",
                r.method.title(),
                on_timeline.len()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_migrate::timeline::Timeline;
    use ferry_testbed::report::{Method, MigrationReport};

    fn air(pool: (u64, u64), far: (u64, u64)) -> serde_json::Value {
        let r = |name: &str, (late, under): (u64, u64)| {
            serde_json::json!({"info": {"radio": name},
                "counters": {"late_packets": late, "late_samples": late * 363, "underflow_events": under}})
        };
        serde_json::json!({"radios": [r("pool", pool), r("far", far)]})
    }

    #[test]
    fn radio_windows_name_where_late_tx_happened() {
        let snaps = [
            air((2, 10), (0, 5)),
            air((2, 10), (0, 5)),
            air((2, 10), (0, 5)),
        ];
        let end = air((5, 10), (1, 5));
        let s = radio_counters("mbb", &snaps, &end, 50.0);
        assert!(s.contains("start-up, until the traffic started: pool: 2 late TX packets (726 samples), 10 underflows"), "{s}");
        assert!(s.contains("the run (traffic on): pool: 3 late TX packets (1089 samples), 0 underflows; far: 1 late TX packets"), "{s}");
        assert!(
            s.contains("with late TX or underflows: migration 2 and its hold (pool: 3 late"),
            "{s}"
        );
        assert!(!s.contains("migration 1 and"), "{s}");
        let quiet = radio_counters("mbb", &snaps, &snaps[2], 50.0);
        assert!(quiet.contains("underflows: none"), "{quiet}");
        assert!(radio_counters("mbb", &snaps, &serde_json::Value::Null, 0.0)
            .contains("no status from the air"));
    }

    fn mig(total: u64, ping_lost: u64, probe_lost: u64, gap: f64) -> MigrationReport {
        let mut t = Timeline::new("M", 0);
        t.begin(0, "link", true);
        t.finish(total, true);
        let mut m = MigrationReport::from_timeline(&t, "server1 → server2", 0.0);
        m.ping_lost = Some(ping_lost);
        m.interruption_ms = Some(ping_lost as f64 * 100.0);
        m.probe_lost = Some(probe_lost);
        m.probe_longest_gap_ms = Some(gap);
        m
    }

    #[test]
    fn a_safely_failed_migration_counts_as_not_ok_and_not_in_the_totals() {
        let mut failed = mig(30, 0, 0, 3.0);
        failed.ok = false;
        let r = MethodReport::new(
            Method::Mbb,
            vec![mig(100, 0, 0, 4.0), failed, mig(120, 0, 1, 9.0)],
            None,
            None,
            None,
        );
        let md = render(&[r], &RunMeta::collect(0.0));
        let summary = md
            .lines()
            .find(|l| l.starts_with("| make-before-break") && l.contains("| 3 (2) |"))
            .unwrap_or_else(|| panic!("{md}"));
        // Totals of the two that moved the task (100, 120), not the 30 ms abort.
        assert!(summary.contains("| 3 (2) | 100 | 120 | 120 |"), "{summary}");
        assert!(summary.contains("| 0, 0 | 1, 1 |"), "{summary}");
        assert_eq!(md.matches("(failed, undone)").count(), 1, "{md}");
    }

    #[test]
    fn markdown_has_one_row_per_method_and_migration_with_matching_columns() {
        let r = MethodReport::new(
            Method::Legacy,
            vec![
                mig(90, 9, 85, 860.0),
                mig(100, 0, 2, 30.0),
                mig(80, 1, 0, 10.0),
            ],
            None,
            None,
            None,
        );
        let meta = RunMeta::collect(0.0);
        let md = render(&[r], &meta);
        let summary: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| legacy") && l.contains("(3)"))
            .collect();
        assert_eq!(summary.len(), 1, "{md}");
        let header = md
            .lines()
            .find(|l| l.starts_with("| method | migrations"))
            .expect("header");
        assert_eq!(summary[0].matches('|').count(), header.matches('|').count());
        // Totals 80/90/100: median 90, p95 = max = 100. Interruption per migration =
        // max(lost pings × 100, probe gap when probes were lost) = 900, 30, 100.
        assert!(
            summary[0].contains("| 90 | 100 | 100 | 100 | 900 | 900 |"),
            "{}",
            summary[0]
        );
        assert!(summary[0].contains("| 10, 9 | 87, 85 |"), "{}", summary[0]);
        let per: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| legacy") && l.contains("server1 → server2"))
            .collect();
        assert_eq!(per.len(), 3);
        // One phase ("link") in every migration: durations 80/90/100.
        assert!(
            md.contains("| legacy (thesis method) | link | 3 | 0 | 90 | 100 |"),
            "{md}"
        );
    }

    #[test]
    fn the_moved_time_is_the_end_of_the_destinations_confirmation() {
        let migs = [60u64, 70, 90]
            .iter()
            .map(|&c| {
                let mut t = Timeline::new("mbb", 0);
                t.begin(0, "cutover at T", true);
                t.begin(c, MOVED_AFTER, true);
                t.begin(c + 10, "stop and clean source", true);
                t.finish(c + 400, true);
                MigrationReport::from_timeline(&t, "server1 → server2", 0.0)
            })
            .collect();
        let r = MethodReport::new(Method::Mbb, migs, None, None, None);
        let md = render(&[r], &RunMeta::collect(0.0));
        assert!(
            md.contains("the task moved (destination confirmed serving) 80 ms after the start, median (p95 100, max 100)"),
            "{md}"
        );
    }
}
