//! The agent wire protocol as data: one JSON object per request (`{"cmd": ...}`), one reply
//! shape (`{"ok":true,"cmd":...,"result":...}` / `{"ok":false,"cmd":...,"kind":...,"error":...}`).
//!
//! Decoding arbitrary bytes never panics; an unknown `cmd` becomes a typed
//! [`ErrorKind::WrongCommand`] whose reply is the thesis' "wrong command".
//! The framing and authentication around these bodies is in [`crate::auth`].

use crate::control::{Control, RouteList};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

/// The per-migration key of the destination modem's forward port: made by the
/// make-before-break sequence, handed to both modems in `takeover_at` / `release_at`
/// (`forward_token`, 64 lowercase hex digits). The source seals every forwarded packet with
/// it and the destination accepts only packets sealed with it (docs/SECURITY.md).
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardToken([u8; 32]);

impl ForwardToken {
    /// A fresh token from the operating system's random source.
    pub fn random() -> ForwardToken {
        ForwardToken(rand::random())
    }

    /// A token with these bytes (tests, fixed keys).
    pub fn from_bytes(b: [u8; 32]) -> ForwardToken {
        ForwardToken(b)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        crate::auth::hex_encode(&self.0)
    }

    /// From 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ForwardToken> {
        let b = crate::auth::hex_decode(s.as_bytes())?;
        Some(ForwardToken(b.try_into().ok()?))
    }
}

impl fmt::Debug for ForwardToken {
    // A key does not belong in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForwardToken(..)")
    }
}

impl Serialize for ForwardToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ForwardToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ForwardToken, D::Error> {
        let s = String::deserialize(d)?;
        ForwardToken::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("forward_token must be 64 hex digits"))
    }
}

/// An IPv4 subnet (`a.b.c.d/len`), for the task subnet `set_tun_ip` must stay inside and the
/// host subnets it must stay out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Subnet {
    /// Network address (host bits are ignored).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Subnet {
    /// The subnet `addr/prefix` (prefix clamped to 32).
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Subnet {
        Ipv4Subnet {
            addr,
            prefix: if prefix > 32 { 32 } else { prefix },
        }
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == (u32::from(self.addr) & self.mask())
    }

    /// Network and broadcast address of the subnet (for /31 and /32 there are none).
    fn edges(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        if self.prefix >= 31 {
            return None;
        }
        let net = u32::from(self.addr) & self.mask();
        Some((Ipv4Addr::from(net), Ipv4Addr::from(net | !self.mask())))
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            self.prefix
        )
    }
}

impl std::str::FromStr for Ipv4Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Ipv4Subnet, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected a.b.c.d/len"))?;
        let addr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = p.parse().map_err(|e| format!("{s:?}: prefix: {e}"))?;
        if prefix > 32 {
            return Err(format!("{s:?}: prefix must be 0..=32"));
        }
        Ok(Ipv4Subnet { addr, prefix })
    }
}

/// The testbed's task subnet (`ferry_testbed::Topology`): where the tunnel addresses of D2D tasks live.
pub const DEFAULT_TASK_SUBNET: Ipv4Subnet = Ipv4Subnet::new(Ipv4Addr::new(192, 168, 40, 0), 24);

/// Addresses no tunnel may take whatever the subnets: unspecified, broadcast, multicast,
/// loopback, link-local, reserved (240/4). `Err` says why.
pub fn tun_ip_class_error(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.octets()[0] >= 240 {
        Some("a reserved (240.0.0.0/4) address")
    } else {
        None
    }
}

/// Whether `ip` may be a task's tunnel address: a unicast address inside `task`, not its
/// network or broadcast address, and outside every host subnet in `reserved` (management,
/// fronthaul: taking one would cut the host off). `Err` is the `bad_request` text.
pub fn check_tun_ip(ip: Ipv4Addr, task: Ipv4Subnet, reserved: &[Ipv4Subnet]) -> Result<(), String> {
    if let Some(why) = tun_ip_class_error(ip) {
        return Err(format!("tun_ip {ip} is {why}"));
    }
    if let Some(r) = reserved.iter().find(|r| r.contains(ip)) {
        return Err(format!(
            "tun_ip {ip} is in the host subnet {r} (management / fronthaul); the task subnet is {task}"
        ));
    }
    if !task.contains(ip) {
        return Err(format!("tun_ip {ip} is outside the task subnet {task}"));
    }
    if task.edges().is_some_and(|(net, bc)| ip == net || ip == bc) {
        return Err(format!(
            "tun_ip {ip} is the network or broadcast address of the task subnet {task}"
        ));
    }
    Ok(())
}

/// Largest request or reply body accepted, in bytes.
pub const MAX_BODY: usize = ferry_auth::MAX_BODY;

/// How the destination modem starts (`start_d2d` field `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// Serve at once (the thesis' only mode).
    Normal,
    /// Make-before-break: receive the radio's shadow copy and synchronise, but neither
    /// deliver to the tun nor transmit until told `takeover_at`.
    Shadow,
    /// Protection (`ferry ctl protect`): a shadow that is also a hot standby — it sends
    /// filler the radio queues but plays only if it fails the primary over to this host,
    /// and serves from the radio's failover notice on.
    Standby,
}

/// `start_d2d` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct StartD2d {
    /// `control_flag`: `true` (1) starts warm with `Control`, `false` (0) starts cold.
    pub warm: bool,
    /// `Control`, present exactly when `control_flag` = 1.
    pub control: Option<Control>,
    /// `mode`, default `normal`.
    pub mode: StartMode,
}

/// A request to an agent: the thesis' destination commands (3.5) plus Ferry's
/// make-before-break commands.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `start_usrp`: eth3 = active address, probe, start the USRP process with full init.
    StartUsrp,
    /// `make_usrp`: create the device object, buffers, metadata (no init).
    MakeUsrp,
    /// `link_usrp`: eth3 = active address, probe, `get_device` link.
    LinkUsrp,
    /// `start_d2d`: start the D2D program (warm with Control, or cold).
    StartD2d(StartD2d),
    /// `kill_usrp`: eth3 = parked address, kill the USRP process.
    KillUsrp,
    /// `kill_d2d`: kill the D2D program, stop the collector.
    KillD2d,
    /// `double_kill`: kill both, eth3 = parked address, stop the collector.
    DoubleKill,
    /// `get_tun_ip`.
    GetTunIp,
    /// `set_tun_ip` with `tun_ip`.
    SetTunIp(Ipv4Addr),
    /// `get_control`: the agent's latest `Control`.
    GetControl,
    /// `set_route` with `route_list` (relay, chapter 4).
    SetRoute(RouteList),
    /// `get_route` (Ferry): the agent's latest `route_list`, for migrating a relay back.
    GetRoute,
    /// `end`: the agent exits after replying.
    End,
    /// `status` (Ferry): processes, addresses and the modem's cutover state.
    Status,
    /// `takeover_at` (Ferry): a shadow modem delivers and transmits from radio sample `at`.
    TakeoverAt {
        /// Radio sample time of the cutover subframe boundary.
        at: u64,
        /// The migration's forward-port key (the destination accepts packets sealed with it).
        forward_token: ForwardToken,
    },
    /// `release_at` (Ferry): the serving modem stops delivering/transmitting at sample `at`
    /// and forwards what it holds or still receives for the far end to `forward_to`.
    ReleaseAt {
        /// Radio sample time of the cutover subframe boundary.
        at: u64,
        /// The destination modem's forwarding endpoint.
        forward_to: SocketAddr,
        /// The migration's forward-port key (the source seals forwarded packets with it).
        forward_token: ForwardToken,
    },
    /// `cancel_cutover` (Ferry): forget an armed `takeover_at` / `release_at`.
    CancelCutover,
    /// `observe` (Ferry): `status` for a monitor (load reporter, dashboard): the same reply,
    /// but it does not renew the agent's lease (`crate::lease`), so a monitor polling every
    /// second cannot keep a dead controller's leftover alive.
    Observe,
}

/// Every command name, in documentation order.
pub const COMMANDS: [&str; 18] = [
    "start_usrp",
    "make_usrp",
    "link_usrp",
    "start_d2d",
    "kill_usrp",
    "kill_d2d",
    "double_kill",
    "get_tun_ip",
    "set_tun_ip",
    "get_control",
    "set_route",
    "get_route",
    "end",
    "status",
    "takeover_at",
    "release_at",
    "cancel_cutover",
    "observe",
];

impl Request {
    /// The wire name (`cmd`).
    pub fn cmd(&self) -> &'static str {
        match self {
            Request::StartUsrp => "start_usrp",
            Request::MakeUsrp => "make_usrp",
            Request::LinkUsrp => "link_usrp",
            Request::StartD2d(_) => "start_d2d",
            Request::KillUsrp => "kill_usrp",
            Request::KillD2d => "kill_d2d",
            Request::DoubleKill => "double_kill",
            Request::GetTunIp => "get_tun_ip",
            Request::SetTunIp(_) => "set_tun_ip",
            Request::GetControl => "get_control",
            Request::SetRoute(_) => "set_route",
            Request::GetRoute => "get_route",
            Request::End => "end",
            Request::Status => "status",
            Request::TakeoverAt { .. } => "takeover_at",
            Request::ReleaseAt { .. } => "release_at",
            Request::CancelCutover => "cancel_cutover",
            Request::Observe => "observe",
        }
    }

    /// A request whose work takes seconds, not a round trip: a process start (the modem
    /// links and tunes its radio before it answers), a full USRP init, a probe-then-link.
    /// Callers give these their slow deadline (`ferry ctl --slow-timeout-ms`).
    pub fn is_slow(&self) -> bool {
        matches!(
            self,
            Request::StartUsrp | Request::LinkUsrp | Request::StartD2d(_)
        )
    }

    /// Whether a controller asking this renews the agent's lease on what its migration
    /// leaves (`crate::lease`): everything but a monitor's `observe`.
    pub fn renews_lease(&self) -> bool {
        !matches!(self, Request::Observe)
    }

    /// The JSON body.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("cmd".into(), self.cmd().into());
        match self {
            Request::StartD2d(s) => {
                m.insert("control_flag".into(), u8::from(s.warm).into());
                if let Some(c) = &s.control {
                    m.insert("Control".into(), c.to_value());
                }
                if s.mode != StartMode::Normal {
                    m.insert("mode".into(), json!(s.mode));
                }
            }
            Request::SetTunIp(ip) => {
                m.insert("tun_ip".into(), ip.to_string().into());
            }
            Request::SetRoute(r) => {
                m.insert("route_list".into(), r.to_value());
            }
            Request::TakeoverAt { at, forward_token } => {
                m.insert("at_sample".into(), (*at).into());
                m.insert("forward_token".into(), forward_token.to_hex().into());
            }
            Request::ReleaseAt {
                at,
                forward_to,
                forward_token,
            } => {
                m.insert("at_sample".into(), (*at).into());
                m.insert("forward_to".into(), forward_to.to_string().into());
                m.insert("forward_token".into(), forward_token.to_hex().into());
            }
            _ => {}
        }
        Value::Object(m)
    }

    /// Body bytes as sent.
    pub fn encode(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }

    /// Decode a request body. Never panics; every failure is typed and carries the `cmd`
    /// when one could be read, so the agent can always answer with a [`Reply`].
    pub fn decode(body: &[u8]) -> Result<Request, RequestError> {
        if body.len() > MAX_BODY {
            return Err(RequestError::new(
                None,
                ErrorKind::BadRequest,
                format!("body of {} bytes exceeds {MAX_BODY}", body.len()),
            ));
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            RequestError::new(None, ErrorKind::BadRequest, format!("not JSON: {e}"))
        })?;
        Request::from_value(&v)
    }

    /// Decode an already-parsed JSON body.
    pub fn from_value(v: &Value) -> Result<Request, RequestError> {
        let Some(m) = v.as_object() else {
            return Err(RequestError::new(
                None,
                ErrorKind::BadRequest,
                "body must be a JSON object with a \"cmd\" string".into(),
            ));
        };
        let Some(cmd) = m.get("cmd").and_then(Value::as_str) else {
            return Err(RequestError::new(
                None,
                ErrorKind::BadRequest,
                "missing \"cmd\" string".into(),
            ));
        };
        let bad = |msg: String| RequestError::new(Some(cmd), ErrorKind::BadRequest, msg);
        let allowed: &[&str] = match cmd {
            "start_d2d" => &["control_flag", "Control", "mode"],
            "set_tun_ip" => &["tun_ip"],
            "set_route" => &["route_list"],
            "takeover_at" => &["at_sample", "forward_token"],
            "release_at" => &["at_sample", "forward_to", "forward_token"],
            c if COMMANDS.contains(&c) => &[],
            _ => {
                return Err(RequestError::new(
                    Some(cmd),
                    ErrorKind::WrongCommand,
                    "wrong command".into(),
                ))
            }
        };
        if let Some(extra) = m
            .keys()
            .find(|k| k.as_str() != "cmd" && !allowed.contains(&k.as_str()))
        {
            return Err(bad(format!("unexpected field \"{extra}\" for {cmd}")));
        }
        let at_sample = || {
            m.get("at_sample")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("\"at_sample\" must be a radio sample index >= 0".into()))
        };
        let forward_token = || {
            m.get("forward_token")
                .and_then(Value::as_str)
                .and_then(ForwardToken::from_hex)
                .ok_or_else(|| {
                    bad("\"forward_token\" must be the migration's forward-port key (64 hex digits)".into())
                })
        };
        Ok(match cmd {
            "start_usrp" => Request::StartUsrp,
            "make_usrp" => Request::MakeUsrp,
            "link_usrp" => Request::LinkUsrp,
            "kill_usrp" => Request::KillUsrp,
            "kill_d2d" => Request::KillD2d,
            "double_kill" => Request::DoubleKill,
            "get_tun_ip" => Request::GetTunIp,
            "get_control" => Request::GetControl,
            "get_route" => Request::GetRoute,
            "end" => Request::End,
            "status" => Request::Status,
            "cancel_cutover" => Request::CancelCutover,
            "observe" => Request::Observe,
            "start_d2d" => {
                let warm = match m.get("control_flag").and_then(Value::as_u64) {
                    Some(0) => false,
                    Some(1) => true,
                    _ => return Err(bad("\"control_flag\" must be 0 or 1".into())),
                };
                let control = match (warm, m.get("Control")) {
                    (true, Some(c)) => {
                        Some(Control::from_value(c).map_err(|e| bad(e.to_string()))?)
                    }
                    (true, None) => return Err(bad("control_flag = 1 needs \"Control\"".into())),
                    (false, Some(_)) => {
                        return Err(bad("control_flag = 0 must not carry \"Control\"".into()))
                    }
                    (false, None) => None,
                };
                let mode = match m.get("mode") {
                    None => StartMode::Normal,
                    Some(v) => match v.as_str() {
                        Some("normal") => StartMode::Normal,
                        Some("shadow") => StartMode::Shadow,
                        Some("standby") => StartMode::Standby,
                        _ => {
                            return Err(bad(
                                "\"mode\" must be \"normal\", \"shadow\" or \"standby\"".into(),
                            ))
                        }
                    },
                };
                if mode != StartMode::Normal && !warm {
                    return Err(bad(
                        format!("mode {:?} needs control_flag = 1", mode).to_lowercase()
                    ));
                }
                Request::StartD2d(StartD2d {
                    warm,
                    control,
                    mode,
                })
            }
            "set_tun_ip" => {
                let ip = m
                    .get("tun_ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Ipv4Addr>().ok())
                    .ok_or_else(|| bad("\"tun_ip\" must be a dotted IPv4 address".into()))?;
                if let Some(why) = tun_ip_class_error(ip) {
                    return Err(bad(format!("tun_ip {ip} is {why}")));
                }
                Request::SetTunIp(ip)
            }
            "set_route" => {
                let v = m
                    .get("route_list")
                    .ok_or_else(|| bad("missing \"route_list\"".into()))?;
                Request::SetRoute(RouteList::from_value(v).map_err(|e| bad(e.to_string()))?)
            }
            "takeover_at" => Request::TakeoverAt {
                at: at_sample()?,
                forward_token: forward_token()?,
            },
            "release_at" => {
                let at = at_sample()?;
                let forward_to = m
                    .get("forward_to")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<SocketAddr>().ok())
                    .ok_or_else(|| bad("\"forward_to\" must be \"ip:port\"".into()))?;
                Request::ReleaseAt {
                    at,
                    forward_to,
                    forward_token: forward_token()?,
                }
            }
            // Every name in COMMANDS is matched above; this arm keeps the match total.
            other => {
                return Err(RequestError::new(
                    Some(other),
                    ErrorKind::WrongCommand,
                    "wrong command".into(),
                ))
            }
        })
    }
}

/// Why a request failed (the `kind` of an error reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Unknown `cmd` (thesis: "wrong command").
    WrongCommand,
    /// Known command, malformed or invalid arguments.
    BadRequest,
    /// The command ran and a step failed (the message says which; rollbacks were done).
    Failed,
    /// The handler hit an unexpected error (thesis: "command raised"); the agent keeps serving.
    Raised,
    /// The agent is still executing another command.
    Busy,
    /// Authentication or replay check failed.
    Unauthorized,
    /// No reply within the request timeout (made by the requesting side, never sent).
    Timeout,
}

/// A request that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", cmd.as_deref().unwrap_or("(no cmd)"))]
pub struct RequestError {
    /// The `cmd` string if one was present.
    pub cmd: Option<String>,
    /// `wrong_command` or `bad_request`.
    pub kind: ErrorKind,
    /// Human-readable reason.
    pub message: String,
}

impl RequestError {
    fn new(cmd: Option<&str>, kind: ErrorKind, message: String) -> RequestError {
        // Echo at most 64 characters of a stranger's cmd.
        let cmd = cmd.map(|c| c.chars().take(64).collect());
        RequestError { cmd, kind, message }
    }

    /// The reply an agent sends for this error.
    pub fn to_reply(&self) -> Reply {
        Reply::fail(
            self.cmd.clone().unwrap_or_default(),
            self.kind,
            self.message.clone(),
        )
    }
}

/// The one reply shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command this answers (`""` if the request had none).
    pub cmd: String,
    /// Command-specific result when `ok` (absent for commands with none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Failure class when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    /// Failure message when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A reply body that is not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad reply: {0}")]
pub struct ReplyError(pub String);

impl Reply {
    /// Success with an optional result.
    pub fn ok(cmd: impl Into<String>, result: Option<Value>) -> Reply {
        Reply {
            ok: true,
            cmd: cmd.into(),
            result,
            kind: None,
            error: None,
        }
    }

    /// Failure.
    pub fn fail(cmd: impl Into<String>, kind: ErrorKind, error: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            cmd: cmd.into(),
            result: None,
            kind: Some(kind),
            error: Some(error.into()),
        }
    }

    /// The thesis' "command raised" reply for an unexpected handler error.
    pub fn raised(cmd: impl Into<String>, what: impl fmt::Display) -> Reply {
        Reply::fail(cmd, ErrorKind::Raised, format!("command raised: {what}"))
    }

    /// Body bytes as sent.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"ok":false,"cmd":""}"#.to_vec())
    }

    /// Decode and check a reply body (never panics).
    pub fn decode(body: &[u8]) -> Result<Reply, ReplyError> {
        if body.len() > MAX_BODY {
            return Err(ReplyError(format!(
                "{} bytes exceeds {MAX_BODY}",
                body.len()
            )));
        }
        let r: Reply = serde_json::from_slice(body).map_err(|e| ReplyError(e.to_string()))?;
        match (r.ok, r.kind.is_some(), r.error.is_some()) {
            (true, false, false) | (false, true, true) => Ok(r),
            _ => Err(ReplyError(
                "ok=true needs no kind/error; ok=false needs both".into(),
            )),
        }
    }

    /// Text for a failure report: the error, or "ok".
    pub fn describe(&self) -> String {
        if self.ok {
            "ok".into()
        } else {
            self.error.clone().unwrap_or_else(|| "failed".into())
        }
    }

    fn result_or(&self, what: &str) -> Result<&Value, String> {
        match (&self.result, self.ok) {
            (Some(v), true) => Ok(v),
            (_, false) => Err(self.describe()),
            (None, true) => Err(format!("{} reply carries no {what}", self.cmd)),
        }
    }

    /// The `tun_ip` result of `get_tun_ip`.
    pub fn tun_ip(&self) -> Result<Ipv4Addr, String> {
        self.result_or("tun_ip")?
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "get_tun_ip result is not an IPv4 address".into())
    }

    /// The `Control` result of `get_control`, validated.
    pub fn control(&self) -> Result<Control, String> {
        Control::from_value(self.result_or("Control")?).map_err(|e| e.to_string())
    }

    /// The `route_list` result of `get_route`, validated.
    pub fn routes(&self) -> Result<RouteList, String> {
        RouteList::from_value(self.result_or("route_list")?).map_err(|e| e.to_string())
    }

    /// The result of `status`.
    pub fn status(&self) -> Result<HostStatus, String> {
        serde_json::from_value(self.result_or("status")?.clone())
            .map_err(|e| format!("bad status result: {e}"))
    }
}

/// Cutover state of a modem (make-before-break).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModemMode {
    /// Serving: delivers to its tun and transmits.
    Active,
    /// Receiving the radio's shadow copy only.
    Shadow,
    /// Shadow with `takeover_at` armed.
    TakeoverArmed,
    /// Serving with `release_at` armed.
    ReleaseArmed,
    /// Past its release time: no longer delivers or transmits; forwards what it holds.
    Released,
    /// A newer radio epoch names another host: transmits and delivers nothing.
    Fenced,
}

/// The modem part of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModemStatus {
    /// Cutover state.
    pub mode: ModemMode,
    /// Locked to the cell's frame timing (PSS/SSS found, CFO tracked).
    pub synced: bool,
    /// Armed cutover sample, if any.
    #[serde(default)]
    pub cutover_at: Option<u64>,
    /// Packets still waiting to be forwarded to the destination after a release.
    #[serde(default)]
    pub forward_pending: u32,
    /// The modem's air-use counters since it started (MAC bytes its link offered, and of
    /// those the bytes that carried something); a pool's load reporter turns their change
    /// into the cell's PRB use (docs/POOL.md, "Demand"). 0 from an older agent.
    #[serde(default)]
    pub air_capacity_bytes: u64,
    #[serde(default)]
    pub air_payload_bytes: u64,
}

/// The result of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// D2D program (modem) process running.
    pub d2d: bool,
    /// USRP process / device object present.
    pub usrp: bool,
    /// The Control / route collector runs.
    #[serde(default)]
    pub collector: bool,
    /// Process id of the D2D program (modem), when one runs.
    #[serde(default)]
    pub modem_pid: Option<u32>,
    /// Current eth3 (fronthaul) address, if any.
    #[serde(default)]
    pub eth3: Option<Ipv4Addr>,
    /// Current tun address, if any.
    #[serde(default)]
    pub tun_ip: Option<Ipv4Addr>,
    /// Modem cutover state, when a modem runs.
    #[serde(default)]
    pub modem: Option<ModemStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_renews_the_lease_but_a_monitors_observe() {
        let quiet: Vec<&str> = COMMANDS
            .iter()
            .filter_map(|c| Request::decode(format!(r#"{{"cmd":"{c}"}}"#).as_bytes()).ok())
            .filter(|r| !r.renews_lease())
            .map(|r| r.cmd())
            .collect();
        assert_eq!(quiet, ["observe"]);
        assert!(Request::Status.renews_lease());
    }

    #[test]
    fn process_starts_and_usrp_init_are_slow_round_trips_are_not() {
        let slow: Vec<&str> = [
            r#"{"cmd":"start_d2d","control_flag":0}"#,
            r#"{"cmd":"start_usrp"}"#,
            r#"{"cmd":"link_usrp"}"#,
            r#"{"cmd":"status"}"#,
            r#"{"cmd":"make_usrp"}"#,
            r#"{"cmd":"cancel_cutover"}"#,
            r#"{"cmd":"get_tun_ip"}"#,
        ]
        .iter()
        .filter_map(|b| Request::decode(b.as_bytes()).ok())
        .filter(Request::is_slow)
        .map(|r| r.cmd())
        .collect();
        assert_eq!(slow, ["start_d2d", "start_usrp", "link_usrp"]);
    }

    fn control_json() -> Value {
        json!({
            "workmode": 0, "phy_cell_ID": 0, "group_ID": 0, "cell_ID": 0,
            "CPtype": 0, "BW": 10, "RBIdx": 50, "duplexMode": 1,
            "numAntennaTX": 2, "numAntennaRX": 2, "DLULAssign": 0,
            "trans_mode": 2, "type_mode": 1, "RNTI": 1000
        })
    }

    #[test]
    fn every_request_round_trips() {
        let control = Control::from_value(&control_json()).expect("valid");
        let reqs = vec![
            Request::StartUsrp,
            Request::MakeUsrp,
            Request::LinkUsrp,
            Request::StartD2d(StartD2d {
                warm: true,
                control: Some(control),
                mode: StartMode::Shadow,
            }),
            Request::StartD2d(StartD2d {
                warm: false,
                control: None,
                mode: StartMode::Normal,
            }),
            Request::StartD2d(StartD2d {
                warm: true,
                control: Some(Control::from_value(&control_json()).expect("valid")),
                mode: StartMode::Standby,
            }),
            Request::KillUsrp,
            Request::KillD2d,
            Request::DoubleKill,
            Request::GetTunIp,
            Request::SetTunIp(Ipv4Addr::new(192, 168, 40, 9)),
            Request::GetControl,
            Request::SetRoute(RouteList::from_value(&json!([[1, 2]])).expect("valid")),
            Request::GetRoute,
            Request::End,
            Request::Status,
            Request::TakeoverAt {
                at: 42,
                forward_token: ForwardToken::from_bytes([1; 32]),
            },
            Request::ReleaseAt {
                at: 42,
                forward_to: "10.0.0.2:7000".parse().expect("addr"),
                forward_token: ForwardToken::from_bytes([2; 32]),
            },
            Request::CancelCutover,
            Request::Observe,
        ];
        let names: std::collections::BTreeSet<&str> = reqs.iter().map(Request::cmd).collect();
        assert_eq!(names.len(), COMMANDS.len());
        for r in reqs {
            assert_eq!(Request::decode(&r.encode()), Ok(r.clone()), "{}", r.cmd());
        }
    }

    #[test]
    fn unknown_and_malformed_requests_are_typed() {
        let e = Request::decode(br#"{"cmd":"format_disk"}"#).expect_err("unknown");
        assert_eq!(e.kind, ErrorKind::WrongCommand);
        assert_eq!(
            e.to_reply().encode(),
            br#"{"ok":false,"cmd":"format_disk","kind":"wrong_command","error":"wrong command"}"#
        );
        let cases: [(&[u8], &str); 7] = [
            (b"\xff\xfe", "not JSON"),
            (b"[1,2]", "JSON object"),
            (
                br#"{"cmd":"start_d2d","control_flag":1}"#,
                "needs \"Control\"",
            ),
            (br#"{"cmd":"start_d2d","control_flag":2}"#, "0 or 1"),
            (br#"{"cmd":"set_tun_ip","tun_ip":"1.2.3"}"#, "IPv4"),
            (br#"{"cmd":"kill_d2d","now":true}"#, "unexpected field"),
            (
                br#"{"cmd":"set_route","route_list":[[1]]}"#,
                "route_list[0]",
            ),
        ];
        for (body, needle) in cases {
            let e = Request::decode(body).expect_err("malformed");
            assert_eq!(e.kind, ErrorKind::BadRequest);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        }
        let e = Request::decode(
            &json!({"cmd":"start_d2d","control_flag":1,"Control":{"workmode":9}})
                .to_string()
                .into_bytes(),
        )
        .expect_err("bad control");
        assert!(e.message.contains("workmode = 9: must be 0 (master)"));
    }

    #[test]
    fn reply_shape_and_accessors() {
        let r = Reply::ok("get_tun_ip", Some(json!("192.168.40.9")));
        assert_eq!(
            r.encode(),
            br#"{"ok":true,"cmd":"get_tun_ip","result":"192.168.40.9"}"#
        );
        assert_eq!(
            Reply::decode(&r.encode()).and_then(|r| r.tun_ip().map_err(ReplyError)),
            Ok(Ipv4Addr::new(192, 168, 40, 9))
        );
        let raised = Reply::raised("kill_d2d", "no such process");
        assert_eq!(raised.describe(), "command raised: no such process");
        assert!(Reply::decode(br#"{"ok":false,"cmd":"x"}"#).is_err());
        assert!(Reply::decode(br#"{"ok":true,"cmd":"x","error":"e","kind":"failed"}"#).is_err());
        let st = HostStatus {
            d2d: true,
            usrp: false,
            collector: true,
            modem_pid: Some(4242),
            eth3: None,
            tun_ip: None,
            modem: Some(ModemStatus {
                mode: ModemMode::Shadow,
                synced: true,
                cutover_at: None,
                forward_pending: 0,
                air_capacity_bytes: 77_000,
                air_payload_bytes: 40_000,
            }),
        };
        let r = Reply::ok("status", serde_json::to_value(&st).ok());
        assert_eq!(r.status(), Ok(st));
    }

    #[test]
    fn tun_addresses_outside_the_task_subnet_are_refused() {
        let task = DEFAULT_TASK_SUBNET;
        let host = [
            Ipv4Subnet::new(Ipv4Addr::new(10, 99, 0, 0), 24),
            Ipv4Subnet::new(Ipv4Addr::new(192, 168, 10, 0), 24),
        ];
        assert_eq!(
            check_tun_ip(Ipv4Addr::new(192, 168, 40, 9), task, &host),
            Ok(())
        );
        for (ip, why) in [
            ("0.0.0.0", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("127.0.0.1", "loopback"),
            ("169.254.1.1", "link-local"),
            ("240.0.0.1", "reserved"),
            ("10.99.0.1", "host subnet 10.99.0.0/24"),
            ("192.168.10.11", "host subnet 192.168.10.0/24"),
            ("8.8.8.8", "outside the task subnet 192.168.40.0/24"),
            ("192.168.40.0", "network or broadcast"),
            ("192.168.40.255", "network or broadcast"),
        ] {
            let e = check_tun_ip(ip.parse().unwrap(), task, &host).unwrap_err();
            assert!(e.contains(why), "{ip}: {e}");
        }
        // Class errors are refused at decode time already, as bad_request.
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "127.0.0.1",
            "169.254.1.1",
        ] {
            let body = format!(r#"{{"cmd":"set_tun_ip","tun_ip":"{ip}"}}"#);
            let e = Request::decode(body.as_bytes()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadRequest, "{ip}");
        }
        assert_eq!(
            "10.1.2.3/8".parse::<Ipv4Subnet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!("10.1.2.3/33".parse::<Ipv4Subnet>().is_err());
    }
}
