//! The thesis' chapter-3 experiment with real processes: a D2D task on server1, `ping -i
//! 0.1` and the 1 ms probe from server3, migrations back and forth with the legacy method
//! (the thesis console's M / MB) and with make-before-break, measured into a
//! [`DemoReport`]; also the repeated migrations of `ferry bench migrate`.

use crate::live::{method_name, LiveEvent, LiveSink, SecondsWatcher};
use crate::report::{
    DemoReport, Experiment, Method, MethodReport, MigrationReport, RunMeta, Series, DEFAULT_TAIL_MS,
};
use crate::session::{self, Bed, SessionError, Traffic, TrafficResult};
use crate::video::unix_ms;
use std::path::PathBuf;
use std::time::Duration;

/// Ping interval of the experiment (the thesis' `ping -i 0.1`).
pub const PING_INTERVAL_MS: f64 = 100.0;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `ferry` binary to start in the namespaces.
    pub ferry: PathBuf,
    /// Namespace prefix of the testbed.
    pub prefix: String,
    /// Traffic held before, between and after migrations.
    pub hold: Duration,
    /// Methods, in order.
    pub methods: Vec<Method>,
    /// Migrations per method (alternating server1 → server2, server2 → server1).
    pub migrations: usize,
    /// Interval of the UDP probe (`None`: no probe, ping only).
    pub probe_interval: Option<Duration>,
    /// Route-discovery beacon period of every modem, ms (`None`: the modem's default).
    pub discovery_period_ms: Option<u64>,
    /// How long to wait for the first ping after the task starts (cold cell search).
    pub first_ping_timeout: Duration,
    /// LTE bandwidth of the task's carrier, MHz (`None`: 1.4); see [`Bed::bw`].
    pub bw: Option<f64>,
    /// The air's radio model with `bw` (`ferry air --radio-model`; `None`: auto).
    pub radio_model: Option<String>,
    /// The fronthaul LAN's MTU (`None`: 1500; 9000 = jumbo frames, [`Bed::set_fronthaul_mtu`]).
    pub fronthaul_mtu: Option<u16>,
    /// Where live events go (the web view of `ferry demo --web`), if anywhere.
    pub live: Option<LiveSink>,
    /// Run a [`session::Stranger`] (every link-control request, without the key) while the
    /// traffic runs; the run fails unless every request was refused.
    pub stranger: bool,
    /// Every modem runs HARQ (`ferry modem --harq on`, Control `HARQ` 1).
    pub harq: bool,
    /// The pool and far radios have two channels and every modem two antennas (2×2: SFBC
    /// + MRC, `ferry modem --antennas-tx 2 --antennas-rx 2`).
    pub two_antennas: bool,
    /// A make-before-break migration that fails safely (ctl says so and the radio still
    /// serves from the source) is recorded as failed and the run goes on from the same
    /// server, instead of ending the run (`ferry bench migrate`: the worst cases count).
    pub keep_going: bool,
}

impl DemoOptions {
    /// The demo's defaults: both methods, one round trip each, 2 s of traffic around.
    pub fn new(ferry: PathBuf, prefix: &str) -> DemoOptions {
        DemoOptions {
            ferry,
            prefix: prefix.to_string(),
            hold: Duration::from_secs(2),
            methods: vec![Method::Legacy, Method::Mbb],
            migrations: 2,
            probe_interval: Some(Duration::from_millis(1)),
            discovery_period_ms: None,
            first_ping_timeout: Duration::from_secs(60),
            bw: None,
            radio_model: None,
            fronthaul_mtu: None,
            live: None,
            stranger: false,
            harq: false,
            two_antennas: false,
            keep_going: false,
        }
    }

    fn emit(&self, event: LiveEvent) {
        crate::live::emit(self.live.as_ref(), event);
    }
}

/// One method's session: its migrations (start on the report's axis) and its traffic.
pub struct MethodRun {
    /// Which method.
    pub method: Method,
    /// Migrations, uncharged.
    pub migrations: Vec<MigrationReport>,
    /// Ping and probe.
    pub traffic: TrafficResult,
    /// The air's link-control `status` at the end of the run, before it stopped (counters
    /// over the whole run; null if the air did not answer).
    pub radio: serde_json::Value,
    /// The air's `status` of every radio once the traffic started (index 0) and just before
    /// each migration (index k for migration k, from 1): with `radio` at the end, the
    /// counters' windows — start-up, the first hold, and each migration with its hold.
    pub radio_snapshots: Vec<serde_json::Value>,
}

fn route(from: u8, to: u8) -> String {
    format!("server{from} → server{to}")
}

/// Runs one method's session on `bed` (processes of an earlier session must be stopped):
/// starts the air, far end, agents and the task, the traffic, then `opts.migrations`
/// migrations, and stops every process again. Times are ms since `origin_unix_ms`.
pub fn run_method(
    bed: &mut Bed,
    method: Method,
    opts: &DemoOptions,
    origin_unix_ms: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<MethodRun, SessionError> {
    let legacy = method == Method::Legacy;
    opts.emit(LiveEvent::Method {
        method: method_name(method).into(),
    });
    progress(&format!(
        "{}: starting ferry air, the far-end modem and the agents",
        method.title()
    ));
    bed.start_air(legacy)?;
    if let Some(note) = &bed.air_note {
        progress(&format!("ferry air: {note}"));
    }
    bed.start_far()?;
    bed.start_agent(legacy, 2)?;
    if !legacy {
        bed.start_agent(false, 1)?;
    }
    session::sleep(Duration::from_millis(700))?;
    bed.check_alive()?;
    let mut console = None;
    if legacy {
        progress("legacy: DS on server1 (thesis console: set TUN IP, start the D2D task)");
        let mut c = bed.start_console()?;
        let (ok, _) = c.run("DS", Duration::from_secs(30))?;
        if !ok {
            return Err(SessionError::Failed(format!(
                "DS failed:\n{}",
                c.transcript
            )));
        }
        console = Some(c);
    } else {
        progress("make-before-break: set_tun_ip and start_d2d on server1's agent");
        bed.send(1, "set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#)?;
        bed.send(1, "start_d2d", r#"{"control_flag":0}"#)?;
    }
    progress("waiting for the far end's cell search and the first ping through the task");
    let took = bed.wait_first_ping(opts.first_ping_timeout)?;
    progress(&format!(
        "first ping after {:.1} s; starting ping -i 0.1 and the UDP probe ({}) from server3",
        took.as_secs_f64(),
        opts.probe_interval.map_or_else(
            || "off".to_string(),
            |d| format!("every {:.1} ms", d.as_secs_f64() * 1e3)
        )
    ));
    let live = opts.live.clone().map(|s| (s, origin_unix_ms));
    let traffic = Traffic::start_live(bed, opts.probe_interval, live)?;
    let mut radio_snapshots = vec![bed.radios_status()];
    opts.emit(LiveEvent::Serving {
        server: "server1".into(),
    });
    // Without the probe, ping feeds the live seconds.
    let _seconds = opts
        .live
        .clone()
        .filter(|_| opts.probe_interval.is_none())
        .and_then(|sink| {
            traffic
                .ping_watch()
                .map(|w| SecondsWatcher::start(w, sink, origin_unix_ms))
        });
    let stranger = opts.stranger.then(|| {
        progress("a stranger without the key sends every link-control request during the run");
        session::Stranger::start(bed)
    });
    session::sleep(opts.hold)?;
    let mut migrations = Vec::new();
    // Where the task serves (make-before-break: a safely failed migration leaves it).
    let mut at = 1u8;
    for i in 0..opts.migrations {
        let (from, to) = if legacy {
            if i % 2 == 0 {
                (1, 2)
            } else {
                (2, 1)
            }
        } else {
            (at, 3 - at)
        };
        bed.check_alive()?;
        radio_snapshots.push(bed.radios_status());
        opts.emit(LiveEvent::MigrationStarted {
            label: if legacy {
                if i % 2 == 0 { "M" } else { "MB" }.to_string()
            } else {
                format!("mbb {}", i + 1)
            },
            method: method_name(method).into(),
            from: format!("server{from}"),
            to: format!("server{to}"),
            t_ms: unix_ms() - origin_unix_ms,
        });
        let (timeline, start) = if let Some(c) = console.as_mut() {
            let line = if i % 2 == 0 { "M" } else { "MB" };
            progress(&format!("legacy: {line} (server{from} → server{to})"));
            let start = unix_ms();
            let (ok, tl) = c.run(line, Duration::from_secs(60))?;
            match tl {
                Some(t) if ok => (t, start),
                _ => {
                    return Err(SessionError::Failed(format!(
                        "{line} failed:\n{}",
                        c.transcript
                    )))
                }
            }
        } else {
            progress(&format!("make-before-break: server{from} → server{to}"));
            let (t, start, outcome) = bed.migrate_mbb_outcome(from, to)?;
            match outcome {
                Ok(()) => at = to,
                // Safe: ctl undid it and the radio (the arbiter) still serves from the source.
                Err(text) if opts.keep_going && bed.primary_server() == Some(from) => {
                    let why = text
                        .lines()
                        .find(|l| l.contains("aborted") || l.contains("FAILED"))
                        .unwrap_or("failed")
                        .trim()
                        .to_string();
                    progress(&format!(
                        "  migration {} failed safely, server{from} still serves: {why}",
                        i + 1
                    ));
                }
                Err(text) => {
                    return Err(SessionError::Failed(format!(
                        "make-before-break server{from} → server{to} failed:\n{text}"
                    )))
                }
            }
            (t, start)
        };
        let m = MigrationReport::from_timeline(&timeline, &route(from, to), start - origin_unix_ms);
        let lost = traffic.ping_snapshot().map_or(0, |p| p.lost);
        progress(&format!(
            "  done in {:.0} ms (pings lost so far in this run: {lost})",
            m.total_ms
        ));
        opts.emit(LiveEvent::migration_ended(&m, method));
        opts.emit(LiveEvent::Serving {
            server: format!("server{to}"),
        });
        migrations.push(m);
        session::sleep(opts.hold)?;
    }
    if let Some(s) = stranger {
        let (sent, refused) = s.stop();
        progress(&format!(
            "stranger: {sent} link-control requests sent, {refused} refused"
        ));
        if refused != sent {
            return Err(SessionError::Failed(format!(
                "the air took {} of a stranger's {sent} link-control requests",
                sent - refused
            )));
        }
    }
    let traffic = traffic.stop()?;
    if let Some(mut c) = console {
        c.close();
    }
    let radio = bed.radios_status();
    bed.stop_all();
    Ok(MethodRun {
        method,
        migrations,
        traffic,
        radio,
        radio_snapshots,
    })
}

/// The series of one run on the origin's axis.
pub fn series_of(run: &MethodRun, origin_unix_ms: f64) -> Series {
    Series {
        probe: Series::shift_probe(
            &run.traffic.probe.samples(),
            run.traffic.probe_started_unix_ms - origin_unix_ms,
        ),
        ping: Series::ping_on_axis(&run.traffic.ping, origin_unix_ms),
        ..Series::default()
    }
}

/// How long after a migration's timeline ends its losses are still charged to it: the
/// whole quiet time before the next step (a resync or a data-path gap can outlast the
/// control-plane timeline by far; cutting the window short would hide losses), at least
/// [`DEFAULT_TAIL_MS`].
pub fn tail_ms(opts: &DemoOptions) -> f64 {
    (opts.hold.as_secs_f64() * 1000.0 - 100.0).max(DEFAULT_TAIL_MS)
}

/// Charges a run's losses to its migrations (up to `tail_ms` after each) and makes its
/// method report.
pub fn method_report(
    mut run: MethodRun,
    origin_unix_ms: f64,
    tail_ms: f64,
) -> (MethodReport, Series) {
    let series = series_of(&run, origin_unix_ms);
    series.charge(&mut run.migrations, PING_INTERVAL_MS, tail_ms);
    let probe = run.traffic.probe.report();
    let mut rep = MethodReport::new(
        run.method,
        run.migrations,
        (probe.sent > 0).then_some(&probe),
        Some(&run.traffic.ping),
        None,
    );
    rep.set_probe_gap_away(&series.probe);
    (rep, series)
}

/// The whole demo: testbed up, every method in turn, testbed down. Progress lines go to
/// `progress`.
pub fn run_demo(
    opts: &DemoOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(DemoReport, Series), SessionError> {
    let bed = TestbedSpec {
        ferry: &opts.ferry,
        prefix: &opts.prefix,
        discovery_period_ms: opts.discovery_period_ms,
        bw: opts.bw,
        radio_model: opts.radio_model.clone(),
        live: opts.live.clone(),
        modem_flags: {
            let mut f: Vec<String> = Vec::new();
            if opts.harq {
                f.push("--harq=on".into());
            }
            if opts.two_antennas {
                f.extend(["--antennas-tx=2".into(), "--antennas-rx=2".into()]);
            }
            f
        },
        two_channel_radios: opts.two_antennas,
        fronthaul_mtu: opts.fronthaul_mtu,
    };
    run_experiment(
        &bed,
        &opts.methods,
        Experiment::Ping,
        progress,
        |bed, m, origin, progress| {
            let run = run_method(bed, m, opts, origin, progress)?;
            Ok(method_report(run, origin, tail_ms(opts)))
        },
        |all, s| {
            all.probe.extend(s.probe);
            all.ping.extend(s.ping);
        },
    )
}

/// The testbed an experiment brings up.
pub(crate) struct TestbedSpec<'a> {
    pub ferry: &'a std::path::Path,
    pub prefix: &'a str,
    pub discovery_period_ms: Option<u64>,
    pub bw: Option<f64>,
    pub radio_model: Option<String>,
    pub live: Option<LiveSink>,
    pub modem_flags: Vec<String>,
    pub two_channel_radios: bool,
    /// Jumbo frames on the fronthaul LAN ([`Bed::set_fronthaul_mtu`]).
    pub fronthaul_mtu: Option<u16>,
}

/// What every experiment does around its methods: testbed up, `one` per method (its report
/// and series, the series folded into the run's by `merge`), testbed down.
pub(crate) fn run_experiment(
    spec: &TestbedSpec<'_>,
    methods: &[Method],
    experiment: Experiment,
    progress: &mut dyn FnMut(&str),
    mut one: impl FnMut(
        &mut Bed,
        Method,
        f64,
        &mut dyn FnMut(&str),
    ) -> Result<(MethodReport, Series), SessionError>,
    mut merge: impl FnMut(&mut Series, Series),
) -> Result<(DemoReport, Series), SessionError> {
    progress(&format!(
        "bringing up the testbed (namespaces {}-*)",
        spec.prefix
    ));
    let mut bed = Bed::up(spec.ferry, spec.prefix)?;
    bed.discovery_period_ms = spec.discovery_period_ms;
    bed.bw = spec.bw;
    bed.radio_model = spec.radio_model.clone();
    bed.modem_flags = spec.modem_flags.clone();
    bed.two_channel_radios = spec.two_channel_radios;
    if let Some(mtu) = spec.fronthaul_mtu {
        bed.set_fronthaul_mtu(mtu)?;
        progress(&format!(
            "fronthaul LAN MTU {mtu}: the air and every modem size their sample packets to it"
        ));
    }
    let origin = unix_ms();
    if let Some(sink) = &spec.live {
        sink.emit(LiveEvent::Testbed {
            experiment: experiment_name(experiment).into(),
            origin_unix_ms: origin,
            mgmt_netns: bed.ns("server3"),
            radio_control: session::RADIO_CTL.into(),
            agents: (1..=2)
                .map(|n| (format!("server{n}"), format!("tcp://10.99.0.{n}:5555")))
                .collect(),
            key_file: Some(bed.key()),
        });
    }
    let meta = RunMeta::collect(origin);
    let mut reports = Vec::new();
    let mut all = Series::default();
    for &m in methods {
        let (rep, s) = one(&mut bed, m, origin, progress)?;
        merge(&mut all, s);
        reports.push(rep);
    }
    progress("tearing down the testbed");
    if let Some(sink) = &spec.live {
        sink.emit(LiveEvent::Finished);
    }
    drop(bed);
    Ok((DemoReport::new(experiment, meta, reports), all))
}

fn experiment_name(e: Experiment) -> &'static str {
    match e {
        Experiment::Ping => "ping",
        Experiment::Relay => "relay",
    }
}

/// Median, 95th percentile and maximum (nearest rank) of `v`; `None` when empty.
pub fn stats(v: &[f64]) -> Option<(f64, f64, f64)> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let i = ((q * s.len() as f64).ceil() as usize).saturating_sub(1);
        s.get(i.min(s.len() - 1)).copied().unwrap_or(f64::NAN)
    };
    Some((rank(0.5), rank(0.95), s.last().copied().unwrap_or(f64::NAN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_nearest_rank() {
        assert_eq!(stats(&[]), None);
        assert_eq!(stats(&[5.0]), Some((5.0, 5.0, 5.0)));
        let v: Vec<f64> = (1..=20).map(f64::from).rev().collect();
        assert_eq!(stats(&v), Some((10.0, 19.0, 20.0)));
        assert_eq!(stats(&[3.0, f64::NAN, 1.0, 2.0]), Some((2.0, 3.0, 3.0)));
    }
}
