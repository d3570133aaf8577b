//! The modem side of the fronthaul: [`ControlClient`] speaks link control over ZeroMQ with
//! timeouts (never hangs), and [`RadioLink`] is the thesis' USRP object: `create` binds the
//! socket and allocates buffers (the `make_usrp` step), `link` asks the radio to stream to
//! it, then timestamped `recv` / `send` of IQ blocks, `unlink`, drop.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::LinkAuth;

use ferry_fronthaul::control::{ControlError, ErrorCode, RadioInfo, Reply, Request, StatusReport};
use ferry_fronthaul::notice::NoticeRepr;
use ferry_fronthaul::probe::{self, ProbeAnswer};
use ferry_fronthaul::vrt::{
    emit_data_cf32, emit_data_i16, mark_end_of_burst, ContextRepr, DataRepr, Direction, Packet,
    PacketType, SampleTime, StreamId, Timestamp, WireError,
};
use num_complex::Complex32;
use thiserror::Error;

/// Failures of the client side.
#[derive(Debug, Error)]
pub enum RadioError {
    /// Link control did not answer in time.
    #[error("link control at {endpoint} did not answer within {timeout:?} (is `ferry air` running there?)")]
    Timeout {
        /// ZeroMQ endpoint.
        endpoint: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// ZeroMQ failed (bad endpoint string, ...).
    #[error("ZeroMQ error talking to {endpoint}: {source}")]
    Zmq {
        /// Endpoint.
        endpoint: String,
        /// Cause.
        source: zmq::Error,
    },
    /// The radio does not exist or is not ready.
    #[error("radio {radio:?} not found: {message}")]
    NotFound {
        /// Name.
        radio: String,
        /// Server's reason.
        message: String,
    },
    /// The radio refused the request.
    #[error("radio refused ({code:?}): {message}")]
    Refused {
        /// Class.
        code: ErrorCode,
        /// Reason.
        message: String,
    },
    /// The reply was not the kind expected.
    #[error("unexpected reply from link control: {0}")]
    Unexpected(String),
    /// The reply did not decode.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Socket error.
    #[error("fronthaul socket: {0}")]
    Io(#[from] io::Error),
    /// No RX data in time.
    #[error("no RX samples within {0:?}")]
    RxTimeout(Duration),
    /// Bad samples to send.
    #[error("cannot encode TX: {0}")]
    Wire(#[from] WireError),
    /// The discovery probe got no answer.
    #[error("radio at {addr} did not answer {tries} discovery probes")]
    NoProbeAnswer {
        /// Radio fronthaul address.
        addr: SocketAddr,
        /// Tries made.
        tries: u32,
    },
    /// The radio did not take a requested centre frequency (out of its range), or did not
    /// answer the tuning request in time (`got` is then `None`).
    #[error("radio did not tune its {lo} LO to {wanted} Hz: {}", match got { Some(g) => format!("it stays at {g} Hz (outside the device's range?)"), None => "no answer".to_string() })]
    Tuning {
        /// "TX" or "RX".
        lo: &'static str,
        /// Requested frequency.
        wanted: f64,
        /// Frequency the radio reports, if it answered.
        got: Option<f64>,
    },
    /// The advertised endpoint is unusable.
    #[error("cannot advertise {0}: bind to a concrete IP or set `advertise`")]
    Unadvertisable(SocketAddr),
}

/// A link-control client. Each request uses a fresh REQ socket so a lost reply never leaves
/// the client stuck in ZeroMQ's strict send/receive alternation.
pub struct ControlClient {
    ctx: zmq::Context,
    endpoint: String,
    timeout: Duration,
    auth: Option<LinkAuth>,
    me: String,
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("auth", &self.auth.as_ref().map(|a| &a.identity))
            .finish()
    }
}

impl ControlClient {
    /// A client of the link-control socket at `endpoint` (e.g. `tcp://127.0.0.1:5550`).
    pub fn new(endpoint: impl Into<String>, timeout: Duration) -> Self {
        Self {
            ctx: zmq::Context::new(),
            endpoint: endpoint.into(),
            timeout,
            auth: None,
            me: "client".into(),
        }
    }

    /// Sign every request with `auth.key` for the radio room `auth.identity` (and check
    /// that replies come from it); `None` sends unsigned requests, which a keyed air refuses.
    pub fn with_auth(mut self, auth: Option<LinkAuth>) -> Self {
        self.auth = auth;
        self
    }

    /// The sender identity signed into requests (for the air's logs; default `client`).
    pub fn with_name(mut self, me: impl Into<String>) -> Self {
        self.me = me.into();
        self
    }

    /// The authentication in use.
    pub fn auth(&self) -> Option<&LinkAuth> {
        self.auth.as_ref()
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends a request and returns the reply (including `error` replies).
    pub fn request(&self, req: &Request) -> Result<Reply, RadioError> {
        let r = self.request_once(req)?;
        // A request ZeroMQ queued while the air was still starting reaches it signed before
        // its start and is refused (the air takes nothing from before it started, so it
        // cannot be replayed into). The refusal is signed by the air: sign anew, once.
        if self.auth.is_some() {
            if let Reply::Error {
                code: ErrorCode::Unauthorized,
                message,
            } = &r
            {
                if message.contains("before this receiver started") {
                    return self.request_once(req);
                }
            }
        }
        Ok(r)
    }

    fn request_once(&self, req: &Request) -> Result<Reply, RadioError> {
        let zerr = |source| RadioError::Zmq {
            endpoint: self.endpoint.clone(),
            source,
        };
        let s = self.ctx.socket(zmq::REQ).map_err(zerr)?;
        let ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        s.set_linger(0).map_err(zerr)?;
        // Replies are bounded frames too: a peer sending more is cut off before buffering.
        s.set_maxmsgsize(MAX_REPLY_FRAME as i64).map_err(zerr)?;
        s.set_sndtimeo(ms).map_err(zerr)?;
        s.set_rcvtimeo(ms).map_err(zerr)?;
        s.connect(&self.endpoint).map_err(zerr)?;
        let timeout = || RadioError::Timeout {
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
        };
        let body = req.to_bytes();
        let (frames, nonce) = match &self.auth {
            Some(a) => {
                let nonce: [u8; 16] = rand::random();
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    .unwrap_or(0);
                let f = ferry_auth::seal_request(&a.key, ts, nonce, &self.me, &a.identity, &body);
                (f, Some(ferry_auth::hex_encode(&nonce)))
            }
            None => (vec![body], None),
        };
        match s.send_multipart(frames, 0) {
            Err(zmq::Error::EAGAIN) => return Err(timeout()),
            Err(e) => return Err(zerr(e)),
            Ok(()) => {}
        }
        let got = match s.recv_multipart(0) {
            Ok(f) => f,
            Err(zmq::Error::EAGAIN) => return Err(timeout()),
            Err(e) => return Err(zerr(e)),
        };
        match (&self.auth, nonce) {
            (Some(a), Some(nonce)) => {
                let o = ferry_auth::open_reply(&a.key, &got, &self.me, &a.identity, &nonce)
                    .map_err(|e| RadioError::Unexpected(format!("reply does not verify: {e}")))?;
                Ok(Reply::from_bytes(&o.body)?)
            }
            _ => match got.as_slice() {
                [one] => Ok(Reply::from_bytes(one)?),
                f => Err(RadioError::Unexpected(format!(
                    "{} reply frames (the air wants signed requests: give its key)",
                    f.len()
                ))),
            },
        }
    }

    /// Like [`ControlClient::request`] but an `error` reply becomes a [`RadioError`].
    pub fn call(&self, req: &Request) -> Result<Reply, RadioError> {
        match self.request(req)? {
            Reply::Error { code, message } => Err(match code {
                ErrorCode::UnknownRadio | ErrorCode::NotReady => RadioError::NotFound {
                    radio: radio_of(req),
                    message,
                },
                code => RadioError::Refused { code, message },
            }),
            r => Ok(r),
        }
    }

    /// `discover` one radio (errors if it is not there or not ready).
    pub fn discover(&self, radio: &str) -> Result<RadioInfo, RadioError> {
        match self.call(&Request::Discover {
            radio: Some(radio.into()),
        })? {
            Reply::Found { radios } => {
                radios
                    .into_iter()
                    .next()
                    .ok_or_else(|| RadioError::NotFound {
                        radio: radio.into(),
                        message: "no answer".into(),
                    })
            }
            r => Err(RadioError::Unexpected(format!("{r:?}"))),
        }
    }

    /// `status` of one radio.
    pub fn status(&self, radio: &str) -> Result<(SampleTime, StatusReport), RadioError> {
        match self.call(&Request::Status {
            radio: Some(radio.into()),
        })? {
            Reply::Status {
                sample_time,
                mut radios,
                ..
            } if !radios.is_empty() => Ok((sample_time, radios.remove(0))),
            r => Err(RadioError::Unexpected(format!("{r:?}"))),
        }
    }
}

fn radio_of(req: &Request) -> String {
    match req {
        Request::Discover { radio } | Request::Status { radio } => {
            radio.clone().unwrap_or_default()
        }
        Request::Link { radio, .. }
        | Request::Unlink { radio, .. }
        | Request::Shadow { radio, .. }
        | Request::Unshadow { radio, .. }
        | Request::SwitchAt { radio, .. }
        | Request::SwitchAtFallback { radio, .. }
        | Request::CancelSwitch { radio }
        | Request::Protect { radio, .. }
        | Request::PrimaryDead { radio, .. }
        | Request::Capture { radio, .. }
        | Request::StopCapture { radio }
        | Request::Reset { radio } => radio.clone(),
    }
}

/// How to reach a radio.
#[derive(Debug, Clone)]
pub struct RadioLinkConfig {
    /// Link-control endpoint of `ferry air`.
    pub control: String,
    /// Radio name.
    pub radio: String,
    /// Local UDP address to bind (port 0 = any).
    pub bind: SocketAddr,
    /// Address to give the radio if `bind` is a wildcard.
    pub advertise: Option<SocketAddr>,
    /// Timeout of each link-control request.
    pub timeout: Duration,
    /// Samples per TX packet.
    pub samples_per_packet: usize,
    /// Link-control key and the air's identity (`None`: unsigned requests).
    pub auth: Option<LinkAuth>,
}

impl RadioLinkConfig {
    /// Defaults: bind 127.0.0.1:0, 1 s timeout, samples per packet for a 1500-byte MTU (363).
    pub fn new(control: impl Into<String>, radio: impl Into<String>) -> Self {
        Self {
            control: control.into(),
            radio: radio.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            timeout: Duration::from_secs(1),
            samples_per_packet: ferry_fronthaul::vrt::DEFAULT_SAMPLES_PER_PACKET,
            auth: None,
        }
    }

    /// The same, signing link control with `auth`.
    pub fn with_auth(mut self, auth: Option<LinkAuth>) -> Self {
        self.auth = auth;
        self
    }
}

/// A block of received samples starting at `time`.
#[derive(Debug, Clone, PartialEq)]
pub struct RxBlock {
    /// Sample time of the first sample.
    pub time: SampleTime,
    /// Samples (full scale 1.0) of channel 0.
    pub samples: Vec<Complex32>,
    /// A two-channel radio's channel 1 over the same sample times (empty for one channel).
    pub other_channels: Vec<Vec<Complex32>>,
}

/// Receive-side bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Data packets received.
    pub rx_packets: u64,
    /// Samples missing between consecutive packets (lost on the fronthaul).
    pub rx_gap_samples: u64,
    /// Context packets received.
    pub context_packets: u64,
    /// Datagrams ignored (not from the radio, or undecodable).
    pub ignored: u64,
    /// Of `ignored`: datagrams from another address than the radio's.
    pub strangers: u64,
    /// Of `ignored`: data packets from the radio's address with another stream id.
    pub other_streams: u64,
    /// TX packets sent.
    pub tx_packets: u64,
    /// Authentic switch notices received from the radio.
    pub notices: u64,
    /// Data packets of a two-channel radio dropped because their other channel's packet
    /// (same timestamp and length) did not come.
    pub unpaired: u64,
    /// Switch notices that did not authenticate (or came without a key to check them).
    pub bad_notices: u64,
}

/// Largest link-control reply frame a client accepts (a status of many radios is a few
/// kB; 1 MiB leaves room for any air).
pub const MAX_REPLY_FRAME: usize = 1 << 20;

/// Switch notices kept until the modem takes them (the newest win).
pub const MAX_PENDING_NOTICES: usize = 16;

/// The modem's handle on one radio.
#[derive(Debug)]
pub struct RadioLink {
    control: Option<ControlClient>,
    radio: String,
    info: RadioInfo,
    socket: UdpSocket,
    endpoint: SocketAddr,
    buf: Vec<u8>,
    tx_buf: Vec<u8>,
    tx_count: u8,
    /// End (sample time) of the TX burst in progress per channel (0, 1), if any.
    burst_end: [Option<SampleTime>; 2],
    /// End-of-burst packets sent.
    bursts_ended: u64,
    spp: usize,
    linked: bool,
    next_rx: Option<SampleTime>,
    /// A two-channel radio's channel-0 packet waiting for its channel-1 twin.
    pending_rx: Option<(SampleTime, Vec<Complex32>)>,
    /// The latest context packet of the RX stream (rate, frequency, gain).
    pub last_context: Option<ContextRepr>,
    /// The latest context packet of the TX stream (the radio's answer to a tuning request).
    pub last_tx_context: Option<ContextRepr>,
    ctx_count: u8,
    /// RX-stream context packets seen, and how many had been seen when the last TX-stream
    /// context arrived (an RX context after a tuning answer is a fresh one).
    rx_ctx_seen: u64,
    rx_ctx_at_tx: u64,
    /// Counters.
    pub stats: LinkStats,
    /// Key the radio's switch notices are checked with (derived from the link-control key).
    notice_key: Option<Vec<u8>>,
    /// Authentic switch notices not yet taken, oldest first.
    pub notices: std::collections::VecDeque<NoticeRepr>,
}

impl RadioLink {
    /// `make`: finds the radio through link control, binds the fronthaul socket and
    /// allocates buffers. Fails clearly if `ferry air` does not answer or the radio is not
    /// there or not initialised.
    pub fn create(cfg: &RadioLinkConfig) -> Result<Self, RadioError> {
        let control = ControlClient::new(cfg.control.clone(), cfg.timeout)
            .with_auth(cfg.auth.clone())
            .with_name("modem");
        let info = control.discover(&cfg.radio)?;
        let mut link = Self::with_socket(cfg.bind, cfg.advertise, info, cfg.samples_per_packet)?;
        link.control = Some(control);
        link.radio = cfg.radio.clone();
        link.notice_key = cfg
            .auth
            .as_ref()
            .map(|a| a.key.derive(crate::server::NOTICE_KEY_LABEL));
        Ok(link)
    }

    /// A link to a legacy (address-bound) radio at `radio`: no link control; the radio
    /// streams to whoever holds its host address, so `bind` is usually `0.0.0.0:PORT`.
    pub fn create_legacy(
        bind: SocketAddr,
        radio: SocketAddr,
        number: u16,
        sample_rate_hz: u32,
    ) -> Result<Self, RadioError> {
        let info = RadioInfo {
            radio: format!("legacy@{radio}"),
            number,
            serial: String::new(),
            fronthaul: radio,
            sample_rate_hz,
            freq_hz: 0.0,
            legacy: true,
            channels: 1,
        };
        let adv = Some(bind);
        Self::with_socket(
            bind,
            adv,
            info,
            ferry_fronthaul::vrt::DEFAULT_SAMPLES_PER_PACKET,
        )
    }

    fn with_socket(
        bind: SocketAddr,
        advertise: Option<SocketAddr>,
        info: RadioInfo,
        spp: usize,
    ) -> Result<Self, RadioError> {
        let socket = UdpSocket::bind(bind)?;
        // 4 MiB (or the kernel's cap) absorbs ~0.5 s of 1.92 Msps if the modem stalls.
        let _ = crate::sys::set_socket_buffers(&socket, 4 << 20);
        // Non-blocking plus ppoll for waits: socket timeouts are too coarse (jiffies).
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let endpoint = match advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), local.port()),
            Some(a) => a,
            None if local.ip().is_unspecified() => return Err(RadioError::Unadvertisable(local)),
            None => local,
        };
        Ok(Self {
            control: None,
            radio: info.radio.clone(),
            info,
            socket,
            endpoint,
            buf: vec![0u8; 65_536],
            tx_buf: Vec::with_capacity(65_536),
            tx_count: 0,
            burst_end: [None; 2],
            bursts_ended: 0,
            spp: spp.clamp(1, ferry_fronthaul::vrt::MAX_SAMPLES),
            linked: false,
            next_rx: None,
            pending_rx: None,
            last_context: None,
            last_tx_context: None,
            ctx_count: 0,
            rx_ctx_seen: 0,
            rx_ctx_at_tx: 0,
            stats: LinkStats::default(),
            notice_key: None,
            notices: Default::default(),
        })
    }

    /// The address the radio streams to.
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint
    }
    /// The radio's identity.
    pub fn info(&self) -> &RadioInfo {
        &self.info
    }
    /// The link-control client (None for legacy links).
    pub fn control(&self) -> Option<&ControlClient> {
        self.control.as_ref()
    }

    fn ctl(&self) -> Result<&ControlClient, RadioError> {
        self.control.as_ref().ok_or_else(|| RadioError::Refused {
            code: ErrorCode::Refused,
            message: "legacy radio: no link control; move the host address instead".into(),
        })
    }

    /// Asks the radio to stream to this link; returns the sample time it took effect.
    pub fn link(&mut self) -> Result<SampleTime, RadioError> {
        let r = self.ctl()?.call(&Request::Link {
            radio: self.radio.clone(),
            endpoint: self.endpoint,
        })?;
        self.linked = true;
        self.next_rx = None;
        match r {
            Reply::Done { sample_time, .. } => Ok(sample_time),
            r => Err(RadioError::Unexpected(format!("{r:?}"))),
        }
    }

    /// Asks for a copy of the RX stream (make-before-break warm-up of a destination).
    pub fn shadow(&mut self) -> Result<SampleTime, RadioError> {
        match self.ctl()?.call(&Request::Shadow {
            radio: self.radio.clone(),
            endpoint: Some(self.endpoint),
        })? {
            Reply::Done { sample_time, .. } => Ok(sample_time),
            r => Err(RadioError::Unexpected(format!("{r:?}"))),
        }
    }

    /// Schedules the radio to move its link to this host at sample time `at`.
    pub fn take_over_at(&mut self, at: SampleTime) -> Result<(), RadioError> {
        self.ctl()?.call(&Request::SwitchAt {
            radio: self.radio.clone(),
            at,
            endpoint: self.endpoint,
        })?;
        self.linked = true;
        Ok(())
    }

    /// Stops the radio streaming to this host (refused if another host holds the link).
    pub fn unlink(&mut self) -> Result<(), RadioError> {
        self.ctl()?.call(&Request::Unlink {
            radio: self.radio.clone(),
            endpoint: Some(self.endpoint),
        })?;
        self.linked = false;
        Ok(())
    }

    /// Sends one discovery probe per try over the fronthaul (like `uhd_find_devices`, as
    /// the thesis probes up to 8 times) and returns the first answer.
    pub fn probe(&self, tries: u32, per_try: Duration) -> Result<ProbeAnswer, RadioError> {
        let sock = UdpSocket::bind(SocketAddr::new(self.socket.local_addr()?.ip(), 0))?;
        sock.set_read_timeout(Some(per_try.max(Duration::from_millis(1))))?;
        let mut buf = [0u8; 2048];
        for k in 0..tries {
            let nonce = 0x5000_0000 | k;
            // A send can fail while the address is unreachable (no route yet): keep trying.
            if sock
                .send_to(&probe::encode_probe(nonce), self.info.fronthaul)
                .is_err()
            {
                std::thread::sleep(per_try);
                continue;
            }
            let deadline = Instant::now() + per_try;
            while Instant::now() < deadline {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) if from == self.info.fronthaul => {
                        if let Ok((got, a)) = probe::decode_answer(&buf[..n]) {
                            if got == nonce {
                                return Ok(a);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        Err(RadioError::NoProbeAnswer {
            addr: self.info.fronthaul,
            tries,
        })
    }

    /// Receives the next block of samples (waiting at most `timeout`). Context packets
    /// update [`RadioLink::last_context`]; datagrams from anyone but the radio are ignored.
    /// From a two-channel radio a block holds both channels over the same sample times
    /// (channel 1 in [`RxBlock::other_channels`]); a packet whose twin on the other channel
    /// does not come is dropped and counted in `unpaired`.
    pub fn recv(&mut self, timeout: Duration) -> Result<RxBlock, RadioError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RadioError::RxTimeout(timeout));
            }
            let mut samples = Vec::new();
            let (time, channel) = match self.recv_with(left, |d| d.samples_cf32_into(&mut samples))
            {
                Err(RadioError::RxTimeout(_)) => return Err(RadioError::RxTimeout(timeout)),
                other => other?,
            };
            if self.info.channels <= 1 {
                return Ok(RxBlock {
                    time,
                    samples,
                    other_channels: Vec::new(),
                });
            }
            if channel == 0 {
                if self.pending_rx.replace((time, samples)).is_some() {
                    self.stats.unpaired += 1;
                }
                continue;
            }
            match self.pending_rx.take() {
                Some((t, first)) if t == time && first.len() == samples.len() => {
                    return Ok(RxBlock {
                        time,
                        samples: first,
                        other_channels: vec![samples],
                    });
                }
                Some(_) => self.stats.unpaired += 2,
                None => self.stats.unpaired += 1,
            }
        }
    }

    /// Like [`RadioLink::recv`] with raw (I, Q) sc16 pairs (channel 0 only).
    pub fn recv_i16(
        &mut self,
        timeout: Duration,
    ) -> Result<(SampleTime, Vec<(i16, i16)>), RadioError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RadioError::RxTimeout(timeout));
            }
            let mut samples = Vec::new();
            let (time, channel) = self.recv_with(left, |d| samples.extend(d.samples_i16()))?;
            if channel == 0 {
                return Ok((time, samples));
            }
        }
    }

    /// Channels (antennas) the radio streams.
    pub fn channels(&self) -> u8 {
        self.info.channels.max(1)
    }

    fn recv_with(
        &mut self,
        timeout: Duration,
        mut take: impl FnMut(&DataRepr<'_>),
    ) -> Result<(SampleTime, u8), RadioError> {
        let deadline = Instant::now() + timeout;
        let rate = self.info.sample_rate_hz;
        let want_sid = StreamId::new(self.info.number, Direction::Rx);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RadioError::RxTimeout(timeout));
            }
            let (n, from) = match self.socket.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::sys::wait_readable(&self.socket, left)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            // Legacy radios are identified by IP only (the source port is theirs to pick).
            let from_radio = from == self.info.fronthaul
                || (self.info.legacy && from.ip() == self.info.fronthaul.ip());
            let bytes = &self.buf[..n];
            if !from_radio {
                self.stats.ignored += 1;
                self.stats.strangers += 1;
                continue;
            }
            if NoticeRepr::is_notice(bytes) {
                // The radio's in-band switch notice (docs/FAULTS.md): kept only when it
                // authenticates under the radio room's key.
                match self
                    .notice_key
                    .as_deref()
                    .map(|k| NoticeRepr::parse_bytes(bytes, k))
                {
                    Some(Ok(n)) if n.stream_id == want_sid => {
                        self.stats.notices += 1;
                        if self.notices.len() >= MAX_PENDING_NOTICES {
                            self.notices.pop_front();
                        }
                        self.notices.push_back(n);
                    }
                    _ => self.stats.bad_notices += 1,
                }
                continue;
            }
            if let Ok(Ok(PacketType::IfContext)) =
                Packet::new_checked(bytes).map(|p| p.packet_type())
            {
                match ContextRepr::parse_bytes(bytes) {
                    Ok(c) => {
                        self.stats.context_packets += 1;
                        if c.stream_id == self.tx_sid() {
                            self.last_tx_context = Some(c);
                            self.rx_ctx_at_tx = self.rx_ctx_seen;
                        } else {
                            self.last_context = Some(c);
                            self.rx_ctx_seen += 1;
                        }
                    }
                    Err(_) => self.stats.ignored += 1,
                }
                continue;
            }
            let parsed = DataRepr::parse_bytes(bytes)
                .and_then(|d| d.timestamp.to_sample_time(rate).map(|t| (d, t)));
            match parsed {
                Ok((d, t))
                    if d.stream_id.radio() == want_sid.radio()
                        && d.stream_id.direction() == Some(Direction::Rx)
                        && d.stream_id.channel() < self.info.channels.max(1) =>
                {
                    let channel = d.stream_id.channel();
                    // Gaps are counted on channel 0 (both channels share the sample times).
                    if channel == 0 {
                        if let Some(exp) = self.next_rx {
                            self.stats.rx_gap_samples += t.saturating_sub(exp);
                        }
                        self.next_rx = Some(t + d.num_samples() as u64);
                    }
                    self.stats.rx_packets += 1;
                    take(&d);
                    return Ok((t, channel));
                }
                Ok(_) => {
                    self.stats.ignored += 1;
                    self.stats.other_streams += 1;
                }
                Err(_) => self.stats.ignored += 1,
            }
        }
    }

    /// Asks the radio to tune its TX LO to `tx_hz` and its RX LO to `rx_hz` (like
    /// `set_tx_freq` / `set_rx_freq`): one VITA-49 context packet per stream, carrying the RF
    /// reference frequency (docs/FRONTHAUL.md §3.3). Does not wait; the radio answers with
    /// context packets ([`RadioLink::last_tx_context`], [`RadioLink::last_context`]). Only
    /// the linked host may tune.
    pub fn request_tuning(&mut self, tx_hz: f64, rx_hz: f64) -> Result<(), RadioError> {
        for (dir, hz) in [(Direction::Tx, tx_hz), (Direction::Rx, rx_hz)] {
            let c = ContextRepr {
                stream_id: StreamId::new(self.info.number, dir),
                count: self.ctx_count,
                timestamp: Timestamp::from_sample_time(
                    self.next_rx.unwrap_or(0),
                    self.info.sample_rate_hz,
                )
                .unwrap_or(Timestamp { secs: 0, frac: 0 }),
                changed: true,
                bandwidth_hz: None,
                rf_freq_hz: Some(hz),
                gain_db: None,
                sample_rate_hz: None,
            };
            self.ctx_count = (self.ctx_count + 1) & 0xf;
            self.tx_buf.clear();
            c.emit(&mut self.tx_buf)?;
            self.socket.send_to(&self.tx_buf, self.info.fronthaul)?;
        }
        Ok(())
    }

    /// Tunes both LOs and waits (at most `timeout`, discarding RX samples meanwhile) until
    /// the radio's answers confirm them. Fails with [`RadioError::Tuning`] if the radio
    /// keeps another frequency (out of range) or does not answer.
    pub fn tune(&mut self, tx_hz: f64, rx_hz: f64, timeout: Duration) -> Result<(), RadioError> {
        let close = |c: &Option<ContextRepr>, hz: f64| {
            c.as_ref()
                .and_then(|c| c.rf_freq_hz)
                .filter(|f| (f - hz).abs() < 1.0)
        };
        self.last_tx_context = None;
        self.request_tuning(tx_hz, rx_hz)?;
        let deadline = Instant::now() + timeout;
        // The radio answers TX in the tick that applies the request, before that tick's RX
        // context: the first RX context after the TX answer is the fresh one.
        let mut tx_seen = false;
        loop {
            if !tx_seen {
                if let Some(c) = &self.last_tx_context {
                    let got = c.rf_freq_hz;
                    if close(&self.last_tx_context, tx_hz).is_none() {
                        return Err(RadioError::Tuning {
                            lo: "TX",
                            wanted: tx_hz,
                            got,
                        });
                    }
                    tx_seen = true;
                }
            }
            if tx_seen && self.rx_ctx_seen > self.rx_ctx_at_tx {
                return match close(&self.last_context, rx_hz) {
                    Some(_) => Ok(()),
                    None => Err(RadioError::Tuning {
                        lo: "RX",
                        wanted: rx_hz,
                        got: self.last_context.as_ref().and_then(|c| c.rf_freq_hz),
                    }),
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let (lo, wanted) = if !tx_seen {
                    ("TX", tx_hz)
                } else {
                    ("RX", rx_hz)
                };
                return Err(RadioError::Tuning {
                    lo,
                    wanted,
                    got: None,
                });
            }
            match self.recv_with(left.min(Duration::from_millis(20)), |_| {}) {
                Ok(_) | Err(RadioError::RxTimeout(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn tx_sid(&self) -> StreamId {
        StreamId::new(self.info.number, Direction::Tx)
    }

    /// Before TX (`heartbeat`: no TX) at `time` on `channel`: if a burst is open and ends
    /// before `time` (or at it, for a heartbeat), the burst is over — send its end-of-burst
    /// packet (no samples, stamped at its end, header bit 24 as UHD does), so the radio
    /// does not count the silence as an underflow.
    fn close_burst_before(
        &mut self,
        channel: u8,
        time: SampleTime,
        heartbeat: bool,
    ) -> Result<(), RadioError> {
        let ch = usize::from(channel.min(1));
        let Some(end) = self.burst_end[ch] else {
            return Ok(());
        };
        if time < end || (time == end && !heartbeat) {
            return Ok(());
        }
        self.burst_end[ch] = None;
        let rate = self.info.sample_rate_hz;
        let sid = StreamId::for_channel(self.info.number, channel, Direction::Tx);
        self.tx_buf.clear();
        emit_data_cf32(
            sid,
            self.tx_count,
            Timestamp::from_sample_time(end, rate)?,
            &[],
            &mut self.tx_buf,
        )?;
        mark_end_of_burst(&mut self.tx_buf);
        self.bursts_ended += 1;
        self.push_tx()
    }

    /// Nothing will be transmitted at `time` (a subframe this host does not own, or a
    /// legacy host's idle one): a burst open until then ends, with its end-of-burst packet.
    pub fn end_burst(&mut self, time: SampleTime) -> Result<(), RadioError> {
        for ch in 0..2 {
            self.close_burst_before(ch, time, true)?;
        }
        Ok(())
    }

    /// End-of-burst packets sent so far.
    pub fn bursts_ended(&self) -> u64 {
        self.bursts_ended
    }

    /// Sends samples to be transmitted from sample time `time` on (split into packets).
    pub fn send(&mut self, time: SampleTime, samples: &[Complex32]) -> Result<(), RadioError> {
        self.send_channel(time, 0, samples)
    }

    /// [`RadioLink::send`] on channel (antenna) `channel` of a two-channel radio; the
    /// channels of one subframe carry the same `time`.
    pub fn send_channel(
        &mut self,
        time: SampleTime,
        channel: u8,
        samples: &[Complex32],
    ) -> Result<(), RadioError> {
        self.close_burst_before(channel, time, false)?;
        let rate = self.info.sample_rate_hz;
        let sid = StreamId::for_channel(self.info.number, channel, Direction::Tx);
        if !samples.is_empty() {
            self.burst_end[usize::from(channel.min(1))] =
                Some(time.saturating_add(samples.len() as u64));
        }
        for (k, chunk) in samples.chunks(self.spp).enumerate() {
            let t = time.saturating_add((k * self.spp) as u64);
            self.tx_buf.clear();
            emit_data_cf32(
                sid,
                self.tx_count,
                Timestamp::from_sample_time(t, rate)?,
                chunk,
                &mut self.tx_buf,
            )?;
            self.push_tx()?;
        }
        Ok(())
    }

    /// Like [`RadioLink::send`] with raw (I, Q) sc16 pairs.
    pub fn send_i16(&mut self, time: SampleTime, samples: &[(i16, i16)]) -> Result<(), RadioError> {
        self.close_burst_before(0, time, false)?;
        if !samples.is_empty() {
            self.burst_end[0] = Some(time.saturating_add(samples.len() as u64));
        }
        let rate = self.info.sample_rate_hz;
        for (k, chunk) in samples.chunks(self.spp).enumerate() {
            let t = time.saturating_add((k * self.spp) as u64);
            self.tx_buf.clear();
            emit_data_i16(
                self.tx_sid(),
                self.tx_count,
                Timestamp::from_sample_time(t, rate)?,
                chunk,
                &mut self.tx_buf,
            )?;
            self.push_tx()?;
        }
        Ok(())
    }

    /// Sends a data packet with no samples stamped `time`: the radio notes this host alive
    /// (its liveness check, docs/FAULTS.md) and plays nothing. A modem sends one for every
    /// subframe it owns but has nothing to transmit in.
    pub fn heartbeat(&mut self, time: SampleTime) -> Result<(), RadioError> {
        self.end_burst(time)?;
        let rate = self.info.sample_rate_hz;
        self.tx_buf.clear();
        emit_data_cf32(
            self.tx_sid(),
            self.tx_count,
            Timestamp::from_sample_time(time, rate)?,
            &[],
            &mut self.tx_buf,
        )?;
        self.push_tx()
    }

    /// Whether switch notices can be checked (the link has the radio room's key); without
    /// it the modem never learns of a switch in-band and must not take part in one.
    pub fn has_notice_key(&self) -> bool {
        self.notice_key.is_some()
    }

    fn push_tx(&mut self) -> Result<(), RadioError> {
        self.tx_count = (self.tx_count + 1) & 0xf;
        self.socket.send_to(&self.tx_buf, self.info.fronthaul)?;
        self.stats.tx_packets += 1;
        Ok(())
    }
}

impl Drop for RadioLink {
    /// Best-effort unlink, only if this host still holds the link (a host that handed over
    /// by `switch_at` must not cut off its successor; the radio refuses in that case).
    fn drop(&mut self) {
        if self.linked {
            if let Some(c) = &self.control {
                let quick = ControlClient::new(c.endpoint().to_owned(), Duration::from_millis(200))
                    .with_auth(c.auth().cloned());
                let _ = quick.request(&Request::Unlink {
                    radio: self.radio.clone(),
                    endpoint: Some(self.endpoint),
                });
            }
        }
    }
}

#[cfg(test)]
mod notice_tests {
    use super::*;
    use ferry_fronthaul::notice::NoticeKind;

    fn notice(sid: StreamId, epoch: u64, key: &[u8]) -> Vec<u8> {
        let n = NoticeRepr {
            stream_id: sid,
            epoch,
            from_sample: 19_200,
            kind: NoticeKind::Failover,
            primary: Some(SocketAddr::from(([127, 0, 0, 1], 9))),
            previous: None,
            previous_heard_tx: None,
            tail_until: None,
        };
        let mut out = Vec::new();
        n.emit(1_920_000, 0, key, &mut out).expect("emit");
        out
    }

    /// Only an authentic notice from the radio about this radio's stream is kept: a notice
    /// under another key, about another stream, from a stranger's address, truncated or
    /// padded is counted and dropped — a forged "you serve now" never reaches the modem.
    #[test]
    fn only_authentic_notices_from_the_radio_are_kept() {
        let radio = UdpSocket::bind("127.0.0.1:0").expect("radio socket");
        let stranger = UdpSocket::bind("127.0.0.2:0").expect("stranger socket");
        let mut link = RadioLink::create_legacy(
            "127.0.0.1:0".parse().expect("addr"),
            radio.local_addr().expect("addr"),
            0,
            1_920_000,
        )
        .expect("link");
        let key = b"0123456789abcdef0123456789abcdef".to_vec();
        link.notice_key = Some(key.clone());
        let to = link.endpoint();
        let rx = StreamId::new(0, Direction::Rx);
        let good = notice(rx, 7, &key);
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 64]);
        for (from, bytes) in [
            (&radio, notice(rx, 5, b"another radio room's key.........")),
            (&radio, notice(StreamId::new(1, Direction::Rx), 6, &key)),
            (&stranger, good.clone()),
            (&radio, good[..good.len() - 4].to_vec()),
            (&radio, padded),
            (&radio, good.clone()),
        ] {
            from.send_to(&bytes, to).expect("send");
        }
        // Notices are not RX blocks: the receive ends in a timeout once they are read.
        assert!(matches!(
            link.recv(Duration::from_millis(200)),
            Err(RadioError::RxTimeout(_))
        ));
        assert_eq!(link.notices.len(), 1, "{:?}", link.notices);
        assert_eq!(link.notices[0].epoch, 7);
        assert_eq!(link.stats.notices, 1);
        // Wrong key and wrong stream fail the notice check; a truncated or padded one is not
        // even taken for a notice (its length is wrong) and is dropped as bad fronthaul.
        assert_eq!(link.stats.bad_notices, 2);
        assert_eq!(link.stats.strangers, 1);
    }
}

#[cfg(test)]
mod channel_tests {
    use super::*;

    fn data(channel: u8, t: u64, n: usize, v: f32) -> Vec<u8> {
        let mut b = Vec::new();
        let sid = StreamId::for_channel(0, channel, Direction::Rx);
        let ts = Timestamp::from_sample_time(t, 1_920_000).expect("ts");
        emit_data_cf32(sid, 0, ts, &vec![Complex32::new(v, 0.0); n], &mut b).expect("emit");
        b
    }

    /// A two-channel radio's packets come back as one block per sample time with both
    /// channels; a packet without its twin, and a channel the radio does not have, are
    /// counted and dropped.
    #[test]
    fn two_channels_are_paired_by_timestamp_and_strays_counted() {
        let radio = UdpSocket::bind("127.0.0.1:0").expect("radio socket");
        let mut link = RadioLink::create_legacy(
            "127.0.0.1:0".parse().expect("addr"),
            radio.local_addr().expect("addr"),
            0,
            1_920_000,
        )
        .expect("link");
        link.info.channels = 2;
        let to = link.endpoint();
        for bytes in [
            data(0, 100, 10, 0.25),
            data(1, 100, 10, 0.5),
            // Channel 0 whose twin never comes, then a stray channel 1.
            data(0, 110, 10, 0.25),
            data(1, 130, 10, 0.5),
            // A channel this radio does not have.
            data(2, 140, 10, 0.5),
            data(0, 150, 10, 0.25),
            data(1, 150, 10, 0.5),
        ] {
            radio.send_to(&bytes, to).expect("send");
        }
        let a = link.recv(Duration::from_millis(500)).expect("first block");
        assert_eq!(
            (a.time, a.samples.len(), a.other_channels.len()),
            (100, 10, 1)
        );
        assert!((a.samples[0].re - 0.25).abs() < 1e-3);
        assert!((a.other_channels[0][0].re - 0.5).abs() < 1e-3);
        let b = link.recv(Duration::from_millis(500)).expect("second block");
        assert_eq!(b.time, 150);
        assert_eq!(link.stats.unpaired, 2);
        assert_eq!(link.stats.other_streams, 1);
        assert!(matches!(
            link.recv(Duration::from_millis(100)),
            Err(RadioError::RxTimeout(_))
        ));
    }
}
