//! A stand-in modem for the agent's and console's tests: parses every request with the real
//! modem protocol (`ferry_modem::parse_request`, so a malformed request from the agent is
//! refused exactly as the real modem would) and answers with canned state. Not a modem: no
//! radio, no PHY. Writes its pid to `SOCKET.pid`.
//!
//! An armed cutover fires 40 ms (wall clock) after it was armed: a takeover makes it
//! `active`, a release makes it `released` (nothing held). That stands in for radio time T.
//!
//! Arguments: the subset of `ferry modem`'s that `ferry agent` passes: `--control-socket
//! SOCKET --start cold|warm|wait [--control-file FILE] [--routes JSON] [--tun-addr IP/N]
//! [--shadow]`, plus `--die-after-ms N` to exit
//! on its own.

use ferry_migrate::{Control, RouteList};
use ferry_modem::{
    parse_request, CutoverArm, ModemCounters, ModemReply, ModemRequest, ModemState, ModemStatus,
    Role,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn default_control() -> Option<Control> {
    Control::from_json(
        r#"{"workmode":1,"phy_cell_ID":7,"group_ID":2,"cell_ID":1,"CPtype":0,"BW":1.4,
            "RBIdx":6,"duplexMode":0,"numAntennaTX":1,"numAntennaRX":1,"DLULAssign":1,
            "trans_mode":1,"type_mode":1,"RNTI":1000}"#,
    )
    .ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(socket) = get("--control-socket") else {
        eprintln!("ferry-test-modem: --control-socket SOCKET missing");
        std::process::exit(2);
    };
    let _ = std::fs::write(format!("{socket}.pid"), std::process::id().to_string());
    let die_at = get("--die-after-ms")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut control = match get("--control-file") {
        Some(f) => match std::fs::read_to_string(&f).map(|j| Control::from_json(&j)) {
            Ok(Ok(c)) => Some(c),
            other => {
                eprintln!("ferry-test-modem: --control-file {f}: {other:?}");
                std::process::exit(2);
            }
        },
        None => default_control(),
    };
    let mut routes: Option<RouteList> = get("--routes")
        .and_then(|s| serde_json::from_str(&s).ok())
        .and_then(|v| RouteList::from_value(&v).ok());
    let waits = get("--start").is_none_or(|s| s == "wait");
    let mut state = match (args.iter().any(|a| a == "--shadow"), waits) {
        (_, true) => ModemState::Idle,
        (true, false) => ModemState::Shadow,
        (false, false) => ModemState::Active,
    };
    let mut cutover: Option<CutoverArm> = None;
    let mut armed_at = Instant::now();
    let born = Instant::now();
    let _ = std::fs::remove_file(&socket);
    let Ok(listener) = UnixListener::bind(&socket) else {
        eprintln!("ferry-test-modem: cannot bind {socket}");
        std::process::exit(2);
    };
    let _ = listener.set_nonblocking(true);
    loop {
        if die_at.is_some_and(|t| Instant::now() >= t) {
            std::process::exit(3);
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let Ok(mut w) = stream.try_clone() else {
            continue;
        };
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let parsed = parse_request(&line);
            line.clear();
            let req = match parsed {
                Ok(req) => req,
                Err(e) => {
                    let _ = writeln!(w, "{}", ModemReply::refused(&e).to_line());
                    continue;
                }
            };
            let name = req.name();
            if cutover.is_some() && armed_at.elapsed() >= Duration::from_millis(40) {
                state = match cutover.take() {
                    Some(CutoverArm::Takeover { .. }) => ModemState::Active,
                    _ => ModemState::Released,
                };
            }
            let reply = match req {
                ModemRequest::Status => {
                    let st = ModemStatus {
                        role: Role::Slave,
                        state,
                        synced: state != ModemState::Idle,
                        primary: state == ModemState::Active,
                        // A 192 kHz clock since start, so "the stream advances" is checkable.
                        sample_time: u64::try_from(born.elapsed().as_micros() * 192 / 1000)
                            .unwrap_or(u64::MAX),
                        sample_rate: 1_920_000,
                        frame_start_sample: None,
                        sfn: None,
                        cfo_hz: 0.0,
                        snr_db: None,
                        cutover: cutover.clone(),
                        node_id: 9,
                        tun_name: None,
                        tun_addr: None,
                        counters: ModemCounters::default(),
                        epoch: 0,
                        clock_ppm: None,
                        harq: None,
                        election: None,
                    };
                    ModemReply::ok(name, serde_json::to_value(st).ok())
                }
                ModemRequest::GetControl => match &control {
                    Some(c) => ModemReply::ok(name, Some(c.to_value())),
                    None => ModemReply::err(name, "no Control"),
                },
                ModemRequest::SetControl { control: c } if state == ModemState::Idle => {
                    control = Some(c);
                    ModemReply::ok(name, None)
                }
                ModemRequest::SetControl { .. } => {
                    ModemReply::err(name, "set_control needs state idle")
                }
                ModemRequest::GetRoutes => match &routes {
                    Some(r) => ModemReply::ok(name, Some(r.to_value())),
                    None => ModemReply::err(name, "not a relay"),
                },
                ModemRequest::SetRoutes { routes: r } => {
                    routes = Some(r);
                    ModemReply::ok(name, None)
                }
                ModemRequest::Start { .. } => {
                    if state == ModemState::Idle {
                        state = ModemState::Active;
                    }
                    ModemReply::ok(name, None)
                }
                ModemRequest::Shadow => {
                    state = ModemState::Shadow;
                    ModemReply::ok(name, None)
                }
                ModemRequest::HotStandby if state == ModemState::Shadow => {
                    ModemReply::ok(name, None)
                }
                ModemRequest::HotStandby => ModemReply::err(name, "hot_standby needs state shadow"),
                ModemRequest::TakeoverAt { at_sample, .. } => {
                    cutover = Some(CutoverArm::Takeover { at_sample });
                    armed_at = Instant::now();
                    ModemReply::ok(name, None)
                }
                ModemRequest::ReleaseAt {
                    at_sample,
                    forward_to,
                    ..
                } => {
                    cutover = Some(CutoverArm::Release {
                        at_sample,
                        forward_to,
                    });
                    armed_at = Instant::now();
                    ModemReply::ok(name, None)
                }
                ModemRequest::CancelCutover => {
                    cutover = None;
                    ModemReply::ok(name, None)
                }
                ModemRequest::Quit => {
                    let _ = writeln!(w, "{}", ModemReply::ok(name, None).to_line());
                    let _ = std::fs::remove_file(&socket);
                    std::process::exit(0);
                }
            };
            if writeln!(w, "{}", reply.to_line()).is_err() {
                break;
            }
        }
    }
}
