//! The demo report: traffic charged to the right migration, JSON round trip and schema
//! keys, the table-3-4-shaped text, and the files `write_outputs` leaves (SVG well-formed).

use ferry_migrate::mbb::MBB_PHASES;
use ferry_migrate::timeline::{self as tl, Timeline};
use ferry_testbed::ping::PingSample;
use ferry_testbed::probe::Sample;
use ferry_testbed::report::{
    write_outputs, DemoReport, Experiment, Method, MethodReport, MigrationReport, RunMeta, Series,
    DEFAULT_TAIL_MS,
};

/// Timeline from `(name, ms, interrupts)` rows starting at `t0`.
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

/// Table 3-4 exactly, as a legacy M at 5 s into the run.
fn thesis_m() -> Timeline {
    timeline(
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
    )
}

fn mbb(label: &str, t0: u64) -> Timeline {
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
    timeline(label, t0, &rows)
}

/// Pings every 100 ms from 0 to 20 s, lost while `lost(t)`.
fn pings(lost: impl Fn(f64) -> bool) -> Vec<PingSample> {
    (0..200)
        .map(|i| {
            let t = i as f64 * 100.0;
            PingSample {
                seq: i + 1,
                t_ms: t,
                rtt_ms: (!lost(t)).then_some(0.5),
            }
        })
        .collect()
}

/// 1 ms probes from 0 to 20 s, lost while `lost(t)`.
fn probes(lost: impl Fn(f64) -> bool) -> Vec<Sample> {
    (0..20_000)
        .map(|i| {
            let t = i as f64;
            Sample {
                seq: i,
                sent_ms: t,
                rtt_ms: (!lost(t)).then_some(0.2 + (i % 7) as f64 * 0.01),
            }
        })
        .collect()
}

/// Service down from 5120 to 6975 ms (the thesis' interrupting phases of M at 5000).
fn down(t: f64) -> bool {
    (5_120.0..6_975.0).contains(&t)
}

fn sample_report() -> (DemoReport, Series) {
    let ping = pings(down);
    let probe = probes(down);
    let mut m = MigrationReport::from_timeline(&thesis_m(), "server1 → server2", 5_000.0);
    m.attribute_ping(&ping, 100.0, DEFAULT_TAIL_MS);
    m.attribute_probe(&probe, DEFAULT_TAIL_MS);
    let mut mb = MigrationReport::from_timeline(
        &timeline(
            "MB",
            9_000,
            &[
                ("get destination tun ip and Control", 5, false),
                ("link USRP object to the device", 900, true),
            ],
        ),
        "server2 → server1",
        9_000.0,
    );
    mb.attribute_ping(&ping, 100.0, DEFAULT_TAIL_MS);
    mb.attribute_probe(&probe, DEFAULT_TAIL_MS);
    let legacy = MethodReport::new(Method::Legacy, vec![m, mb], None, None, None);
    let mut out =
        MigrationReport::from_timeline(&mbb("mbb out", 13_000), "server1 → server2", 13_000.0);
    out.attribute_ping(&ping, 100.0, DEFAULT_TAIL_MS);
    out.attribute_probe(&probe, DEFAULT_TAIL_MS);
    let fast = MethodReport::new(Method::Mbb, vec![out], None, None, None);
    let meta = RunMeta::collect(1_796_000_000_000.0);
    let report = DemoReport::new(Experiment::Ping, meta, vec![legacy, fast]);
    (
        report,
        Series {
            probe,
            ping,
            ..Series::default()
        },
    )
}

#[test]
fn traffic_is_charged_to_the_migration_it_overlaps() {
    let (r, _) = sample_report();
    let m = &r.methods[0].migrations[0];
    assert_eq!(m.total_ms, 1969.0);
    assert_eq!(m.phase_interruption_ms, 1855.0);
    // Pings at 5200..=6900 are lost: 18 of them; probes 5120..6974: 1855.
    assert_eq!(m.ping_lost, Some(18));
    assert_eq!(m.interruption_ms, Some(1800.0));
    assert_eq!(m.probe_lost, Some(1855));
    assert_eq!(m.probe_longest_gap_ms, Some(1856.0));
    assert_eq!(m.probe_gap_window_ms, Some([5_119.0, 6_975.0]));
    // The migration back and make-before-break saw no loss.
    assert_eq!(r.methods[0].migrations[1].ping_lost, Some(0));
    let mbb = &r.methods[1].migrations[0];
    assert_eq!(mbb.ping_lost, Some(0));
    assert_eq!(mbb.probe_lost, Some(0));
    assert_eq!(mbb.probe_longest_gap_ms, Some(1.0));
    assert_eq!(mbb.phase_interruption_ms, 0.0);
    // Method level: worst migration.
    assert_eq!(r.methods[0].total_ms, 1969.0);
    assert_eq!(r.methods[0].interruption_ms, 1856.0);
    assert_eq!(r.methods[1].interruption_ms, 0.0);
}

#[test]
fn json_round_trips_and_has_the_documented_keys() {
    let (r, _) = sample_report();
    let text = r.to_json().expect("json");
    let back = DemoReport::from_json(&text).expect("parse");
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&text).expect("value");
    assert_eq!(v["schema"], 1);
    assert_eq!(v["experiment"], "ping");
    assert_eq!(v["methods"][0]["method"], "legacy");
    assert_eq!(v["methods"][1]["method"], "mbb");
    let p = &v["methods"][0]["migrations"][0]["phases"][4];
    assert_eq!(p["name"], tl::PHASE_LINK);
    assert_eq!(p["start_ms"], 120.0);
    assert_eq!(p["duration_ms"], 1743.0);
    assert_eq!(v["thesis"]["total_ms"], 1969.0);
    assert_eq!(v["thesis"]["lost_pings"], 19);
    assert_eq!(v["thesis"]["relay_total_ms"], 2173.0);
    assert_eq!(v["thesis"]["relay_video_interruption_ms"], 1858.0);
    assert!(v["meta"]["date_utc"]
        .as_str()
        .is_some_and(|d| d.starts_with("2026-11-30T00:53")));
    // Rows sum to the thesis total.
    let rows: f64 = r.thesis.table_3_4.iter().map(|r| r.ms).sum();
    assert_eq!(rows, 1969.0);
}

#[test]
fn text_table_puts_ferry_beside_the_thesis() {
    let (r, _) = sample_report();
    let t = r.render_text();
    println!("{t}");
    let row = |start: &str| -> Vec<String> {
        t.lines()
            .find(|l| l.starts_with(start))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let link = row(tl::PHASE_LINK);
    assert_eq!(link[link.len() - 3..], ["1743", "1743", "*"]);
    let total = row("total migration");
    assert_eq!(total[total.len() - 2..], ["1969", "1969"]);
    let lost = row("lost pings");
    assert_eq!(lost[lost.len() - 2..], ["18", "19"]);
    // Make-before-break has no thesis column.
    let mbb_part = t.split("make-before-break").nth(1).expect("mbb section");
    assert!(mbb_part
        .lines()
        .any(|l| l.starts_with("cutover at T") && l.trim_end().ends_with('—')));
}

/// Minimal XML well-formedness check: balanced tags, quoted attributes, escaped text.
fn check_xml(s: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = s;
    let mut elements = 0;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        if text.contains('>')
            || text
                .replace("&amp;", "")
                .replace("&lt;", "")
                .replace("&gt;", "")
                .replace("&quot;", "")
                .replace("&apos;", "")
                .contains('&')
        {
            return Err(format!("bad text {text:?}"));
        }
        let end = rest[i..].find('>').ok_or("unclosed tag")? + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or("close without open")?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body.split_whitespace().next().ok_or("empty tag")?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-')
        {
            return Err(format!("bad name {name:?}"));
        }
        if body.matches('"').count() % 2 != 0 || body[name.len()..].contains('<') {
            return Err(format!("bad attributes in <{body}>"));
        }
        elements += 1;
        if !self_closing {
            stack.push(name.to_string());
        }
    }
    if stack.is_empty() && rest.trim().is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

#[test]
fn xml_checker_rejects_broken_svg() {
    assert!(check_xml("<svg><g></svg>").is_err());
    assert!(check_xml("<svg><text>a & b</text></svg>").is_err());
    assert!(check_xml("<svg><rect x=\"1/></svg>").is_err());
    assert_eq!(
        check_xml("<svg><rect x=\"1\"/><text>a &amp; b</text></svg>"),
        Ok(3)
    );
}

#[test]
fn write_outputs_writes_report_and_well_formed_plots() {
    let (r, series) = sample_report();
    let dir = std::env::temp_dir().join(format!("ferry-report-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let json = dir.join("elsewhere").join("run.json");
    let w = write_outputs(&r, &series, &dir, Some(&json)).expect("write");
    assert_eq!(w.json, json);
    let back =
        DemoReport::from_json(&std::fs::read_to_string(&json).expect("read")).expect("parse");
    assert_eq!(back, r);
    let names: Vec<String> = w
        .files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for n in [
        "report.txt",
        "timeline.svg",
        "probe.svg",
        "probe.csv",
        "ping.svg",
        "ping.csv",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|x| x == "video.svg"),
        "no frames, no video plot"
    );
    for f in w
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
    {
        let svg = std::fs::read_to_string(f).expect("svg");
        check_xml(&svg).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    let timeline = std::fs::read_to_string(dir.join("timeline.svg")).expect("timeline");
    // One right-aligned row label per phase: 6 (M) + 2 (MB) + 15 (mbb) + the thesis' 6 rows.
    assert_eq!(
        timeline.matches(r#"text-anchor="end""#).count(),
        6 + 2 + MBB_PHASES.len() + 6
    );
    for m in r.methods.iter().flat_map(|m| &m.migrations) {
        for p in &m.phases {
            assert!(
                timeline.contains(&format!(">\n{}\n</text>", p.name)),
                "{}",
                p.name
            );
        }
    }
    assert!(timeline.contains("thesis, table 3-4"));
    assert!(timeline.contains(">\nms\n</text>"), "x axis label");
    let probe = std::fs::read_to_string(dir.join("probe.svg")).expect("probe");
    // One merged loss band for the single outage, plus the legend's swatch.
    assert_eq!(
        probe
            .matches(r##"opacity="1" fill="#D62728" stroke="none"/>"##)
            .count(),
        2
    );
    // A labelled marker per migration, in its method's colour, and the axes named.
    let marks = ferry_testbed::plot::migration_marks(&r);
    assert_eq!(marks.len(), 3);
    for m in &marks {
        assert!(
            probe.contains(&format!(">\n{}\n</text>", m.label)),
            "{}",
            m.label
        );
    }
    assert!(probe.contains("time since the run started (s)"));
    assert!(probe.contains("round-trip time (ms, log)"));
    assert!(probe.contains("lost (1855 of 20000)"));
    let csv = std::fs::read_to_string(dir.join("probe.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 20_001);
    if std::env::var_os("FERRY_KEEP_PLOTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("plots kept in {}", dir.display());
    }
}

#[test]
fn rfc3339_dates() {
    use ferry_testbed::report::rfc3339_utc;
    assert_eq!(rfc3339_utc(0.0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_utc(951_782_400_123.0), "2000-02-29T00:00:00.123Z");
    assert_eq!(rfc3339_utc(1_796_000_000_000.0), "2026-11-30T00:53:20.000Z");
}

#[test]
fn plots_of_nothing_are_still_valid_svg() {
    use ferry_testbed::plot::{delay_svg, frame_gap_svg, timeline_svg};
    let empty = DemoReport::new(Experiment::Relay, RunMeta::collect(0.0), Vec::new());
    for svg in [
        timeline_svg(&empty),
        delay_svg("t", &[], &[]),
        delay_svg("all lost", &[(0.0, None), (1.0, None)], &[]),
        frame_gap_svg(&[], &[]),
        frame_gap_svg(&[5.0], &[]),
    ] {
        let svg = svg.expect("drawn");
        check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}

proptest::proptest! {
    #[test]
    fn hostile_names_are_escaped(name in ".{0,40}", label in ".{0,20}", ms in 0u64..5000) {
        let t = timeline(&label, 0, &[(&name, ms, true)]);
        let m = MigrationReport::from_timeline(&t, &name, 0.0);
        let r = DemoReport::new(
            Experiment::Ping,
            RunMeta::collect(0.0),
            vec![MethodReport::new(Method::Mbb, vec![m], None, None, None)],
        );
        let svg = ferry_testbed::plot::timeline_svg(&r).expect("drawn");
        proptest::prop_assert!(check_xml(&svg).is_ok(), "{:?}", check_xml(&svg));
        let marks = ferry_testbed::plot::migration_marks(&r);
        let d = ferry_testbed::plot::delay_svg(&name, &[(0.0, Some(1.0)), (1.0, None)], &marks).expect("drawn");
        proptest::prop_assert!(check_xml(&d).is_ok(), "{:?}", check_xml(&d));
        let back = DemoReport::from_json(&r.to_json().expect("json")).expect("parse");
        proptest::prop_assert_eq!(back, r);
    }
}

#[test]
fn video_of_two_runs_is_plotted_without_the_pause_between_them() {
    // Two methods' videos, 40 ms apart within each, 3 s apart between them.
    let a: Vec<f64> = (0..10).map(|i| 1000.0 + 40.0 * f64::from(i)).collect();
    let b: Vec<f64> = (0..10).map(|i| 4400.0 + 40.0 * f64::from(i)).collect();
    let series = Series {
        video_frames_ms: a.iter().chain(&b).copied().collect(),
        video_run_starts: vec![0, a.len()],
        ..Series::default()
    };
    let runs = series.video_runs();
    assert_eq!(runs, vec![a.as_slice(), b.as_slice()]);
    let svg = ferry_testbed::plot::frame_gap_svg_runs(&runs, &[]).expect("drawn");
    assert!(check_xml(&svg).is_ok());
    assert!(svg.contains("longest 40 ms"), "{svg}");
    // Without the cut the pause would be the longest "gap".
    let one = ferry_testbed::plot::frame_gap_svg(&series.video_frames_ms, &[]).expect("drawn");
    assert!(one.contains("longest 3040 ms"));
}

#[test]
fn bench_plot_marks_every_migration_of_every_method() {
    use ferry_testbed::plot::bench_svg;
    let legacy: Vec<(f64, f64)> = (0..7).map(|i| (1900.0 + f64::from(i), 1800.0)).collect();
    let mbb: Vec<(f64, f64)> = (0..5).map(|i| (150.0 + f64::from(i), 0.0)).collect();
    let svg = bench_svg(&[(Method::Legacy, legacy), (Method::Mbb, mbb)]).expect("drawn");
    check_xml(&svg).unwrap_or_else(|e| panic!("{e}"));
    // A filled dot per migration plus one in the legend, per method, in its colour.
    let dots = |colour: &str| {
        svg.lines()
            .filter(|l| l.starts_with("<circle") && l.contains(&format!(r#"fill="{colour}""#)))
            .count()
    };
    assert_eq!(dots("#D62728"), 7 + 1);
    assert_eq!(dots("#2CA02C"), 5 + 1);
    for label in [
        "legacy (thesis method): total",
        "make-before-break (Ferry): interruption",
        ">\nms\n</text>",
    ] {
        assert!(svg.contains(label), "{label}");
    }
    let empty = bench_svg(&[]).expect("drawn");
    assert!(check_xml(&empty).is_ok() && !empty.contains("NaN"));
}

#[test]
fn relay_table_shows_video_beside_table_4_2_without_ping_rows() {
    let mut m = MigrationReport::from_timeline(&thesis_m(), "server1 → server2", 5000.0);
    let frames: Vec<f64> = (0..200).map(|i| 4000.0 + 40.0 * f64::from(i)).collect();
    let series = Series {
        video_frames_ms: frames,
        video_losses: vec![ferry_testbed::video::FrameLoss {
            at_ms: 5100.0,
            frames: 2,
        }],
        video_cc_errors_ms: vec![5100.0, 9000.0],
        video_reordered_ms: vec![5200.0],
        ..Series::default()
    };
    let mut migs = vec![m.clone()];
    series.charge(&mut migs, 100.0, 500.0);
    m = migs.remove(0);
    // Window 5000 .. 5000 + 1969 + 500: the 9000 ms continuity error is outside.
    assert_eq!(m.video_frames_lost, Some(2));
    assert_eq!(m.video_cc_errors, Some(1));
    assert_eq!(m.video_frames_reordered, Some(1));
    assert_eq!(m.video_longest_gap_ms, Some(40.0));
    assert_eq!(m.ping_lost, None);
    let legacy = MethodReport::new(Method::Legacy, vec![m], None, None, None);
    let rep = DemoReport::new(Experiment::Relay, RunMeta::collect(0.0), vec![legacy]);
    let text = rep.render_text();
    for want in [
        "video interruption: longest frame gap",
        "video frames lost (by PTS)",
        "video frames late (out of PTS order)",
        "2173",
        "1858",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(!text.contains("lost pings"), "{text}");
    let back = DemoReport::from_json(&rep.to_json().expect("json")).expect("read back");
    assert_eq!(back, rep);
}
