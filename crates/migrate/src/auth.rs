//! Authenticated framing of agent messages: four ZeroMQ frames
//! `["ferry/1", header, body, mac]` where `mac` = HMAC-SHA256 over the tag, header and body
//! (each length-prefixed) under a shared key, and the header carries a timestamp and nonce
//! checked against replays. Pure functions: the caller supplies time and nonces.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeSet, HashSet};

/// First frame of every message: protocol name and version.
pub const TAG: &[u8] = b"ferry/1";
/// Shortest acceptable key, in bytes.
pub const MIN_KEY_LEN: usize = 16;
/// Largest header frame accepted, in bytes.
pub const MAX_HEADER: usize = 256;
/// Default replay window: requests whose timestamp differs from the agent's clock by more
/// than this are refused (so hosts need clocks within a few seconds, e.g. NTP).
pub const DEFAULT_WINDOW_MS: u64 = 30_000;

type HmacSha256 = Hmac<Sha256>;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The key file holds too little key material.
    #[error("key too short: {0} bytes, need at least {MIN_KEY_LEN}")]
    KeyTooShort(usize),
    /// Not four frames, wrong tag, oversize or unparsable header.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// MAC does not verify under our key.
    #[error("bad MAC (wrong key or tampered message)")]
    BadMac,
    /// Timestamp outside the replay window.
    #[error("timestamp {ts} ms is {skew} ms from now, outside the {window} ms window")]
    Stale {
        /// Message timestamp.
        ts: u64,
        /// |ts − now|.
        skew: u64,
        /// Allowed skew.
        window: u64,
    },
    /// This nonce was already accepted.
    #[error("replayed nonce {0}")]
    Replay(String),
    /// A reply that does not answer the request we sent.
    #[error("reply answers nonce {got:?}, expected {expected}")]
    WrongCorrelation {
        /// Nonce the reply names.
        got: Option<String>,
        /// Our request's nonce.
        expected: String,
    },
}

/// The shared key.
#[derive(Clone)]
pub struct AuthKey(Vec<u8>);

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthKey({} bytes)", self.0.len())
    }
}

impl AuthKey {
    /// A key from raw bytes (at least [`MIN_KEY_LEN`]).
    pub fn new(bytes: &[u8]) -> Result<AuthKey, AuthError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(AuthError::KeyTooShort(bytes.len()));
        }
        Ok(AuthKey(bytes.to_vec()))
    }

    /// A key from a key file's contents: if the trimmed text is all hex digits (even count)
    /// it is decoded, otherwise the trimmed bytes are the key.
    pub fn from_file_contents(contents: &[u8]) -> Result<AuthKey, AuthError> {
        let trimmed = contents.trim_ascii();
        match hex_decode(trimmed) {
            Some(bytes) => AuthKey::new(&bytes),
            None => AuthKey::new(trimmed),
        }
    }

    fn mac(&self, header: &[u8], body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so the fallback (a zero key) is never taken; it
        // only keeps this free of panics.
        let mut m = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()),
        };
        for part in [TAG, header, body] {
            m.update(&(part.len() as u32).to_be_bytes());
            m.update(part);
        }
        m
    }
}

/// The header frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Sender's clock, ms since the Unix epoch.
    pub ts: u64,
    /// 32 lowercase hex digits (16 random bytes), unique per message.
    pub nonce: String,
    /// On replies: the nonce of the request answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<String>,
}

/// A verified message: header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The verified header.
    pub header: Header,
    /// The verified body (JSON request or reply).
    pub body: Vec<u8>,
}

/// Build the four frames of a request.
pub fn seal_request(key: &AuthKey, ts: u64, nonce: [u8; 16], body: &[u8]) -> Vec<Vec<u8>> {
    seal(
        key,
        Header {
            ts,
            nonce: hex_encode(&nonce),
            re: None,
        },
        body,
    )
}

/// Build the four frames of a reply to the request whose nonce is `re`.
pub fn seal_reply(key: &AuthKey, ts: u64, nonce: [u8; 16], re: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let header = Header {
        ts,
        nonce: hex_encode(&nonce),
        re: Some(re.to_string()),
    };
    seal(key, header, body)
}

fn seal(key: &AuthKey, header: Header, body: &[u8]) -> Vec<Vec<u8>> {
    let h = serde_json::to_vec(&header).unwrap_or_default();
    let mac = key.mac(&h, body).finalize().into_bytes();
    vec![
        TAG.to_vec(),
        h,
        body.to_vec(),
        hex_encode(&mac).into_bytes(),
    ]
}

/// Check framing and MAC of received frames (no replay check: see [`ReplayGuard`]).
pub fn open<F: AsRef<[u8]>>(key: &AuthKey, frames: &[F]) -> Result<Opened, AuthError> {
    let [tag, header, body, mac] = frames else {
        return Err(AuthError::Malformed(format!(
            "{} frames, expected 4 [tag, header, body, mac]",
            frames.len()
        )));
    };
    let (tag, header, body, mac) = (tag.as_ref(), header.as_ref(), body.as_ref(), mac.as_ref());
    if tag != TAG {
        return Err(AuthError::Malformed(
            "first frame is not \"ferry/1\"".into(),
        ));
    }
    if header.len() > MAX_HEADER || body.len() > crate::protocol::MAX_BODY {
        return Err(AuthError::Malformed("frame too large".into()));
    }
    // Lowercase only, so each MAC has exactly one encoding.
    let mac = Some(mac)
        .filter(|m| m.len() == 64 && is_lower_hex(m))
        .and_then(hex_decode)
        .ok_or_else(|| AuthError::Malformed("mac must be 64 lowercase hex digits".into()))?;
    key.mac(header, body)
        .verify_slice(&mac)
        .map_err(|_| AuthError::BadMac)?;
    let header: Header =
        serde_json::from_slice(header).map_err(|e| AuthError::Malformed(format!("header: {e}")))?;
    if header.nonce.len() != 32 || !is_lower_hex(header.nonce.as_bytes()) {
        return Err(AuthError::Malformed(
            "nonce must be 32 lowercase hex digits".into(),
        ));
    }
    Ok(Opened {
        header,
        body: body.to_vec(),
    })
}

/// Open a reply and check it answers the request sent with nonce `request_nonce`.
pub fn open_reply<F: AsRef<[u8]>>(
    key: &AuthKey,
    frames: &[F],
    request_nonce: &str,
) -> Result<Opened, AuthError> {
    let o = open(key, frames)?;
    if o.header.re.as_deref() != Some(request_nonce) {
        return Err(AuthError::WrongCorrelation {
            got: o.header.re.clone(),
            expected: request_nonce.to_string(),
        });
    }
    Ok(o)
}

/// The nonce named in a message's header, read *without* verifying it: only for addressing
/// the `unauthorized` reply to a request that failed verification.
pub fn unverified_nonce<F: AsRef<[u8]>>(frames: &[F]) -> Option<String> {
    let header = frames.get(1)?.as_ref();
    if header.len() > MAX_HEADER {
        return None;
    }
    let h: Header = serde_json::from_slice(header).ok()?;
    (h.nonce.len() == 32 && is_lower_hex(h.nonce.as_bytes())).then_some(h.nonce)
}

/// Refuses stale timestamps and repeated nonces within the window. Memory is bounded:
/// nonces older than the window are forgotten, and at most `capacity` are kept (when full,
/// new messages are refused rather than old nonces forgotten early).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    by_time: BTreeSet<(u64, String)>,
    nonces: HashSet<String>,
}

impl ReplayGuard {
    /// A guard with the given window and capacity.
    pub fn new(window_ms: u64, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            window_ms,
            capacity,
            by_time: BTreeSet::new(),
            nonces: HashSet::new(),
        }
    }

    /// Accept `header` at local time `now_ms` (ms since the Unix epoch), or say why not.
    pub fn check(&mut self, now_ms: u64, header: &Header) -> Result<(), AuthError> {
        let skew = now_ms.abs_diff(header.ts);
        if skew > self.window_ms {
            return Err(AuthError::Stale {
                ts: header.ts,
                skew,
                window: self.window_ms,
            });
        }
        // Forget nonces whose timestamps can no longer pass the window check.
        let horizon = now_ms.saturating_sub(self.window_ms);
        while let Some(first) = self.by_time.first().cloned() {
            if first.0 >= horizon {
                break;
            }
            self.by_time.remove(&first);
            self.nonces.remove(&first.1);
        }
        if self.nonces.contains(&header.nonce) {
            return Err(AuthError::Replay(header.nonce.clone()));
        }
        if self.nonces.len() >= self.capacity {
            return Err(AuthError::Malformed(
                "replay memory full, retry later".into(),
            ));
        }
        self.nonces.insert(header.nonce.clone());
        self.by_time.insert((header.ts, header.nonce.clone()));
        Ok(())
    }

    /// Nonces currently remembered.
    pub fn remembered(&self) -> usize {
        self.nonces.len()
    }
}

/// Lowercase hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn is_lower_hex(text: &[u8]) -> bool {
    text.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Decode hex (either case); `None` unless every byte is a hex digit and the count is even.
pub fn hex_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    text.chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuthKey {
        AuthKey::from_file_contents(b"00112233445566778899aabbccddeeff\n").expect("key")
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let frames = seal_request(&key(), 1_000, [7; 16], br#"{"cmd":"status"}"#);
        let o = open(&key(), &frames).expect("verifies");
        assert_eq!(o.body, br#"{"cmd":"status"}"#);
        assert_eq!(o.header.nonce, "07".repeat(16));
        let mut bad = frames.clone();
        if let Some(b) = bad.get_mut(2) {
            *b = br#"{"cmd":"double_kill"}"#.to_vec();
        }
        assert_eq!(open(&key(), &bad), Err(AuthError::BadMac));
        let other = AuthKey::new(b"another key, 16+ bytes").expect("key");
        assert_eq!(open(&other, &frames), Err(AuthError::BadMac));
        assert!(matches!(
            open(&key(), &frames[..3]),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn known_mac_vector() {
        let frames = seal_request(
            &key(),
            1_700_000_000_000,
            [0; 16],
            br#"{"cmd":"get_tun_ip"}"#,
        );
        let header = frames.get(1).cloned().unwrap_or_default();
        assert_eq!(
            header,
            br#"{"ts":1700000000000,"nonce":"00000000000000000000000000000000"}"#
        );
        let mac = frames.get(3).cloned().unwrap_or_default();
        // Computed independently with Python's hmac/hashlib (see docs/AGENT-PROTOCOL.md).
        assert_eq!(
            String::from_utf8_lossy(&mac),
            "5ae4b27de8fbec06027b05f6a401d123e00fd9104a5e7f0285905b8fc9854d0a"
        );
    }

    #[test]
    fn accepts_frames_made_by_python() {
        // Made by the Python helper in docs/AGENT-PROTOCOL.md (json.dumps with its default
        // spacing: the MAC covers the header bytes as sent, whatever their formatting).
        let frames: [&[u8]; 4] = [
            b"ferry/1",
            br#"{"ts": 1700000000123, "nonce": "abababababababababababababababab"}"#,
            br#"{"cmd": "set_tun_ip", "tun_ip": "192.168.40.9"}"#,
            b"d276f2cdce5aa6da1cf9a5523bf548ee710da39443e07cb85c366d451daa2fde",
        ];
        let o = open(&key(), &frames).expect("python frames verify");
        assert_eq!(o.header.ts, 1_700_000_000_123);
        let req = crate::protocol::Request::decode(&o.body).expect("decodes");
        assert_eq!(req.cmd(), "set_tun_ip");
        assert_eq!(
            unverified_nonce(&frames).as_deref(),
            Some("ab".repeat(16).as_str())
        );
    }

    #[test]
    fn reply_correlation() {
        let req = seal_request(&key(), 5, [1; 16], b"{}");
        let nonce = open(&key(), &req).expect("ok").header.nonce;
        let rep = seal_reply(&key(), 6, [2; 16], &nonce, br#"{"ok":true,"cmd":"end"}"#);
        assert!(open_reply(&key(), &rep, &nonce).is_ok());
        assert!(matches!(
            open_reply(&key(), &rep, &"ff".repeat(16)),
            Err(AuthError::WrongCorrelation { .. })
        ));
    }

    #[test]
    fn replay_guard_window_and_memory() {
        let mut g = ReplayGuard::new(1_000, 3);
        let h = |ts, n: u8| Header {
            ts,
            nonce: hex_encode(&[n; 16]),
            re: None,
        };
        assert_eq!(g.check(10_000, &h(10_000, 1)), Ok(()));
        assert_eq!(
            g.check(10_100, &h(10_000, 1)),
            Err(AuthError::Replay(hex_encode(&[1; 16])))
        );
        assert!(matches!(
            g.check(12_000, &h(10_000, 2)),
            Err(AuthError::Stale { .. })
        ));
        assert_eq!(g.check(10_500, &h(10_400, 2)), Ok(()));
        assert_eq!(g.check(10_500, &h(10_450, 3)), Ok(()));
        assert!(matches!(
            g.check(10_500, &h(10_450, 4)),
            Err(AuthError::Malformed(_))
        ));
        // Time passes: old nonces are forgotten and memory frees.
        assert_eq!(g.check(11_420, &h(11_420, 4)), Ok(()));
        assert_eq!(g.remembered(), 2); // nonces 3 and 4
    }

    #[test]
    fn hex_and_keys() {
        assert_eq!(hex_decode(b"0aFf"), Some(vec![10, 255]));
        assert_eq!(hex_decode(b"0g"), None);
        assert_eq!(hex_decode(b"abc"), None);
        assert!(matches!(
            AuthKey::new(b"short"),
            Err(AuthError::KeyTooShort(5))
        ));
        assert!(AuthKey::from_file_contents(b"a passphrase of some length").is_ok());
    }
}
