//! The modem's local control protocol (see docs/MODEM-CONTROL.md): one JSON object per line
//! each way over a Unix stream socket, the request/reply types, and a small blocking client.
//!
//! Parsing is pure and total: any line yields either a [`ModemRequest`] or a
//! [`RequestError`] that says what was wrong (and the modem keeps serving).

use ferry_migrate::{Control, ForwardToken, RouteList};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest request line the modem accepts: a full 256-entry route list or a `Control` is
/// under 4 kB. A longer line is refused before it is parsed and the connection closed.
pub const MAX_LINE: usize = 16 * 1024;

/// Every command name, in documentation order.
pub const COMMANDS: [&str; 12] = [
    "status",
    "get_control",
    "set_control",
    "get_routes",
    "set_routes",
    "start",
    "shadow",
    "hot_standby",
    "takeover_at",
    "release_at",
    "cancel_cutover",
    "quit",
];

/// One request to the modem (`{"cmd": "...", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ModemRequest {
    /// Role, state, timing, SNR, counters, TUN.
    Status,
    /// The current `Control` (table 3-3 + warm-start timing when synchronised).
    GetControl,
    /// Replace `Control` (validated); takes effect at the next `start`.
    SetControl {
        /// Thesis field names (`workmode`, `phy_cell_ID`, ...).
        control: Control,
    },
    /// The relay route table `[[destID, nexthop], ...]`.
    GetRoutes,
    /// Replace the route table.
    SetRoutes {
        /// `[[destID, nexthop], ...]`.
        routes: RouteList,
    },
    /// Start the D2D program: 0 cold (cell search + route discovery), 1 warm (from
    /// the Control and routes given, no search).
    Start {
        /// 0 or 1.
        control_flag: u8,
    },
    /// Synchronise and decode, but neither deliver to the TUN nor transmit.
    Shadow,
    /// A shadow that protects the task (docs/FAULTS.md): it sends filler (a master's sync
    /// and reference signals, heartbeats otherwise) that the radio queues but plays only if
    /// it fails the primary over to this host, and it serves from the radio's failover
    /// notice on.
    HotStandby,
    /// Deliver and transmit from radio sample `at_sample` (a subframe boundary), provided
    /// the radio made this host primary by then.
    TakeoverAt {
        /// Radio sample time T.
        at_sample: u64,
        /// The migration's forward-port key: packets the source forwards are accepted only
        /// if sealed with it (without it the forward port accepts nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forward_token: Option<ForwardToken>,
    },
    /// Stop delivering and transmitting at `at_sample` (if the radio really stopped
    /// streaming here); queued packets and TUN packets read after T go to `forward_to`.
    ReleaseAt {
        /// Radio sample time T.
        at_sample: u64,
        /// The destination modem's forward port, `ip:port`.
        forward_to: SocketAddr,
        /// The migration's forward-port key the forwarded packets are sealed with
        /// (required: a release without it is refused).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forward_token: Option<ForwardToken>,
    },
    /// Disarm a pending `takeover_at` / `release_at`.
    CancelCutover,
    /// Exit (after replying).
    Quit,
}

impl ModemRequest {
    /// The wire name of the command.
    pub fn name(&self) -> &'static str {
        match self {
            ModemRequest::Status => "status",
            ModemRequest::GetControl => "get_control",
            ModemRequest::SetControl { .. } => "set_control",
            ModemRequest::GetRoutes => "get_routes",
            ModemRequest::SetRoutes { .. } => "set_routes",
            ModemRequest::Start { .. } => "start",
            ModemRequest::Shadow => "shadow",
            ModemRequest::HotStandby => "hot_standby",
            ModemRequest::TakeoverAt { .. } => "takeover_at",
            ModemRequest::ReleaseAt { .. } => "release_at",
            ModemRequest::CancelCutover => "cancel_cutover",
            ModemRequest::Quit => "quit",
        }
    }

    /// One JSON line (without the newline).
    pub fn to_line(&self) -> String {
        // Serialising these types cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"cmd\":\"{}\"}}", self.name()))
    }
}

/// Why a request line was refused; `cmd` is echoed in the error reply when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RequestError {
    /// The command name, if the line had a readable `cmd`.
    pub cmd: Option<String>,
    /// What was wrong.
    pub error: String,
}

/// Parse one request line. Unknown commands give `wrong command` (as the thesis'
/// destination controller answers); malformed JSON and bad arguments say what was wrong.
pub fn parse_request(line: &str) -> Result<ModemRequest, RequestError> {
    let fail = |cmd: Option<&str>, error: String| RequestError {
        cmd: cmd.map(str::to_string),
        error,
    };
    if line.len() > MAX_LINE {
        return Err(fail(
            None,
            format!("request too long ({} bytes, limit {MAX_LINE})", line.len()),
        ));
    }
    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| fail(None, format!("malformed JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(fail(
            None,
            "malformed request: expected a JSON object with a \"cmd\" field".into(),
        ));
    };
    let cmd = match obj.get("cmd") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(fail(
                None,
                "malformed request: \"cmd\" must be a string".into(),
            ))
        }
        None => {
            return Err(fail(
                None,
                "malformed request: missing \"cmd\" field".into(),
            ))
        }
    };
    if !COMMANDS.contains(&cmd) {
        return Err(fail(Some(cmd), "wrong command".into()));
    }
    if cmd == "start" {
        // Say exactly what control_flag may be, rather than serde's generic u8 message.
        match obj.get("control_flag").and_then(Value::as_u64) {
            Some(0 | 1) => {}
            _ => {
                let got = obj
                    .get("control_flag")
                    .map_or_else(|| "missing".to_string(), Value::to_string);
                return Err(fail(
                    Some(cmd),
                    format!("bad arguments for start: control_flag = {got}: must be 0 (cold) or 1 (warm)"),
                ));
            }
        }
    }
    serde_json::from_value::<ModemRequest>(v.clone())
        .map_err(|e| fail(Some(cmd), format!("bad arguments for {cmd}: {e}")))
}

/// One reply line: `{"ok":true,"cmd":..,"result":..}` or `{"ok":false,"cmd":..,"error":..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModemReply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command answered (`?` when the request had no readable `cmd`).
    pub cmd: String,
    /// The command's result (absent for commands without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong (only when `ok` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ModemReply {
    /// A success reply.
    pub fn ok(cmd: &str, result: Option<Value>) -> ModemReply {
        ModemReply {
            ok: true,
            cmd: cmd.to_string(),
            result,
            error: None,
        }
    }

    /// A failure reply.
    pub fn err(cmd: &str, error: impl Into<String>) -> ModemReply {
        ModemReply {
            ok: false,
            cmd: cmd.to_string(),
            result: None,
            error: Some(error.into()),
        }
    }

    /// The failure reply for a refused request line.
    pub fn refused(e: &RequestError) -> ModemReply {
        ModemReply::err(e.cmd.as_deref().unwrap_or("?"), e.error.clone())
    }

    /// One JSON line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"ok":false,"cmd":"?","error":"reply not serialisable"}"#.to_string()
        })
    }

    /// The result decoded as `T`, or the error text.
    pub fn result_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        if !self.ok {
            return Err(self.error.clone().unwrap_or_else(|| "failed".into()));
        }
        let v = self.result.clone().unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| format!("unexpected {} result: {e}", self.cmd))
    }
}

/// The modem's role (from Control `workmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sends PSS/SSS, owns frame timing.
    Master,
    /// Synchronises to a master.
    Slave,
    /// A master serving several slaves by RNTI.
    BaseStation,
}

/// Where the modem is in its life and in a cutover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModemState {
    /// Not started (waiting for `start`).
    Idle,
    /// Cold start: looking for a cell (slave) on live RX.
    Searching,
    /// Synchronised, route discovery running (cold start), not yet serving.
    Discovering,
    /// Synchronised and decoding, but neither delivering nor transmitting.
    Shadow,
    /// Serving: delivers to the TUN and transmits.
    Active,
    /// Past a release: no longer delivers or transmits; forwards what it holds (and stays
    /// warm for the fallback grace period).
    Released,
    /// The radio announced a newer epoch naming another host: transmits and delivers
    /// nothing (a paused or partitioned primary that was failed over).
    Fenced,
}

/// An armed cutover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CutoverArm {
    /// `takeover_at`.
    Takeover {
        /// Radio sample time T.
        at_sample: u64,
    },
    /// `release_at`.
    Release {
        /// Radio sample time T.
        at_sample: u64,
        /// Where held packets go.
        forward_to: SocketAddr,
    },
}

/// Counters (monotonic since process start, except `queue_depth`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModemCounters {
    /// Subframes processed on radio time.
    pub subframes: u64,
    /// TX subframes built too late to reach the radio ahead of their time.
    pub deadline_misses: u64,
    /// Peer subframes decoded with a good CRC.
    pub decode_ok: u64,
    /// Peer subframes whose transport block failed CRC.
    pub decode_fail: u64,
    /// IP packets read from the TUN.
    pub tun_in: u64,
    /// IP packets written to the TUN.
    pub tun_out: u64,
    /// Transport blocks sent to the radio.
    pub tx_blocks: u64,
    /// Packets relayed (MAC forwarding) for other nodes.
    pub relayed: u64,
    /// Packets received on the forward port from a releasing source.
    pub forward_in: u64,
    /// Packets sent to a destination's forward port after a release.
    pub forward_out: u64,
    /// Forward-port datagrams from strangers or with a bad header.
    pub forward_rejected: u64,
    /// Packets dropped because the MAC queue was full.
    pub drop_queue_full: u64,
    /// Packets dropped because no route / unknown destination.
    pub drop_no_route: u64,
    /// Packets read from the TUN while not serving (shadow / idle) and not forwardable.
    pub drop_not_serving: u64,
    /// Packets the MAC refused: not IPv4 (e.g. IPv6 neighbour discovery), address outside
    /// the node plan, too large.
    #[serde(default)]
    pub drop_refused: u64,
    /// TUN writes that failed.
    pub drop_tun_write: u64,
    /// Lost or reordered-away MAC segments (reassembly gaps).
    pub drop_reassembly: u64,
    /// RX sample gaps (radio blocks missing or late).
    pub rx_gaps: u64,
    /// Packets waiting in the MAC queue now.
    pub queue_depth: u64,
    /// Fronthaul datagrams dropped because they came from another address than the linked
    /// radio's, or from it with another stream id.
    #[serde(default)]
    pub rx_dropped_stranger: u64,
    /// Fronthaul data packets dropped because their timestamp lies outside the plausible
    /// horizon around the tracked radio clock (too far ahead, or hopelessly old).
    #[serde(default)]
    pub rx_dropped_horizon: u64,
    /// Control-socket request lines refused for their length (connection then closed).
    #[serde(default)]
    pub control_refused: u64,
    /// Control-socket connections dropped because the client did not read its replies.
    #[serde(default)]
    pub control_dropped: u64,
    /// Control-socket connections closed to make room for a new one (idle longest first).
    #[serde(default)]
    pub control_evicted: u64,
    /// Authentic in-band switch notices taken from the radio.
    #[serde(default)]
    pub notices: u64,
    /// Switch notices that did not authenticate (forged, or another radio room's key).
    #[serde(default)]
    pub bad_notices: u64,
    /// Times a newer epoch made this modem stop transmitting (fenced).
    #[serde(default)]
    pub step_downs: u64,
    /// Takeovers or releases the radio never confirmed (timed out to the safe side).
    #[serde(default)]
    pub unconfirmed_cutovers: u64,
    /// Times this modem became primary through a fallback or a failover.
    #[serde(default)]
    pub unplanned_takeovers: u64,
    /// Empty TX datagrams sent to prove this modem alive in subframes it had nothing for.
    #[serde(default)]
    pub heartbeats: u64,
    /// Packets decoded after T held for the radio's confirmation and then dropped (the
    /// radio kept the source) or dropped because the hold buffer was full.
    #[serde(default)]
    pub drop_held: u64,
    /// Packets this modem decoded as a warm replica and delivered when a fallback or
    /// failover made it primary: subframes the dead primary never delivered.
    #[serde(default)]
    pub replayed: u64,
    /// MAC bytes the link's subframes offered since start, both directions (each subframe's
    /// TB capacity once, whoever transmits in it).
    #[serde(default)]
    pub air_capacity_bytes: u64,
    /// Of those, segment bytes that carried something (sent here or decoded from a peer,
    /// whoever it was for); the ratio of the two over an interval is the link's PRB use
    /// (docs/POOL.md, "Demand").
    #[serde(default)]
    pub air_payload_bytes: u64,
}

/// The `status` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModemStatus {
    /// From Control `workmode`.
    pub role: Role,
    /// Life / cutover state.
    pub state: ModemState,
    /// Locked to the cell's frame timing.
    pub synced: bool,
    /// Whether the radio currently streams to this host as primary (vs shadow copy).
    pub primary: bool,
    /// Radio sample time of the newest RX sample seen.
    pub sample_time: u64,
    /// Radio sample rate, Hz.
    pub sample_rate: u64,
    /// Sample index where a radio frame starts (when synced).
    pub frame_start_sample: Option<u64>,
    /// System frame number of that frame.
    pub sfn: Option<u16>,
    /// Carrier frequency offset estimate, Hz.
    pub cfo_hz: f64,
    /// Smoothed SNR of decoded peer subframes, dB.
    pub snr_db: Option<f64>,
    /// Armed cutover, if any.
    pub cutover: Option<CutoverArm>,
    /// Own MAC node id.
    pub node_id: u16,
    /// TUN device name, if one was created.
    pub tun_name: Option<String>,
    /// TUN address (CIDR), if one was created.
    pub tun_addr: Option<String>,
    /// Counters.
    pub counters: ModemCounters,
    /// The newest epoch of the radio's assignments this modem has seen (0: none yet).
    #[serde(default)]
    pub epoch: u64,
    /// The radio oscillator's error against this host's clock, ppm (positive: the radio
    /// runs fast), once the clock tracker has a few windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ppm: Option<f64>,
    /// HARQ counters when the link runs HARQ (Control `HARQ` = 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harq: Option<crate::core::HarqCounters>,
    /// Auto mode (Control `workmode` 3): the elected role; absent in the fixed workmodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub election: Option<ElectionStatus>,
}

/// The role an auto-mode terminal elected (`status.election.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElectedRoleName {
    /// Searching for a master; claims the role when none is heard in time.
    Listening,
    /// Synchronised to `master`.
    Slave,
    /// Transmits PSS/SSS (its PCI is its node ID) and owns the frame timing.
    Master,
}

/// The election of an auto-mode terminal (docs/MODEM.md, "Master election").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElectionStatus {
    /// The elected role.
    pub role: ElectedRoleName,
    /// The master's node ID (its own when master; `None` while listening).
    pub master: Option<u16>,
    /// Times this terminal claimed the master role.
    pub claims: u64,
    /// Times it stepped down because it heard a master with a lower node ID.
    pub step_downs: u64,
    /// Times its master went silent (it listened again).
    pub masters_lost: u64,
    /// Milliseconds from process start to the last role change (`None`: none yet).
    pub last_change_ms: Option<f64>,
}

/// Errors of [`ModemClient`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket connect/read/write failed or timed out.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// No reply within the client's timeout (the modem's loop did not serve the socket).
    #[error("no reply within {0} ms")]
    Timeout(u128),
    /// The modem closed the connection.
    #[error("control socket closed by the modem")]
    Closed,
    /// The reply line was not a reply.
    #[error("unreadable reply: {0}")]
    BadReply(String),
}

/// A small blocking client for the control socket (one request, one reply at a time).
pub struct ModemClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    timeout: Duration,
}

impl ModemClient {
    /// Connect; `timeout` bounds each later read and write.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<ModemClient, ClientError> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let writer = s.try_clone()?;
        Ok(ModemClient {
            reader: BufReader::new(s),
            writer,
            timeout,
        })
    }

    /// Send one request and wait for its reply.
    pub fn request(&mut self, req: &ModemRequest) -> Result<ModemReply, ClientError> {
        self.request_line(&req.to_line())
    }

    /// Send a raw line (tests of malformed input use this) and wait for the reply.
    pub fn request_line(&mut self, line: &str) -> Result<ModemReply, ClientError> {
        let mut buf = line.replace('\n', " ");
        buf.push('\n');
        let timed_out = |e: std::io::Error, ms| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ClientError::Timeout(ms)
            }
            _ => ClientError::Io(e),
        };
        let ms = self.timeout.as_millis();
        self.writer
            .write_all(buf.as_bytes())
            .map_err(|e| timed_out(e, ms))?;
        let mut reply = String::new();
        let n = self
            .reader
            .read_line(&mut reply)
            .map_err(|e| timed_out(e, ms))?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(reply.trim())
            .map_err(|e| ClientError::BadReply(format!("{e}: {reply}")))
    }

    /// `status`, decoded.
    pub fn status(&mut self) -> Result<ModemStatus, ClientError> {
        self.request(&ModemRequest::Status)?
            .result_as()
            .map_err(ClientError::BadReply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn control() -> Value {
        serde_json::json!({
            "workmode": 1, "phy_cell_ID": 7, "group_ID": 2, "cell_ID": 1,
            "CPtype": 0, "BW": 1.4, "RBIdx": 6, "duplexMode": 0,
            "numAntennaTX": 1, "numAntennaRX": 1, "DLULAssign": 1,
            "trans_mode": 1, "type_mode": 1, "RNTI": 1000
        })
    }

    /// A modem that accepts but never answers (its loop busy) costs the client's timeout
    /// and a `Timeout` that says so; one that dies (closes) is `Closed` at once.
    #[test]
    fn a_silent_modem_times_out_and_a_dead_one_closes() {
        let dir = std::env::temp_dir().join(format!("ferry-proto-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("silent.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let mut c = ModemClient::connect(&path, Duration::from_millis(100)).expect("connect");
        let (peer, _) = listener.accept().expect("accept");
        match c.request(&ModemRequest::Status) {
            Err(e @ ClientError::Timeout(100)) => {
                assert_eq!(e.to_string(), "no reply within 100 ms")
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        drop(peer);
        assert!(matches!(
            c.request(&ModemRequest::Status),
            Err(ClientError::Closed | ClientError::Io(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_command_round_trips() {
        let c = Control::from_value(&control()).unwrap();
        let reqs = vec![
            ModemRequest::Status,
            ModemRequest::GetControl,
            ModemRequest::SetControl { control: c },
            ModemRequest::GetRoutes,
            ModemRequest::SetRoutes {
                routes: RouteList::from_value(&serde_json::json!([[3, 1], [1, 1]])).unwrap(),
            },
            ModemRequest::Start { control_flag: 1 },
            ModemRequest::Shadow,
            ModemRequest::HotStandby,
            ModemRequest::TakeoverAt {
                at_sample: 1920,
                forward_token: Some(ForwardToken::from_bytes([7; 32])),
            },
            ModemRequest::ReleaseAt {
                at_sample: 3840,
                forward_to: "192.168.30.2:7777".parse().unwrap(),
                forward_token: Some(ForwardToken::from_bytes([7; 32])),
            },
            ModemRequest::CancelCutover,
            ModemRequest::Quit,
        ];
        assert_eq!(reqs.len(), COMMANDS.len());
        for (r, name) in reqs.iter().zip(COMMANDS) {
            assert_eq!(r.name(), name);
            let line = r.to_line();
            assert!(line.contains(&format!("\"cmd\":\"{name}\"")), "{line}");
            assert_eq!(&parse_request(&line).unwrap(), r);
        }
    }

    #[test]
    fn wire_shapes() {
        assert_eq!(
            parse_request(r#"{"cmd":"release_at","at_sample":19200,"forward_to":"10.0.0.2:9000"}"#)
                .unwrap(),
            ModemRequest::ReleaseAt {
                at_sample: 19200,
                forward_to: "10.0.0.2:9000".parse().unwrap(),
                forward_token: None,
            }
        );
        assert_eq!(
            parse_request(r#"{"cmd":"set_routes","routes":[[4,1]]}"#).unwrap(),
            ModemRequest::SetRoutes {
                routes: RouteList::from_value(&serde_json::json!([[4, 1]])).unwrap()
            }
        );
        let reply = ModemReply::ok("get_routes", Some(serde_json::json!([[4, 1]])));
        assert_eq!(
            reply.to_line(),
            r#"{"ok":true,"cmd":"get_routes","result":[[4,1]]}"#
        );
        let reply = ModemReply::err("start", "wrong command");
        assert_eq!(
            reply.to_line(),
            r#"{"ok":false,"cmd":"start","error":"wrong command"}"#
        );
    }

    #[test]
    fn refusals_say_what_was_wrong() {
        let e = parse_request("{not json").unwrap_err();
        assert!(e.error.starts_with("malformed JSON"), "{e}");
        assert_eq!(e.cmd, None);
        let e = parse_request("[1,2]").unwrap_err();
        assert!(e.error.contains("JSON object"), "{e}");
        let e = parse_request(r#"{"x":1}"#).unwrap_err();
        assert!(e.error.contains("missing \"cmd\""), "{e}");
        let e = parse_request(r#"{"cmd":"fly"}"#).unwrap_err();
        assert_eq!(e.error, "wrong command");
        assert_eq!(e.cmd.as_deref(), Some("fly"));
        let e = parse_request(r#"{"cmd":"start","control_flag":2}"#).unwrap_err();
        assert!(e.error.contains("control_flag = 2"), "{e}");
        let e = parse_request(r#"{"cmd":"start"}"#).unwrap_err();
        assert!(e.error.contains("control_flag = missing"), "{e}");
        let e = parse_request(r#"{"cmd":"takeover_at","at_sample":-5}"#).unwrap_err();
        assert!(e.error.starts_with("bad arguments for takeover_at"), "{e}");
        let e = parse_request(r#"{"cmd":"release_at","at_sample":5,"forward_to":"nowhere"}"#)
            .unwrap_err();
        assert!(e.error.starts_with("bad arguments for release_at"), "{e}");
        let mut bad = control();
        bad["phy_cell_ID"] = 504.into();
        bad["BW"] = 7.into();
        bad["type_mode"] = 4.into();
        let line = serde_json::json!({"cmd":"set_control","control":bad}).to_string();
        let e = parse_request(&line).unwrap_err();
        for field in ["phy_cell_ID = 504", "BW = 7", "type_mode = 4"] {
            assert!(e.error.contains(field), "{field} not in {e}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,200}") {
            let _ = parse_request(&s);
        }

        #[test]
        fn json_objects_never_panic(cmd in prop::sample::select(COMMANDS.to_vec()),
                                    k in "[a-z_]{1,12}", n in any::<i64>()) {
            let line = serde_json::json!({"cmd": cmd, k: n}).to_string();
            let _ = parse_request(&line);
        }
    }
}
