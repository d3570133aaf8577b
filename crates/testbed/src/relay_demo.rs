//! The thesis' chapter-4 experiment with real processes: the relay task (a base station,
//! workmode 2) on server1 forwards a live ffmpeg MPEG-TS video from server3 to server4 (who
//! cannot hear each other), and is migrated server1 → server2 → server1 with the legacy
//! method (thesis console `M` / `MB` with route transfer) and with make-before-break
//! (`ferry ctl --relay migrate --method mbb`), measured into a [`DemoReport`] beside
//! table 4-2.

use crate::demo::{run_experiment, TestbedSpec, PING_INTERVAL_MS};
use crate::live::{emit, method_name, LiveEvent, LiveSink};
use crate::report::{DemoReport, Experiment, Method, MethodReport, MigrationReport, Series};
use crate::session::{self, Bed, SessionError, RELAY_RX_TUN};
use crate::video::{unix_ms, VideoLog, VideoReceiver, VideoReport, VideoSender, VideoSpec};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// UDP port the video goes to on server4.
pub const VIDEO_PORT: u16 = 5004;

/// What to run.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The `ferry` binary to start in the namespaces.
    pub ferry: PathBuf,
    /// Namespace prefix of the testbed.
    pub prefix: String,
    /// Video held before, between and after migrations.
    pub hold: Duration,
    /// Methods, in order.
    pub methods: Vec<Method>,
    /// Migrations per method (alternating server1 → server2, server2 → server1).
    pub migrations: usize,
    /// Route-discovery beacon period of every modem, ms (`None`: the modem's default).
    pub discovery_period_ms: Option<u64>,
    /// LTE bandwidth of every modem's carrier in MHz (`None`: 1.4 MHz).
    pub bw: Option<f64>,
    /// How long to wait for the first ping from server3 to reach server4 through the relay.
    pub first_ping_timeout: Duration,
    /// The video.
    pub video: VideoSpec,
    /// A gap between frames longer than this is a stall (listed in the report).
    pub stall_threshold_ms: f64,
    /// Where live events go (the web view of `ferry demo relay --web`), if anywhere.
    pub live: Option<LiveSink>,
}

/// The relay demo's video: what the relayed 1.4 MHz TDD link carries with room to spare.
/// Both hops (server3 → relay in granted uplink subframes, relay → server4 in downlink
/// subframes) share one TDD channel, which relays about 200 kbit/s of UDP payload
/// (docs/EXPERIMENTS.md). H.264 at 64 kbit/s with periodic intra refresh and a small VBV
/// buffer has no I-frame spikes (an MPEG-2 I-frame of 6 KB would take ~250 ms to cross and
/// look like a stall every GOP); as MPEG-TS over UDP it is ~115 kbit/s on the wire.
pub fn relay_video() -> VideoSpec {
    VideoSpec {
        size: (160, 120),
        fps: 25,
        kbps: 64,
        codec: "libx264".into(),
        eager: true,
        encoder_args: ["-intra-refresh", "1", "-maxrate", "64k", "-bufsize", "13k"]
            .map(String::from)
            .to_vec(),
        ..VideoSpec::default()
    }
}

impl RelayOptions {
    /// The demo's defaults: both methods, one round trip each, 3 s of video around.
    pub fn new(ferry: PathBuf, prefix: &str) -> RelayOptions {
        RelayOptions {
            ferry,
            prefix: prefix.to_string(),
            hold: Duration::from_secs(3),
            methods: vec![Method::Legacy, Method::Mbb],
            migrations: 2,
            discovery_period_ms: None,
            bw: None,
            first_ping_timeout: Duration::from_secs(60),
            video: relay_video(),
            stall_threshold_ms: 250.0,
            live: None,
        }
    }

    /// How long after a migration's timeline ends its video gaps, holes and continuity
    /// errors are still charged to it: 1 s (at most the hold minus 100 ms, at least
    /// [`crate::report::DEFAULT_TAIL_MS`]). The relayed video is back within ~150 ms of a
    /// migration's end (and a relay that lost its grant state stalled ~1 s, still caught
    /// by a gap touching the window); a longer tail would charge the rare loss on the
    /// loaded air seconds later to the migration.
    pub fn tail_ms(&self) -> f64 {
        // DEFAULT_TAIL_MS (500) < 1000: clamp cannot panic.
        (self.hold.as_secs_f64() * 1000.0 - 100.0).clamp(crate::report::DEFAULT_TAIL_MS, 1000.0)
    }
}

/// One method's relay session.
pub struct RelayRun {
    /// Which method.
    pub method: Method,
    /// Migrations, uncharged.
    pub migrations: Vec<MigrationReport>,
    /// What server4 received.
    pub video: VideoLog,
    /// The receiver's clock origin, Unix ms.
    pub video_started_unix_ms: f64,
    /// How long ffmpeg streamed, ms.
    pub streamed_ms: f64,
    /// Datagrams the sender could not send (no route for a moment).
    pub send_errors: u64,
}

fn route(from: u8, to: u8) -> String {
    format!("server{from} → server{to}")
}

/// Runs one method's relay session on `bed` (the processes of an earlier session must be
/// stopped): air with server4's radio, server3's and server4's modems, the agents, the
/// relay task, the video, `opts.migrations` migrations, then stops every process again.
pub fn run_relay_method(
    bed: &mut Bed,
    method: Method,
    opts: &RelayOptions,
    origin_unix_ms: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<RelayRun, SessionError> {
    let legacy = method == Method::Legacy;
    let live = opts.live.as_ref();
    emit(
        live,
        LiveEvent::Method {
            method: method_name(method).into(),
        },
    );
    bed.relay = true;
    progress(&format!(
        "{}: starting ferry air (pool, far, relayrx), the modems of server3 and server4 and the agents",
        method.title()
    ));
    bed.start_air(legacy)?;
    bed.start_far()?;
    bed.start_relay_rx()?;
    bed.start_agent(legacy, 2)?;
    if !legacy {
        bed.start_agent(false, 1)?;
    }
    session::sleep(Duration::from_millis(700))?;
    bed.check_alive()?;
    let mut console = None;
    if legacy {
        progress(
            "legacy: DS on server1 (thesis console --relay: start the relay task, workmode 2)",
        );
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
        progress(
            "make-before-break: set_tun_ip and start_d2d (relay, workmode 2) on server1's agent",
        );
        bed.send(1, "set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#)?;
        bed.send(1, "start_d2d", r#"{"control_flag":0}"#)?;
    }
    progress(
        "waiting for cell search, route discovery and the first ping server3 → relay → server4",
    );
    let took = bed.wait_first_ping_to(RELAY_RX_TUN, opts.first_ping_timeout)?;
    let v = &opts.video;
    progress(&format!(
        "first ping through the relay after {:.1} s; starting ffmpeg on server3 ({}x{} {} fps {} {} kbit/s, MPEG-TS/UDP to {RELAY_RX_TUN}:{VIDEO_PORT}) and the receiver on server4",
        took.as_secs_f64(),
        v.size.0,
        v.size.1,
        v.fps,
        v.codec,
        v.kbps
    ));
    let receiver = VideoReceiver::start(
        Some(&bed.ns("server4")),
        SocketAddr::from(([0, 0, 0, 0], VIDEO_PORT)),
    )
    .map_err(|e| SessionError::Failed(format!("video receiver on server4: {e}")))?;
    let sent_at = Instant::now();
    let sender = VideoSender::start(
        Some(&bed.ns("server3")),
        v,
        SocketAddr::new(IpAddr::V4(RELAY_RX_TUN), VIDEO_PORT),
    )
    .map_err(|e| SessionError::Failed(format!("ffmpeg on server3: {e}")))?;
    // ffmpeg needs a moment before its first frame; the hold starts from there.
    let t_first = Instant::now();
    while receiver.frames() == 0 {
        if t_first.elapsed() > Duration::from_secs(10) {
            return Err(SessionError::Failed(
                "no video frame reached server4 within 10 s of starting ffmpeg".into(),
            ));
        }
        session::sleep(Duration::from_millis(50))?;
    }
    emit(
        live,
        LiveEvent::Serving {
            server: "server1".into(),
        },
    );
    session::sleep(opts.hold)?;
    let mut migrations = Vec::new();
    for i in 0..opts.migrations {
        let (from, to) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
        bed.check_alive()?;
        emit(
            live,
            LiveEvent::MigrationStarted {
                label: if !legacy {
                    format!("mbb {}", i + 1)
                } else if i % 2 == 0 {
                    "M".into()
                } else {
                    "MB".into()
                },
                method: method_name(method).into(),
                from: format!("server{from}"),
                to: format!("server{to}"),
                t_ms: unix_ms() - origin_unix_ms,
            },
        );
        let before = receiver.frames();
        let misses_before = far_end_misses(bed);
        let (timeline, start) = if let Some(c) = console.as_mut() {
            let line = if i % 2 == 0 { "M" } else { "MB" };
            progress(&format!(
                "legacy: {line} (server{from} → server{to}), routes carried"
            ));
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
            progress(&format!(
                "make-before-break: server{from} → server{to} (--relay: routes read and set before the start)"
            ));
            bed.migrate_mbb(from, to)?
        };
        let m = MigrationReport::from_timeline(&timeline, &route(from, to), start - origin_unix_ms);
        emit(live, LiveEvent::migration_ended(&m, method));
        emit(
            live,
            LiveEvent::Serving {
                server: format!("server{to}"),
            },
        );
        // TX deadlines the terminals missed while the destination started (a skipped
        // uplink TB loses the packets in it: there is no HARQ).
        session::sleep(Duration::from_millis(300))?;
        let misses = far_end_misses(bed)
            .zip(misses_before)
            .map(|((a3, a4), (b3, b4))| (a3.saturating_sub(b3), a4.saturating_sub(b4)));
        progress(&format!(
            "  done in {:.0} ms ({} frames so far, {} during the migration; TX deadline misses meanwhile: {})",
            m.total_ms,
            receiver.frames(),
            receiver.frames().saturating_sub(before),
            misses.map_or_else(|| "?".to_string(), |(a, b)| format!("server3 {a}, server4 {b}"))
        ));
        migrations.push(m);
        session::sleep(opts.hold.saturating_sub(Duration::from_millis(300)))?;
    }
    // Where packets went, if anywhere: the modems' loss and drop counters.
    let serving = if opts.migrations % 2 == 0 { 1 } else { 2 };
    let mut seen = Vec::new();
    for (who, sock) in [
        ("server3", "far.sock".to_string()),
        (
            if serving == 1 {
                "relay on server1"
            } else {
                "relay on server2"
            },
            format!("s{serving}.sock"),
        ),
        ("server4", "relayrx.sock".to_string()),
    ] {
        if let Some(c) = bed.modem_counters(&sock) {
            let bad: Vec<String> = c
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| {
                    (k.starts_with("drop_")
                        || k.as_str() == "deadline_misses"
                        || k.as_str() == "decode_fail"
                        || k.as_str() == "rx_gaps")
                        && v.as_u64().is_some_and(|n| n > 0)
                })
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            seen.push(format!(
                "{who}: {}",
                if bad.is_empty() {
                    "no drops".into()
                } else {
                    bad.join(", ")
                }
            ));
        }
    }
    progress(&format!("modem counters — {}", seen.join("; ")));
    let stats = sender
        .stop()
        .map_err(|e| SessionError::Failed(format!("stopping ffmpeg: {e}")))?;
    let streamed_ms = sent_at.elapsed().as_secs_f64() * 1000.0;
    // Let the last frames cross both hops.
    session::sleep(Duration::from_millis(400))?;
    let video_started_unix_ms = receiver.started_unix_ms;
    let video = receiver.stop();
    if let Some(mut c) = console {
        c.close();
    }
    bed.stop_all();
    Ok(RelayRun {
        method,
        migrations,
        video,
        video_started_unix_ms,
        streamed_ms,
        send_errors: stats.send_errors,
    })
}

/// `deadline_misses` of server3's and server4's modems.
fn far_end_misses(bed: &Bed) -> Option<(u64, u64)> {
    let get = |s: &str| bed.modem_counters(s)?["deadline_misses"].as_u64();
    Some((get("far.sock")?, get("relayrx.sock")?))
}

/// The run's video report: loss counted over the span from the first to the last frame
/// (ffmpeg's start-up is no loss) and by PTS.
pub fn video_report(run: &RelayRun, opts: &RelayOptions) -> VideoReport {
    run.video
        .report(f64::from(opts.video.fps), None, opts.stall_threshold_ms)
}

/// Charges the video to the migrations and makes the method's report.
pub fn relay_method_report(
    mut run: RelayRun,
    opts: &RelayOptions,
    origin_unix_ms: f64,
) -> (MethodReport, Series) {
    let rep = video_report(&run, opts);
    let offset = run.video_started_unix_ms - origin_unix_ms;
    let series = Series::video_on_axis(&rep, offset);
    series.charge(&mut run.migrations, PING_INTERVAL_MS, opts.tail_ms());
    let m = MethodReport::new(run.method, run.migrations, None, None, Some(&rep));
    (m, series)
}

/// The whole relay demo: testbed up, every method in turn, testbed down.
pub fn run_relay_demo(
    opts: &RelayOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(DemoReport, Series), SessionError> {
    let bed = TestbedSpec {
        ferry: &opts.ferry,
        prefix: &opts.prefix,
        discovery_period_ms: opts.discovery_period_ms,
        bw: opts.bw,
        radio_model: None,
        live: opts.live.clone(),
        modem_flags: Vec::new(),
        two_channel_radios: false,
        fronthaul_mtu: None,
    };
    run_experiment(
        &bed,
        &opts.methods,
        Experiment::Relay,
        progress,
        |bed, m, origin, progress| {
            let run = run_relay_method(bed, m, opts, origin, progress)?;
            Ok(relay_method_report(run, opts, origin))
        },
        |all, s| {
            all.video_run_starts.push(all.video_frames_ms.len());
            all.video_frames_ms.extend(s.video_frames_ms);
            all.video_losses.extend(s.video_losses);
            all.video_cc_errors_ms.extend(s.video_cc_errors_ms);
            all.video_reordered_ms.extend(s.video_reordered_ms);
        },
    )
}
