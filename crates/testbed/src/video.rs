//! Chapter 4's video test: a real ffmpeg sender streaming MPEG-TS over UDP, and Ferry's own
//! receiver that demultiplexes the transport stream, counts video frames and measures the
//! longest gap between them (the video interruption of table 4-2).
//!
//! [`TsPacket`] and [`VideoLog`] are pure (bytes and times in, counts out); [`VideoReceiver`]
//! (a UDP socket on a thread, optionally inside a namespace) and [`VideoSender`] (an ffmpeg
//! child) are the thin shells.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Length of one transport-stream packet.
pub const TS_LEN: usize = 188;
/// Sync byte every packet starts with.
pub const TS_SYNC: u8 = 0x47;
/// PID of the program association table.
pub const PID_PAT: u16 = 0;

/// A transport-stream packet that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    /// Not 188 bytes.
    #[error("TS packet is {0} bytes, not 188")]
    Length(usize),
    /// First byte is not 0x47.
    #[error("TS sync byte is {0:#04x}, not 0x47")]
    Sync(u8),
    /// Adaptation field longer than the packet.
    #[error("TS adaptation field of {0} bytes overruns the packet")]
    Adaptation(usize),
}

/// Checked view of one 188-byte TS packet (ISO/IEC 13818-1 2.4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsPacket<'a> {
    /// Transport error indicator.
    pub transport_error: bool,
    /// Payload unit start indicator: a PES packet or a section begins here.
    pub unit_start: bool,
    /// Packet identifier.
    pub pid: u16,
    /// Whether the packet carries payload (adaptation_field_control bit 0).
    pub has_payload: bool,
    /// Continuity counter, 0..=15.
    pub cc: u8,
    /// Discontinuity indicator from the adaptation field.
    pub discontinuity: bool,
    /// The payload bytes (empty if none).
    pub payload: &'a [u8],
}

impl<'a> TsPacket<'a> {
    /// Parses one packet.
    pub fn parse(b: &'a [u8]) -> Result<TsPacket<'a>, TsError> {
        let &[sync, b1, b2, b3, ref rest @ ..] = b else {
            return Err(TsError::Length(b.len()));
        };
        if b.len() != TS_LEN {
            return Err(TsError::Length(b.len()));
        }
        if sync != TS_SYNC {
            return Err(TsError::Sync(sync));
        }
        let afc = (b3 >> 4) & 0b11;
        let has_payload = afc & 0b01 != 0;
        let mut discontinuity = false;
        let payload = if afc & 0b10 != 0 {
            let len = usize::from(rest.first().copied().unwrap_or(0));
            let af = rest.get(1..1 + len).ok_or(TsError::Adaptation(len))?;
            discontinuity = af.first().is_some_and(|f| f & 0x80 != 0);
            rest.get(1 + len..).unwrap_or(&[])
        } else {
            rest
        };
        Ok(TsPacket {
            transport_error: b1 & 0x80 != 0,
            unit_start: b1 & 0x40 != 0,
            pid: (u16::from(b1 & 0x1f) << 8) | u16::from(b2),
            has_payload,
            cc: b3 & 0x0f,
            discontinuity,
            payload: if has_payload { payload } else { &[] },
        })
    }
}

/// The section a PSI payload starting a unit holds: skips the pointer field.
fn section(payload: &[u8]) -> Option<&[u8]> {
    let ptr = usize::from(*payload.first()?);
    let s = payload.get(1 + ptr..)?;
    let len = usize::from(u16::from_be_bytes([*s.get(1)?, *s.get(2)?]) & 0x0fff);
    // Header (3) + section_length, minus the CRC (4) at its end.
    s.get(..(3 + len).min(s.len()))
}

/// PMT PIDs listed in a PAT section (program 0 is the network PID, skipped).
fn pat_programs(payload: &[u8]) -> Vec<u16> {
    let Some(s) = section(payload) else {
        return Vec::new();
    };
    if s.first() != Some(&0x00) {
        return Vec::new();
    }
    let body = s.get(8..s.len().saturating_sub(4)).unwrap_or(&[]);
    body.chunks_exact(4)
        .filter(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| u16::from_be_bytes([e[2], e[3]]) & 0x1fff)
        .collect()
}

/// Whether a PMT stream type is video: MPEG-1/2, MPEG-4 part 2, H.264, HEVC.
fn is_video_type(t: u8) -> bool {
    matches!(t, 0x01 | 0x02 | 0x10 | 0x1b | 0x24)
}

/// The first video elementary stream `(pid, stream_type)` in a PMT section.
fn pmt_video(payload: &[u8]) -> Option<(u16, u8)> {
    let s = section(payload)?;
    if s.first() != Some(&0x02) {
        return None;
    }
    let info_len = usize::from(u16::from_be_bytes([*s.get(10)?, *s.get(11)?]) & 0x0fff);
    let mut es = s.get(12 + info_len..s.len().saturating_sub(4))?;
    while let [st, p1, p2, l1, l2, rest @ ..] = es {
        let pid = (u16::from(p1 & 0x1f) << 8) | u16::from(*p2);
        if is_video_type(*st) {
            return Some((pid, *st));
        }
        let n = usize::from(u16::from_be_bytes([*l1, *l2]) & 0x0fff);
        es = rest.get(n..)?;
    }
    None
}

/// PTS (90 kHz) from a PES header, if present.
fn pes_pts(pes: &[u8]) -> Option<u64> {
    if pes.get(..3)? != [0, 0, 1] || pes.get(7)? & 0x80 == 0 {
        return None;
    }
    let p = pes.get(9..14)?;
    Some(
        (u64::from(p[0] >> 1 & 0x07) << 30)
            | (u64::from(p[1]) << 22)
            | (u64::from(p[2] >> 1) << 15)
            | (u64::from(p[3]) << 7)
            | u64::from(p[4] >> 1),
    )
}

/// Whether the first bytes of a PES packet show a picture: MPEG-2 picture start code
/// `00 00 01 00`, or an H.264 slice NAL (type 1 or 5).
fn has_picture(pes: &[u8], stream_type: u8) -> bool {
    let Some(&hdr_len) = pes.get(8) else {
        return false;
    };
    let es = pes.get(9 + usize::from(hdr_len)..).unwrap_or(&[]);
    es.windows(4).any(|w| match (stream_type, w) {
        (0x01 | 0x02, [0, 0, 1, 0]) => true,
        (0x1b, [0, 0, 1, n]) => matches!(n & 0x1f, 1 | 5),
        _ => false,
    })
}

/// Frame arrival and its gap, for plots and the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameGap {
    /// Arrival of the frame that ended the gap, ms after the receiver started.
    pub at_ms: f64,
    /// Time since the previous frame, ms.
    pub gap_ms: f64,
}

/// What the receiver saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoReport {
    /// Frames per second the sender was asked for.
    pub fps: f64,
    /// Video frames received (PES starts on the video PID).
    pub frames: u64,
    /// Of those, frames whose first packet showed a picture start code.
    pub pictures_confirmed: u64,
    /// Frames the stream should have held: duration × fps.
    pub expected_frames: u64,
    /// `expected_frames − frames` (0 if more arrived).
    pub frames_lost: u64,
    /// Frames missing by their timestamps (PTS jumps of more than one frame).
    pub frames_missing_by_pts: u64,
    /// Continuity-counter errors (lost or reordered TS packets), all PIDs.
    pub cc_errors: u64,
    /// Bytes that did not form valid TS packets.
    pub bad_packets: u64,
    /// Longest time between two frame arrivals, ms: the video interruption.
    pub longest_frame_gap_ms: f64,
    /// Arrival time of the frame ending the longest gap, ms.
    pub longest_frame_gap_at_ms: Option<f64>,
    /// Gaps longer than the stall threshold.
    pub stalls: Vec<FrameGap>,
    /// The stall threshold used, ms.
    pub stall_threshold_ms: f64,
    /// Video PID and stream type found in the PMT.
    pub video_pid: Option<u16>,
    /// PMT stream type of the video (2 = MPEG-2, 0x1b = H.264).
    pub stream_type: Option<u8>,
    /// Arrival time of every frame, ms after the receiver started.
    pub frame_times_ms: Vec<f64>,
    /// Where frames went missing by PTS: the arrival of the frame after the hole and how
    /// many frames the hole held, ms after the receiver started.
    #[serde(default)]
    pub pts_losses: Vec<FrameLoss>,
    /// Arrival of every TS packet that broke its PID's continuity counter, ms after the
    /// receiver started.
    #[serde(default)]
    pub cc_error_times_ms: Vec<f64>,
    /// Frames that arrived after a frame with a later (or the same) PTS: late, not lost.
    #[serde(default)]
    pub frames_reordered: u64,
    /// Their arrival times, ms after the receiver started.
    #[serde(default)]
    pub reordered_times_ms: Vec<f64>,
}

/// A hole in the PTS sequence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameLoss {
    /// Arrival of the first frame after the hole, ms.
    pub at_ms: f64,
    /// Frames missing.
    pub frames: u64,
}

/// Pure demultiplexer state and frame log.
#[derive(Debug, Clone, Default)]
pub struct VideoLog {
    pmt_pids: Vec<u16>,
    video: Option<(u16, u8)>,
    last_cc: HashMap<u16, u8>,
    cc_errors: u64,
    bad_packets: u64,
    frames: Vec<f64>,
    pictures: u64,
    pts: Vec<u64>,
    pts_times: Vec<f64>,
    cc_error_times: Vec<f64>,
}

impl VideoLog {
    /// An empty log.
    pub fn new() -> Self {
        VideoLog::default()
    }

    /// Feeds one UDP datagram (a whole number of TS packets, normally 7) received at `now_ms`.
    pub fn on_datagram(&mut self, now_ms: f64, datagram: &[u8]) {
        for chunk in datagram.chunks(TS_LEN) {
            self.on_packet(now_ms, chunk);
        }
    }

    /// Feeds one TS packet received at `now_ms`.
    pub fn on_packet(&mut self, now_ms: f64, bytes: &[u8]) {
        let Ok(p) = TsPacket::parse(bytes) else {
            self.bad_packets += 1;
            return;
        };
        if p.transport_error || p.pid == 0x1fff {
            return;
        }
        if p.has_payload {
            // A repeated counter is a legal duplicate; a discontinuity flag resets.
            if let Some(&last) = self.last_cc.get(&p.pid) {
                if !p.discontinuity && p.cc != (last + 1) & 0x0f && p.cc != last {
                    self.cc_errors += 1;
                    self.cc_error_times.push(now_ms);
                }
            }
            self.last_cc.insert(p.pid, p.cc);
        }
        if !p.unit_start {
            return;
        }
        if p.pid == PID_PAT {
            let progs = pat_programs(p.payload);
            if !progs.is_empty() {
                self.pmt_pids = progs;
            }
        } else if self.pmt_pids.contains(&p.pid) {
            if let Some(v) = pmt_video(p.payload) {
                self.video = Some(v);
            }
        } else if let Some((_, st)) = self.video.filter(|(v, _)| *v == p.pid) {
            // A PES start on the video PID: ffmpeg puts one frame in each PES packet.
            if p.payload.get(..3) == Some(&[0, 0, 1]) {
                self.frames.push(now_ms);
                if has_picture(p.payload, st) {
                    self.pictures += 1;
                }
                if let Some(pts) = pes_pts(p.payload) {
                    self.pts.push(pts);
                    self.pts_times.push(now_ms);
                }
            }
        }
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.frames.len() as u64
    }

    /// The summary. `duration_ms` is how long the sender streamed (None: from the first
    /// to the last frame plus one frame time); gaps over `stall_threshold_ms` are listed.
    pub fn report(
        &self,
        fps: f64,
        duration_ms: Option<f64>,
        stall_threshold_ms: f64,
    ) -> VideoReport {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            25.0
        };
        let frame_ms = 1000.0 / fps;
        let span = match (self.frames.first(), self.frames.last()) {
            (Some(a), Some(b)) => b - a + frame_ms,
            _ => 0.0,
        };
        let duration = duration_ms
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(span);
        let expected_frames = (duration / frame_ms).round() as u64;
        let mut longest = 0.0f64;
        let mut longest_at = None;
        let mut stalls = Vec::new();
        for w in self.frames.windows(2) {
            if let [a, b] = w {
                let gap = b - a;
                if gap > longest {
                    longest = gap;
                    longest_at = Some(*b);
                }
                if gap > stall_threshold_ms {
                    stalls.push(FrameGap {
                        at_ms: *b,
                        gap_ms: gap,
                    });
                }
            }
        }
        // PTS steps of one frame are 90000 / fps ticks; B-frame reordering is not used by
        // the sender (mpeg2video without B-frames), so PTS rises monotonically.
        let tick = 90_000.0 / fps;
        // Holes are judged on the set of PTS received, in PTS order: a frame that arrives
        // late (reordered, e.g. forwarded by a migration's source after the destination
        // delivered newer ones) fills its hole instead of counting as lost. Each hole is
        // placed at the arrival of the frame after it.
        let mut by_pts: Vec<(u64, f64)> = self
            .pts
            .iter()
            .copied()
            .zip(self.pts_times.iter().copied())
            .collect();
        by_pts.sort_by_key(|&(p, _)| p);
        by_pts.dedup_by_key(|&mut (p, _)| p);
        let pts_losses: Vec<FrameLoss> = by_pts
            .windows(2)
            .filter_map(|w| match w {
                [(a, _), (b, at_ms)] => {
                    let frames = (((b - a) as f64 / tick).round() as u64).saturating_sub(1);
                    (frames > 0).then_some(FrameLoss {
                        at_ms: *at_ms,
                        frames,
                    })
                }
                _ => None,
            })
            .collect();
        let frames_missing_by_pts = pts_losses.iter().map(|l| l.frames).sum();
        // Frames that arrived after a frame with a later PTS, and repeated PTS.
        let mut max_pts = None;
        let mut frames_reordered = 0;
        let mut reordered_times_ms = Vec::new();
        for (&p, &t) in self.pts.iter().zip(&self.pts_times) {
            if max_pts.is_some_and(|m| p <= m) {
                frames_reordered += 1;
                reordered_times_ms.push(t);
            }
            max_pts = Some(max_pts.map_or(p, |m: u64| m.max(p)));
        }
        VideoReport {
            fps,
            frames: self.frames(),
            pictures_confirmed: self.pictures,
            expected_frames,
            frames_lost: expected_frames.saturating_sub(self.frames()),
            frames_missing_by_pts,
            cc_errors: self.cc_errors,
            bad_packets: self.bad_packets,
            longest_frame_gap_ms: longest,
            longest_frame_gap_at_ms: longest_at,
            stalls,
            stall_threshold_ms,
            video_pid: self.video.map(|v| v.0),
            stream_type: self.video.map(|v| v.1),
            frame_times_ms: self.frames.clone(),
            pts_losses,
            cc_error_times_ms: self.cc_error_times.clone(),
            frames_reordered,
            reordered_times_ms,
        }
    }
}

/// Ferry's video receiver: a UDP socket on its own thread feeding a [`VideoLog`].
pub struct VideoReceiver {
    log: Arc<Mutex<VideoLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    /// Unix time (ms) the receiver's clock starts at: frame times are relative to it.
    pub started_unix_ms: f64,
    /// The address actually bound.
    pub local: SocketAddr,
}

/// Moves the calling thread into network namespace `ns` (only this thread: setns(2) with
/// CLONE_NEWNET acts on the caller). Lets in-process receivers (this one, the probe's
/// sender and echo) run on a thread inside a testbed host.
pub fn enter_netns(ns: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: setns on a file descriptor we hold open; affects only this thread.
    let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Unix time now, ms.
pub fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl VideoReceiver {
    /// Binds `bind` (inside namespace `ns` if given) and starts receiving.
    pub fn start(ns: Option<&str>, bind: SocketAddr) -> std::io::Result<VideoReceiver> {
        let log = Arc::new(Mutex::new(VideoLog::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let ns = ns.map(str::to_string);
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        let started = Instant::now();
        let started_unix_ms = unix_ms();
        let thread = std::thread::spawn(move || -> std::io::Result<()> {
            let setup = || -> std::io::Result<UdpSocket> {
                if let Some(ns) = &ns {
                    enter_netns(ns)?;
                }
                let s = UdpSocket::bind(bind)?;
                s.set_read_timeout(Some(Duration::from_millis(50)))?;
                Ok(s)
            };
            let sock = match setup() {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let _ = tx.send(sock.local_addr());
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let now = started.elapsed().as_secs_f64() * 1000.0;
                    if let (Ok(mut l), Some(d)) = (log2.lock(), buf.get(..n)) {
                        l.on_datagram(now, d);
                    }
                }
            }
            Ok(())
        });
        let local = rx
            .recv()
            .map_err(|_| std::io::Error::other("video receiver thread died"))??;
        Ok(VideoReceiver {
            log,
            stop,
            thread: Some(thread),
            started_unix_ms,
            local,
        })
    }

    /// Frames so far.
    pub fn frames(&self) -> u64 {
        self.log.lock().map(|l| l.frames()).unwrap_or(0)
    }

    /// Stops receiving and returns the log.
    pub fn stop(mut self) -> VideoLog {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How the encoded stream leaves the sender's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPath {
    /// ffmpeg writes MPEG-TS to a pipe; Ferry sends it as UDP datagrams of 7 TS packets
    /// (1316 bytes), counting and riding out send errors. The default: ffmpeg's own UDP
    /// output ends the whole stream on the first failed send (a route missing for a
    /// moment during a migration: "Network is unreachable"), and the demo must survive that.
    Pipe,
    /// ffmpeg's own UDP output (`udp://DEST?pkt_size=1316`), as in a plain ffmpeg setup.
    FfmpegUdp,
}

/// The video the sender makes.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSpec {
    /// Frame width × height.
    pub size: (u32, u32),
    /// Frames per second.
    pub fps: u32,
    /// Video bit rate, kbit/s.
    pub kbps: u32,
    /// Encoder: `mpeg2video` (default) or `libx264`.
    pub codec: String,
    /// Stop after this many seconds (None: until stopped).
    pub seconds: Option<f64>,
    /// How the stream is put on the network.
    pub path: SendPath,
    /// Pipe path: send what ffmpeg wrote as soon as a read ends on a TS-packet boundary
    /// (up to 7 packets a datagram) instead of waiting for 7 packets. At a low bit rate
    /// a full datagram holds several frames and batching would hide the frame spacing.
    pub eager: bool,
    /// More encoder options, after the bit rate (e.g. `-intra-refresh 1 -maxrate 64k
    /// -bufsize 13k` for a low-rate link: no I-frame spikes).
    pub encoder_args: Vec<String>,
}

impl Default for VideoSpec {
    fn default() -> Self {
        VideoSpec {
            size: (320, 240),
            fps: 25,
            kbps: 500,
            codec: "mpeg2video".into(),
            seconds: None,
            path: SendPath::Pipe,
            eager: false,
            encoder_args: Vec::new(),
        }
    }
}

/// Bytes per UDP datagram: 7 TS packets, the usual MPEG-TS-over-UDP size (fits a 1500 MTU).
pub const DATAGRAM_LEN: usize = 7 * TS_LEN;

/// The ffmpeg argument vector that encodes `spec` as MPEG-TS at real time, sent to `dest`
/// over UDP ([`SendPath::FfmpegUdp`]) or written to stdout ([`SendPath::Pipe`]).
pub fn ffmpeg_args(spec: &VideoSpec, dest: SocketAddr) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!(
        "testsrc=size={}x{}:rate={}",
        spec.size.0, spec.size.1, spec.fps
    ));
    if let Some(s) = spec.seconds {
        a.extend(["-t".into(), format!("{s:.3}")]);
    }
    a.extend(["-c:v".into(), spec.codec.clone()]);
    if spec.codec == "libx264" {
        a.extend(["-tune".into(), "zerolatency".into()]);
    }
    // No B-frames: PTS then rises by one frame each PES, which the loss count relies on.
    a.extend([
        "-bf".into(),
        "0".into(),
        "-g".into(),
        spec.fps.to_string(),
        "-b:v".into(),
        format!("{}k", spec.kbps),
    ]);
    a.extend(spec.encoder_args.iter().cloned());
    match spec.path {
        SendPath::FfmpegUdp => a.extend([
            "-f".into(),
            "mpegts".into(),
            format!("udp://{dest}?pkt_size={DATAGRAM_LEN}"),
        ]),
        // Flush every packet so the pipe carries the stream at real time, not in 32 KiB lumps.
        SendPath::Pipe => a.extend([
            "-flush_packets".into(),
            "1".into(),
            "-f".into(),
            "mpegts".into(),
            "pipe:1".into(),
        ]),
    }
    a
}

/// What the sender put on the wire ([`SendPath::Pipe`]; zeros for ffmpeg's own UDP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Datagrams sent.
    pub datagrams: u64,
    /// Sends that failed (no route, …) and were skipped.
    pub send_errors: u64,
}

/// A running ffmpeg sender.
pub struct VideoSender {
    child: Child,
    pump: Option<JoinHandle<std::io::Result<SenderStats>>>,
    stderr: Option<JoinHandle<String>>,
}

/// Reads ffmpeg's stdout in datagram-sized pieces and sends each to `dest`, skipping (and
/// counting) sends that fail.
fn pump(
    ns: Option<String>,
    mut input: impl std::io::Read,
    dest: SocketAddr,
    eager: bool,
) -> std::io::Result<SenderStats> {
    if let Some(ns) = &ns {
        enter_netns(ns)?;
    }
    let sock = UdpSocket::bind(if dest.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    let mut stats = SenderStats::default();
    let mut buf = [0u8; DATAGRAM_LEN];
    loop {
        // Fill a whole datagram; at the end, send what is left.
        let mut n = 0;
        let mut end = false;
        while n < DATAGRAM_LEN {
            match input.read(buf.get_mut(n..).unwrap_or(&mut [])) {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(k) => {
                    n += k;
                    // ffmpeg flushes each muxed packet in one write: a read ending on a TS
                    // packet boundary is a whole write.
                    if eager && n % TS_LEN == 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            return Ok(stats);
        }
        match sock.send_to(buf.get(..n).unwrap_or(&[]), dest) {
            Ok(_) => stats.datagrams += 1,
            Err(_) => stats.send_errors += 1,
        }
        if end {
            return Ok(stats);
        }
    }
}

impl VideoSender {
    /// Starts ffmpeg (inside namespace `ns` if given) streaming `spec` to `dest`.
    pub fn start(
        ns: Option<&str>,
        spec: &VideoSpec,
        dest: SocketAddr,
    ) -> std::io::Result<VideoSender> {
        let mut cmd = match ns {
            Some(ns) => crate::netns::command_in(ns, "ffmpeg"),
            None => Command::new("ffmpeg"),
        };
        let stdout = match spec.path {
            SendPath::Pipe => Stdio::piped(),
            SendPath::FfmpegUdp => Stdio::null(),
        };
        let mut child = cmd
            .args(ffmpeg_args(spec, dest))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()?;
        let ns = ns.map(str::to_string);
        let pump = child.stdout.take().map(|out| {
            let eager = spec.eager;
            std::thread::spawn(move || pump(ns, out, dest, eager))
        });
        // Drain stderr so a chatty ffmpeg never blocks on a full pipe; keep the tail.
        let stderr = child.stderr.take().map(|err| {
            std::thread::spawn(move || {
                let mut tail = String::new();
                for line in
                    std::io::BufRead::lines(std::io::BufReader::new(err)).map_while(Result::ok)
                {
                    tail.push_str(&line);
                    tail.push('\n');
                    if tail.len() > 4096 {
                        let cut = tail.len() - 2048;
                        let cut = (cut..tail.len())
                            .find(|&i| tail.is_char_boundary(i))
                            .unwrap_or(0);
                        tail.drain(..cut);
                    }
                }
                tail
            })
        });
        Ok(VideoSender {
            child,
            pump,
            stderr,
        })
    }

    /// Joins the helper threads once ffmpeg has ended.
    fn finish(&mut self) -> (SenderStats, String) {
        let stats = self
            .pump
            .take()
            .and_then(|h| h.join().ok())
            .and_then(Result::ok)
            .unwrap_or_default();
        let err = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (stats, err)
    }

    /// Waits for ffmpeg to end by itself (when `seconds` was set), at most `timeout`
    /// (then kills it). Returns whether it ended successfully, what was sent and the tail
    /// of ffmpeg's stderr.
    pub fn wait(mut self, timeout: Duration) -> std::io::Result<(bool, SenderStats, String)> {
        let deadline = Instant::now() + timeout;
        let ok = loop {
            if let Some(st) = self.child.try_wait()? {
                break st.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stats, err) = self.finish();
        Ok((ok, stats, err))
    }

    /// Whether ffmpeg still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops ffmpeg with SIGINT (it flushes and exits), SIGKILL after 2 s.
    pub fn stop(mut self) -> std::io::Result<SenderStats> {
        if self.child.try_wait()?.is_none() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGINT);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
        Ok(self.finish().0)
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether ffmpeg is installed.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pid: u16, pusi: bool, cc: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0xffu8; TS_LEN];
        p[0] = TS_SYNC;
        p[1] = (u8::from(pusi) << 6) | (pid >> 8) as u8;
        p[2] = pid as u8;
        p[3] = 0x10 | (cc & 0x0f);
        p[4..4 + payload.len()].copy_from_slice(payload);
        p
    }

    #[test]
    fn header_fields() {
        let p = packet(0x100, true, 7, &[0, 0, 1, 0xe0]);
        let t = TsPacket::parse(&p).expect("valid");
        assert_eq!(
            (t.pid, t.unit_start, t.cc, t.has_payload),
            (0x100, true, 7, true)
        );
        assert_eq!(TsPacket::parse(&p[..100]), Err(TsError::Length(100)));
        let mut bad = p.clone();
        bad[0] = 0x48;
        assert_eq!(TsPacket::parse(&bad), Err(TsError::Sync(0x48)));
        let mut af = p;
        af[3] = 0x30;
        af[4] = 200;
        assert_eq!(TsPacket::parse(&af), Err(TsError::Adaptation(200)));
    }

    #[test]
    fn cc_gap_counts_and_duplicate_does_not() {
        let mut log = VideoLog::new();
        for cc in [0u8, 1, 1, 2, 5, 6] {
            log.on_packet(0.0, &packet(0x44, false, cc, &[]));
        }
        assert_eq!(log.cc_errors, 1);
    }
}
