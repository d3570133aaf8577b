//! A stand-in modem for the agent's tests: speaks the modem control protocol
//! (docs/MODEM-CONTROL.md: one JSON object per line over a Unix socket) with canned
//! behaviour, and records the argument vector it was started with. Not a modem.
//!
//! Arguments: `--control SOCKET [--start N] [--control-json JSON] [--routes-json JSON]
//! [--tun-addr IP] [--shadow]` (what `ferry agent` passes), plus `--args-out FILE` to write the
//! received arguments as JSON, and `--die-after-ms N` to exit on its own.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(socket) = get("--control") else {
        eprintln!("ferry-test-modem: --control missing");
        std::process::exit(2);
    };
    let _ = std::fs::write(format!("{socket}.pid"), std::process::id().to_string());
    if let Some(f) = get("--args-out") {
        let _ = std::fs::write(f, serde_json::to_string(&args).unwrap_or_default());
    }
    let die_at = get("--die-after-ms")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut control: Value = get("--control-json")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| {
            json!({"workmode":1,"phy_cell_ID":7,"group_ID":2,"cell_ID":1,"CPtype":0,"BW":1.4,
                   "RBIdx":6,"duplexMode":0,"numAntennaTX":1,"numAntennaRX":1,"DLULAssign":1,
                   "trans_mode":1,"type_mode":1,"RNTI":1000})
        });
    let mut routes: Option<Value> =
        get("--routes-json").and_then(|s| serde_json::from_str(&s).ok());
    let mut state = match (
        args.iter().any(|a| a == "--shadow"),
        get("--start").is_some(),
    ) {
        (true, _) => "shadow",
        (false, true) => "active",
        (false, false) => "idle",
    };
    let mut cutover = Value::Null;
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
            let req: Value = serde_json::from_str(line.trim()).unwrap_or(Value::Null);
            line.clear();
            let cmd = req
                .get("cmd")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let (ok, result): (bool, Value) = match cmd.as_str() {
                "status" => (
                    true,
                    json!({"role":"slave","state":state,"synced":state != "idle",
                    "primary":state == "active","sample_time":0,"sample_rate":1920000,
                    "frame_start_sample":null,"sfn":null,"cfo_hz":0.0,"snr_db":null,
                    "cutover":cutover,"node_id":1,"tun_name":null,"tun_addr":null,
                    "counters":{"queue_depth":0}}),
                ),
                "get_control" => (true, control.clone()),
                "set_control" => {
                    control = req.get("control").cloned().unwrap_or(Value::Null);
                    (true, Value::Null)
                }
                "get_routes" => match &routes {
                    Some(r) => (true, r.clone()),
                    None => (false, json!("not a relay")),
                },
                "set_routes" => {
                    routes = req.get("routes").cloned();
                    (true, Value::Null)
                }
                "start" => {
                    if state != "shadow" {
                        state = "active";
                    }
                    (true, Value::Null)
                }
                "shadow" => {
                    state = "shadow";
                    (true, Value::Null)
                }
                "takeover_at" => {
                    cutover = json!({"kind":"takeover","at_sample":req.get("at_sample")});
                    (true, Value::Null)
                }
                "release_at" => {
                    cutover = json!({"kind":"release","at_sample":req.get("at_sample"),
                                     "forward_to":req.get("forward_to")});
                    (true, Value::Null)
                }
                "cancel_cutover" => {
                    cutover = Value::Null;
                    (true, Value::Null)
                }
                "quit" => {
                    let _ = writeln!(w, "{}", json!({"ok":true,"cmd":"quit"}));
                    std::process::exit(0);
                }
                _ => (false, json!("wrong command")),
            };
            let reply = if ok {
                json!({"ok":true,"cmd":cmd,"result":result})
            } else {
                json!({"ok":false,"cmd":cmd,"error":result})
            };
            if writeln!(w, "{reply}").is_err() {
                break;
            }
        }
    }
}
