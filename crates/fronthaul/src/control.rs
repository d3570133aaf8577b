//! Link-control messages: JSON requests and replies carried over a ZeroMQ REQ/REP socket
//! between operators or modems and `ferry air` (one REP socket serves every radio; requests
//! name the radio). Decoding never panics; anything unknown or malformed is a
//! [`ControlError`] that the server turns into an `error` reply.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::vrt::SampleTime;

/// Largest control message accepted, in bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why a control message could not be decoded.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Larger than [`MAX_MESSAGE`].
    #[error("control message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or not one of the known messages.
    #[error("malformed control message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Which samples a capture records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureStream {
    /// What the radio received from the air (and sends to its hosts).
    Rx,
    /// What the radio transmitted into the air.
    Tx,
}

/// SigMF sample formats Ferry writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureFormat {
    /// Complex int16, little endian (as on the wire, byte-swapped).
    Ci16Le,
    /// Complex float32, little endian.
    Cf32Le,
}

/// A link-control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// List radios that are powered and initialised (like `uhd_find_devices`); with `radio`,
    /// only that one, or an error if it is not ready.
    Discover {
        /// Restrict to one radio.
        #[serde(default)]
        radio: Option<String>,
    },
    /// Stream RX to `endpoint` and accept TX from it, replacing any current link at once.
    Link {
        /// Radio name.
        radio: String,
        /// The host's UDP socket (it both receives RX and sends TX from it).
        endpoint: SocketAddr,
    },
    /// Stop streaming; TX is no longer accepted from anyone.
    Unlink {
        /// Radio name.
        radio: String,
        /// Only if the radio is linked to this host (so that a host leaving after a switch
        /// cannot cut its successor off); `null` unlinks whoever is linked.
        #[serde(default)]
        endpoint: Option<SocketAddr>,
    },
    /// Also copy RX to `endpoint` (`null` stops the copy). The shadow never transmits.
    Shadow {
        /// Radio name.
        radio: String,
        /// Second host, or `null`.
        #[serde(default)]
        endpoint: Option<SocketAddr>,
    },
    /// Stop the RX copy to `endpoint`, only if it is the shadow (refused otherwise), so
    /// that an agent stopping a warm modem nobody armed cannot cut off the shadow of a
    /// migration that began since.
    Unshadow {
        /// Radio name.
        radio: String,
        /// The shadow host to stop copying to.
        endpoint: SocketAddr,
    },
    /// Move the link to `endpoint` exactly at sample time `at`.
    SwitchAt {
        /// Radio name.
        radio: String,
        /// Switch instant on the radio's sample clock.
        at: SampleTime,
        /// New host.
        endpoint: SocketAddr,
    },
    /// `switch_at` that keeps the old primary as a fallback for `grace_ms` after `at`: it
    /// goes on getting RX copies, and if the new primary sends no TX for the liveness
    /// interval the radio switches back to it at the next subframe boundary.
    SwitchAtFallback {
        /// Radio name.
        radio: String,
        /// Switch instant on the radio's sample clock.
        at: SampleTime,
        /// New host.
        endpoint: SocketAddr,
        /// Fallback grace period after `at` (ms, at most 60 000).
        grace_ms: u64,
    },
    /// Disarm a pending `switch_at` before its instant (refused once it is on the air).
    CancelSwitch {
        /// Radio name.
        radio: String,
    },
    /// Protect the primary with a warm standby: `endpoint` gets RX copies and takes over at
    /// the next subframe boundary when the primary sends no TX for the liveness interval
    /// (`null`: unprotect).
    Protect {
        /// Radio name.
        radio: String,
        /// The standby host, or `null`.
        #[serde(default)]
        endpoint: Option<SocketAddr>,
    },
    /// The host at `endpoint` reports its task there dead (an agent saw its modem exit): if
    /// `endpoint` is still the primary and a standby (or a live fallback) can take over, the
    /// radio switches at the next subframe boundary, as its liveness check would after the
    /// liveness interval. Refused when `endpoint` is not the primary (a stale report never
    /// deposes a successor) or nobody can take over.
    PrimaryDead {
        /// Radio name.
        radio: String,
        /// The dead primary's fronthaul endpoint.
        endpoint: SocketAddr,
    },
    /// Counters and link state of one radio or all.
    Status {
        /// Restrict to one radio.
        #[serde(default)]
        radio: Option<String>,
    },
    /// Record up to `samples` samples of a stream to SigMF files that the radio names
    /// itself inside its capture directory (the reply says which), starting at the next
    /// tick. Refused when no capture directory is configured or `samples` exceeds the cap.
    Capture {
        /// Radio name.
        radio: String,
        /// Which stream.
        stream: CaptureStream,
        /// Sample format.
        format: CaptureFormat,
        /// How many samples.
        samples: u64,
    },
    /// Stop every capture of a radio now (the files keep what was recorded).
    StopCapture {
        /// Radio name.
        radio: String,
    },
    /// Power-cycle a radio: it re-initialises (counted) and loses its links.
    Reset {
        /// Radio name.
        radio: String,
    },
}

/// Error classes in replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request could not be decoded.
    BadRequest,
    /// No radio of that name.
    UnknownRadio,
    /// The radio is powering up / initialising.
    NotReady,
    /// The request is understood but cannot be done (switch time passed, not linked, ...).
    Refused,
    /// Something failed inside the server (e.g. a capture file could not be created).
    Internal,
    /// Not signed with the link-control key, not addressed to this radio room, or replayed
    /// (docs/SECURITY.md). Nothing was done.
    Unauthorized,
}

/// Counters of the link-control socket itself (requests refused before any radio saw them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlCounters {
    /// Requests answered (any reply).
    pub requests: u64,
    /// Requests refused as unauthenticated (no envelope, bad MAC, wrong recipient or
    /// direction, stale, replayed).
    pub unauthenticated: u64,
    /// Messages of more than four frames, refused.
    pub too_many_frames: u64,
    /// Peers ZeroMQ disconnected (oversized frames beyond ZMQ_MAXMSGSIZE show here).
    pub disconnects: u64,
    /// Retried requests answered from the reply cache.
    pub retries: u64,
    /// Captured samples dropped because the file writer fell behind.
    pub capture_dropped_samples: u64,
}

/// Identity of a radio as `discover` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadioInfo {
    /// Name in the air configuration.
    pub radio: String,
    /// Radio number (stream IDs carry it).
    pub number: u16,
    /// Emulated serial.
    pub serial: String,
    /// Fronthaul UDP address of the radio.
    pub fronthaul: SocketAddr,
    /// Sample rate in Hz.
    pub sample_rate_hz: u32,
    /// Centre frequency in Hz.
    pub freq_hz: f64,
    /// Whether the radio is in legacy address-bound mode.
    pub legacy: bool,
    /// RX (= TX) channels the radio streams, one VITA-49 stream each (absent from radios
    /// that predate two antennas: 1).
    #[serde(default = "one_channel")]
    pub channels: u8,
}

fn one_channel() -> u8 {
    1
}

/// Counters kept by each radio.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Initialisations in this radio's lifetime (power-up and resets).
    pub init_count: u64,
    /// Ticks in which a streaming TX host supplied too few samples.
    pub underflow_events: u64,
    /// Samples transmitted as zeros because TX was missing.
    pub underflow_samples: u64,
    /// RX packets that could not be handed to the host socket (buffer full).
    pub overflow_packets: u64,
    /// TX packets whose timestamp was already past when they arrived (wholly or partly).
    pub late_packets: u64,
    /// Samples of late TX packets dropped.
    pub late_samples: u64,
    /// TX samples dropped because they lie on the other side of a switch instant from
    /// their sender (old host at or after T, new host before T): by design, not loss.
    pub switch_trimmed_samples: u64,
    /// TX packets too far in the future (beyond the queue horizon), dropped.
    pub early_packets: u64,
    /// Packets from hosts that are not linked, dropped.
    pub stranger_packets: u64,
    /// Datagrams that failed to decode.
    pub malformed_packets: u64,
    /// TX data packets naming a channel the radio does not have (dropped).
    #[serde(default)]
    pub wrong_channel_packets: u64,
    /// TX data packets accepted.
    pub tx_packets: u64,
    /// Samples transmitted into the air from host data.
    pub tx_samples: u64,
    /// RX data packets sent to hosts (shadow copies included).
    pub rx_packets: u64,
    /// RX samples sent to the linked host (not counting shadow copies).
    pub rx_samples: u64,
    /// RX samples copied to a shadow host.
    pub shadow_samples: u64,
    /// Ticks the real-time clock had to skip because the process fell behind.
    pub clock_slips: u64,
    /// Samples that clipped when converted to sc16.
    pub clipped_samples: u64,
    /// Discovery probes answered.
    pub probes_answered: u64,
    /// RX samples real hardware lost (UHD overflow), streamed as zeros. Always 0 in the
    /// emulated air.
    #[serde(default)]
    pub hw_rx_lost_samples: u64,
    /// TX samples real hardware could not send in time (UHD late/underflow).
    #[serde(default)]
    pub hw_tx_lost_samples: u64,
}

/// Link state and counters of one radio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Identity.
    pub info: RadioInfo,
    /// Powered and initialised.
    pub ready: bool,
    /// Current primary host.
    pub linked: Option<SocketAddr>,
    /// Shadow host receiving a copy of RX.
    pub shadow: Option<SocketAddr>,
    /// Pending timed switch (instant, new host).
    pub pending_switch: Option<(SampleTime, SocketAddr)>,
    /// Counters.
    pub counters: Counters,
    /// Who serves, as the arbiter sees it (absent from radios that predate it).
    #[serde(default)]
    pub arbiter: ArbiterStatus,
}

/// The radio's view of who serves: epoch, standby, fallback and its counters
/// (docs/FAULTS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArbiterStatus {
    /// Epoch of the current assignment (grows at every change of primary).
    pub epoch: u64,
    /// The protecting standby.
    pub standby: Option<SocketAddr>,
    /// The previous primary kept as a fallback, and until which sample.
    pub fallback: Option<(SocketAddr, SampleTime)>,
    /// A primary silent this many samples is declared dead (0: never).
    pub liveness_samples: u64,
    /// Switches back to the previous primary.
    pub fallbacks: u64,
    /// Switches to the standby.
    pub failovers: u64,
    /// Armed switches cancelled before their instant.
    pub cancelled_switches: u64,
    /// TX datagrams from deposed primaries (dropped).
    pub fenced_packets: u64,
    /// TX datagrams from standby / fallback hosts (queued, played only on takeover).
    pub standby_packets: u64,
    /// Times the primary fell silent with nobody to take over.
    pub silent_unprotected: u64,
    /// Switches made on a `primary_dead` report (also counted in `failovers`/`fallbacks`).
    #[serde(default)]
    pub reported_dead: u64,
    /// First sample of the current assignment (when the last change of primary took
    /// effect on the air).
    #[serde(default)]
    pub primary_since: SampleTime,
    /// The latest fallback or failover: samples from the last TX heard from the silent
    /// primary to the switch instant (detection and switch on the radio's own clock).
    #[serde(default)]
    pub last_silence_samples: u64,
    /// Samples played from deposed primaries' queued TX after fallbacks and failovers.
    #[serde(default)]
    pub tail_samples: u64,
    /// Since when (sample) the primary has been protected by `standby`, or unprotected when
    /// there is none (a failover leaves it unprotected until a new standby is named).
    #[serde(default)]
    pub protection_since: SampleTime,
}

/// A link-control reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Answer to `discover`.
    Found {
        /// Ready radios.
        radios: Vec<RadioInfo>,
    },
    /// The request took effect at `sample_time` (link, unlink, shadow, stop_capture, reset).
    Done {
        /// Radio name.
        radio: String,
        /// Sample time at which it took effect (the start of the next tick).
        sample_time: SampleTime,
    },
    /// A timed switch is scheduled.
    Scheduled {
        /// Radio name.
        radio: String,
        /// Switch instant.
        at: SampleTime,
        /// Sample time when the request was accepted.
        now: SampleTime,
    },
    /// Answer to `status`.
    Status {
        /// Current sample time of the air.
        sample_time: SampleTime,
        /// One report per radio asked for.
        radios: Vec<StatusReport>,
        /// The link-control socket's own counters.
        #[serde(default)]
        control: ControlCounters,
    },
    /// A capture started (answer to `capture`).
    Capturing {
        /// Radio name.
        radio: String,
        /// Capture id.
        id: u64,
        /// Base name of the SigMF files inside the capture directory.
        file: String,
        /// Sample time of the first sample.
        sample_time: SampleTime,
    },
    /// The request failed; the server keeps serving.
    Error {
        /// Class.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
}

impl Request {
    /// Decodes a request.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ControlError> {
        if b.len() > MAX_MESSAGE {
            return Err(ControlError::TooLarge(b.len()));
        }
        Ok(serde_json::from_slice(b)?)
    }
    /// Encodes a request.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising these plain data types cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Reply {
    /// Decodes a reply.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ControlError> {
        if b.len() > MAX_MESSAGE * 16 {
            return Err(ControlError::TooLarge(b.len()));
        }
        Ok(serde_json::from_slice(b)?)
    }
    /// Encodes a reply.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    /// An error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shapes() {
        let r = Request::from_bytes(
            br#"{"op":"switch_at","radio":"pool","at":1920000,"endpoint":"127.0.0.1:4000"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::SwitchAt {
                radio: "pool".into(),
                at: 1_920_000,
                endpoint: "127.0.0.1:4000".parse().unwrap()
            }
        );
        assert_eq!(
            Request::from_bytes(br#"{"op":"discover"}"#).unwrap(),
            Request::Discover { radio: None }
        );
        assert!(Request::from_bytes(br#"{"op":"explode"}"#).is_err());
        assert!(Request::from_bytes(br#"{"op":"unlink","radio":"a","x":1}"#).is_err());
        assert!(Request::from_bytes(b"\xff\xfe").is_err());
        let back = Request::from_bytes(&r.to_bytes()).unwrap();
        assert_eq!(back, r);
        for r in [
            Request::CancelSwitch {
                radio: "pool".into(),
            },
            Request::Protect {
                radio: "pool".into(),
                endpoint: Some("10.0.0.2:5000".parse().unwrap()),
            },
            Request::SwitchAtFallback {
                radio: "pool".into(),
                at: 5,
                endpoint: "10.0.0.2:5000".parse().unwrap(),
                grace_ms: 200,
            },
        ] {
            assert_eq!(Request::from_bytes(&r.to_bytes()).unwrap(), r);
        }
        assert_eq!(
            Request::from_bytes(br#"{"op":"protect","radio":"pool"}"#).unwrap(),
            Request::Protect {
                radio: "pool".into(),
                endpoint: None
            }
        );
        // A status from a radio without the arbiter still parses.
        let st = StatusReport {
            info: RadioInfo {
                radio: "pool".into(),
                number: 0,
                serial: "EMU0000".into(),
                fronthaul: "127.0.0.1:1".parse().unwrap(),
                sample_rate_hz: 1_920_000,
                freq_hz: 2.14e9,
                legacy: false,
                channels: 1,
            },
            ready: true,
            linked: None,
            shadow: None,
            pending_switch: None,
            counters: Counters::default(),
            arbiter: ArbiterStatus {
                epoch: 3,
                ..Default::default()
            },
        };
        let mut v = serde_json::to_value(&st).unwrap();
        v.as_object_mut().unwrap().remove("arbiter");
        let st: StatusReport = serde_json::from_value(v).unwrap();
        assert_eq!(st.arbiter, ArbiterStatus::default());
    }

    #[test]
    fn reply_roundtrip() {
        let r = Reply::error(ErrorCode::Refused, "switch time passed");
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.contains(r#""reply":"error""#) && s.contains(r#""code":"refused""#));
        assert_eq!(Reply::from_bytes(s.as_bytes()).unwrap(), r);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a socket delivers, decoding returns (never panics) and what decodes
        /// re-encodes to the same request.
        #[test]
        fn request_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(r) = Request::from_bytes(&bytes) {
                prop_assert_eq!(Request::from_bytes(&r.to_bytes()).ok(), Some(r));
            }
        }

        #[test]
        fn near_valid_requests_never_panic(op in "[a-z_]{0,12}", radio in ".{0,20}", n in any::<u64>(), ep in ".{0,24}") {
            let j = serde_json::json!({"op": op, "radio": radio, "at": n, "samples": n,
                "endpoint": ep, "stream": "rx", "format": "ci16_le"});
            let _ = Request::from_bytes(j.to_string().as_bytes());
            let _ = Reply::from_bytes(j.to_string().as_bytes());
        }
    }

    #[test]
    fn oversized_requests_are_refused_before_parsing() {
        let big = vec![b' '; MAX_MESSAGE + 1];
        assert!(matches!(
            Request::from_bytes(&big),
            Err(ControlError::TooLarge(_))
        ));
    }

    #[test]
    fn capture_requests_carry_no_path() {
        let r = Request::from_bytes(
            br#"{"op":"capture","radio":"pool","stream":"rx","format":"ci16_le","samples":10,"path":"/root/x"}"#,
        );
        assert!(r.is_err(), "a path is not a field of capture");
    }
}
