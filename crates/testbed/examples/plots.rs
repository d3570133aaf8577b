//! Writes the report plots of a synthetic run (a legacy and an mbb migration, 1 ms probe,
//! 100 ms ping and 25 fps video) into a directory, to look at them without a testbed:
//! `cargo run -p ferry-testbed --example plots -- /tmp/plots`.

use ferry_migrate::mbb::MBB_PHASES;
use ferry_migrate::timeline::{self as tl, Timeline};
use ferry_testbed::ping::PingSample;
use ferry_testbed::probe::Sample;
use ferry_testbed::report::{
    write_outputs, DemoReport, Experiment, Method, MethodReport, MigrationReport, RunMeta, Series,
    DEFAULT_TAIL_MS,
};

fn timeline(label: &str, t0: u64, rows: &[(&str, u64, bool)]) -> Timeline {
    let mut t = Timeline::new(label, t0);
    let mut now = t0;
    for &(n, ms, i) in rows {
        t.begin(now, n, i);
        now += ms;
    }
    t.finish(now, true);
    t
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/ferry-plots".into());
    let legacy = timeline(
        "M",
        5_000,
        &[
            (tl::PHASE_TUN_IP, 6, false),
            (tl::PHASE_START_D2D, 53, false),
            (tl::PHASE_MAKE_USRP, 55, false),
            (tl::PHASE_ETH3, 6, true),
            (tl::PHASE_LINK, 1743, true),
            (tl::PHASE_RESYNC, 106, true),
        ],
    );
    let rows: Vec<(&str, u64, bool)> = MBB_PHASES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                *n,
                [2, 1, 1, 30, 1, 60, 1, 2, 1, 2, 20, 5, 10, 15][i % 14],
                false,
            )
        })
        .collect();
    let mbb = timeline("mbb out", 13_000, &rows);
    let lost = |t: f64| (5_120.0..6_900.0).contains(&t);
    let probe: Vec<Sample> = (0..18_000u64)
        .map(|i| {
            let t = i as f64;
            Sample {
                seq: i,
                sent_ms: t,
                rtt_ms: (!lost(t)).then(|| {
                    2.0 + (i % 37) as f64 * 0.05
                        + if (13_040.0..13_060.0).contains(&t) {
                            8.0
                        } else {
                            0.0
                        }
                }),
            }
        })
        .collect();
    let ping: Vec<PingSample> = (0..180u64)
        .map(|i| {
            let t = i as f64 * 100.0;
            PingSample {
                seq: i,
                t_ms: t,
                rtt_ms: (!lost(t)).then_some(2.5 + (i % 7) as f64 * 0.1),
            }
        })
        .collect();
    let frames: Vec<f64> = (0..450)
        .map(|i| 40.0 * f64::from(i))
        .filter(|t| !lost(*t))
        .collect();
    let series = Series {
        probe,
        ping,
        video_frames_ms: frames,
        ..Series::default()
    };
    let mut ml = vec![MigrationReport::from_timeline(
        &legacy,
        "server1 → server2",
        5_000.0,
    )];
    let mut mm = vec![MigrationReport::from_timeline(
        &mbb,
        "server2 → server1",
        13_000.0,
    )];
    series.charge(&mut ml, 100.0, DEFAULT_TAIL_MS);
    series.charge(&mut mm, 100.0, DEFAULT_TAIL_MS);
    let report = DemoReport::new(
        Experiment::Ping,
        RunMeta::collect(0.0),
        vec![
            MethodReport::new(Method::Legacy, ml, None, None, None),
            MethodReport::new(Method::Mbb, mm, None, None, None),
        ],
    );
    let w = write_outputs(&report, &series, std::path::Path::new(&dir), None).expect("write");
    for f in w.files {
        println!("{}", f.display());
    }
    // A benchmark's plot: 10 migrations per method.
    let bench: Vec<_> = [(Method::Legacy, 1900.0, 1800.0), (Method::Mbb, 150.0, 0.0)]
        .into_iter()
        .map(|(m, total, gap)| {
            let v = (0..10)
                .map(|i| {
                    (
                        total + f64::from(i % 3) * 20.0,
                        gap + f64::from(i % 2) * 30.0,
                    )
                })
                .collect();
            (m, v)
        })
        .collect();
    let path = std::path::Path::new(&dir).join("bench.svg");
    let svg = ferry_testbed::plot::bench_svg(&bench).expect("bench plot");
    std::fs::write(&path, svg).expect("write bench.svg");
    println!("{}", path.display());
}
