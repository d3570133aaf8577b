//! The signed envelope shared by Ferry's agents (docs/AGENT-PROTOCOL.md) and radios' link
//! control (docs/RADIO.md): four ZeroMQ frames `["ferry/2", header, body, mac]` where `mac`
//! = HMAC-SHA256 over the tag, header and body (each length-prefixed) under a shared key.
//! The header names the recipient (`to`), the sender (`from`), the direction (`req` or
//! `rep`), a timestamp and a nonce, so a message is good for one recipient, one direction
//! and one time only. [`ReplayGuard`] refuses replays, stale messages and messages from
//! before the receiver started, and hands a retried request (same nonce, same header and
//! body) the reply it already got, so a Lazy Pirate client can retry safely.
//!
//! Pure functions: the caller supplies time, nonces and the frames read from its socket.
//! The only IO is [`load_key_file`], which refuses key files other users can read.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;

/// First frame of every message: protocol name and version.
pub const TAG: &[u8] = b"ferry/2";
/// Frames of one message.
pub const FRAMES: usize = 4;
/// Shortest acceptable key, in bytes.
pub const MIN_KEY_LEN: usize = 16;
/// Largest header frame accepted, in bytes.
pub const MAX_HEADER: usize = 512;
/// Largest body frame accepted, in bytes.
pub const MAX_BODY: usize = 1 << 20;
/// Longest identity (`to` / `from`), in bytes.
pub const MAX_IDENTITY: usize = 64;
/// Default replay window: messages whose timestamp differs from the receiver's clock by
/// more than this are refused (so hosts need clocks within a few seconds, e.g. NTP).
pub const DEFAULT_WINDOW_MS: u64 = 30_000;
/// Replies kept for retries: at most this many ...
pub const REPLY_CACHE_ENTRIES: usize = 256;
/// ... and at most this many bytes of them.
pub const REPLY_CACHE_BYTES: usize = 4 << 20;

type HmacSha256 = Hmac<Sha256>;

/// Request or reply: signed, so one cannot be passed off as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    /// A request (`"req"`).
    #[serde(rename = "req")]
    Request,
    /// A reply (`"rep"`).
    #[serde(rename = "rep")]
    Reply,
}

/// Why a message was refused (or a key not loaded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The key file holds too little key material.
    #[error("key too short: {0} bytes, need at least {MIN_KEY_LEN}")]
    KeyTooShort(usize),
    /// The key file cannot be read, or other users can read it.
    #[error("key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Not four frames, wrong tag, oversize or unparsable header.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// MAC does not verify under our key.
    #[error("bad MAC (wrong key or tampered message)")]
    BadMac,
    /// Signed for another recipient.
    #[error("addressed to {to:?}, not to {me:?}")]
    NotForUs {
        /// Recipient named in the message.
        to: String,
        /// Our identity.
        me: String,
    },
    /// A reply where a request was expected or the other way round.
    #[error("a {got:?} where a {expected:?} was expected")]
    WrongDirection {
        /// Direction in the message.
        got: Dir,
        /// Direction expected.
        expected: Dir,
    },
    /// A reply signed by someone other than the peer we asked.
    #[error("reply from {got:?}, expected {expected:?}")]
    WrongSender {
        /// Sender named in the reply.
        got: String,
        /// The peer we asked.
        expected: String,
    },
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
    /// Timestamp older than the receiver's start (the receiver cannot know which nonces it
    /// saw before it started, so it takes nothing from before).
    #[error("timestamp {ts} ms is before this receiver started ({started} ms)")]
    BeforeStart {
        /// Message timestamp.
        ts: u64,
        /// Receiver's start.
        started: u64,
    },
    /// This nonce was already accepted with another message, or its reply is forgotten.
    #[error("replayed nonce {0}")]
    Replay(String),
    /// The replay memory is full (too many messages within one window).
    #[error("replay memory full ({0} nonces), retry later")]
    MemoryFull(usize),
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

impl Eq for AuthKey {}

impl PartialEq for AuthKey {
    fn eq(&self, other: &AuthKey) -> bool {
        self.0 == other.0
    }
}

impl AuthKey {
    /// A key for another purpose derived from this one (HMAC-SHA256 of `label`), so one
    /// shared secret can key several protocols without a MAC of one being valid in another
    /// (the radio's in-band switch notices use `"ferry switch notice"`).
    pub fn derive(&self, label: &str) -> Vec<u8> {
        match <HmacSha256 as Mac>::new_from_slice(&self.0) {
            Ok(mut m) => {
                m.update(label.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

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

/// Whether a file mode lets anyone but the owner read or write the file (ssh's rule).
pub fn key_mode_too_open(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Read a key file, refusing one that group or others can access (like ssh does).
pub fn load_key_file(path: &Path) -> Result<AuthKey, AuthError> {
    let err = |message: String| AuthError::KeyFile {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if key_mode_too_open(mode) {
            return Err(err(format!(
                "permissions {mode:04o} are too open: other users can read the key \
                 (fix: chmod 600 {})",
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    AuthKey::from_file_contents(&bytes).map_err(|e| {
        err(format!(
            "{e} (make one: (umask 077; openssl rand -hex 32 > FILE))"
        ))
    })
}

/// The header frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Sender's clock, ms since the Unix epoch.
    pub ts: u64,
    /// 32 lowercase hex digits (16 random bytes), unique per message.
    pub nonce: String,
    /// Request or reply.
    pub dir: Dir,
    /// The recipient's identity (an agent's name, a radio room's or radio head's identity;
    /// on replies: the requester's `from`).
    pub to: String,
    /// The sender's identity.
    pub from: String,
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

/// Whether `id` is a usable identity: 1 to [`MAX_IDENTITY`] bytes of `[A-Za-z0-9._:@-]`.
pub fn valid_identity(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_IDENTITY
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// Build the four frames of a request from `from` to `to`.
pub fn seal_request(
    key: &AuthKey,
    ts: u64,
    nonce: [u8; 16],
    from: &str,
    to: &str,
    body: &[u8],
) -> Vec<Vec<u8>> {
    let header = Header {
        ts,
        nonce: hex_encode(&nonce),
        dir: Dir::Request,
        to: to.to_string(),
        from: from.to_string(),
        re: None,
    };
    seal(key, &header, body)
}

/// Build the four frames of a reply from `from` to `to` answering the request whose nonce
/// is `re`.
pub fn seal_reply(
    key: &AuthKey,
    ts: u64,
    nonce: [u8; 16],
    from: &str,
    to: &str,
    re: &str,
    body: &[u8],
) -> Vec<Vec<u8>> {
    let header = Header {
        ts,
        nonce: hex_encode(&nonce),
        dir: Dir::Reply,
        to: to.to_string(),
        from: from.to_string(),
        re: Some(re.to_string()),
    };
    seal(key, &header, body)
}

/// Build the four frames of any header (tests, tools).
pub fn seal(key: &AuthKey, header: &Header, body: &[u8]) -> Vec<Vec<u8>> {
    let h = serde_json::to_vec(header).unwrap_or_default();
    let mac = key.mac(&h, body).finalize().into_bytes();
    vec![
        TAG.to_vec(),
        h,
        body.to_vec(),
        hex_encode(&mac).into_bytes(),
    ]
}

/// Check framing and MAC of received frames (no addressing or replay check: see
/// [`open_request`], [`open_reply`] and [`ReplayGuard`]).
pub fn open<F: AsRef<[u8]>>(key: &AuthKey, frames: &[F]) -> Result<Opened, AuthError> {
    let [tag, header, body, mac] = frames else {
        return Err(AuthError::Malformed(format!(
            "{} frames, expected {FRAMES} [tag, header, body, mac]",
            frames.len()
        )));
    };
    let (tag, header, body, mac) = (tag.as_ref(), header.as_ref(), body.as_ref(), mac.as_ref());
    if tag != TAG {
        return Err(AuthError::Malformed(format!(
            "first frame is not {:?}",
            String::from_utf8_lossy(TAG)
        )));
    }
    if header.len() > MAX_HEADER || body.len() > MAX_BODY {
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
    if !valid_identity(&header.to) || !valid_identity(&header.from) {
        return Err(AuthError::Malformed(
            "to/from must be 1-64 characters of [A-Za-z0-9._:@-]".into(),
        ));
    }
    Ok(Opened {
        header,
        body: body.to_vec(),
    })
}

/// Open a request addressed to `me` (MAC, direction and recipient checked; replay is the
/// [`ReplayGuard`]'s job).
pub fn open_request<F: AsRef<[u8]>>(
    key: &AuthKey,
    frames: &[F],
    me: &str,
) -> Result<Opened, AuthError> {
    let o = open(key, frames)?;
    if o.header.dir != Dir::Request {
        return Err(AuthError::WrongDirection {
            got: o.header.dir,
            expected: Dir::Request,
        });
    }
    if o.header.to != me {
        return Err(AuthError::NotForUs {
            to: o.header.to,
            me: me.to_string(),
        });
    }
    Ok(o)
}

/// Open a reply and check it comes from `peer`, is addressed to `me` and answers the
/// request sent with nonce `request_nonce`.
pub fn open_reply<F: AsRef<[u8]>>(
    key: &AuthKey,
    frames: &[F],
    me: &str,
    peer: &str,
    request_nonce: &str,
) -> Result<Opened, AuthError> {
    let o = open(key, frames)?;
    if o.header.dir != Dir::Reply {
        return Err(AuthError::WrongDirection {
            got: o.header.dir,
            expected: Dir::Reply,
        });
    }
    if o.header.from != peer {
        return Err(AuthError::WrongSender {
            got: o.header.from,
            expected: peer.to_string(),
        });
    }
    if o.header.to != me {
        return Err(AuthError::NotForUs {
            to: o.header.to,
            me: me.to_string(),
        });
    }
    if o.header.re.as_deref() != Some(request_nonce) {
        return Err(AuthError::WrongCorrelation {
            got: o.header.re.clone(),
            expected: request_nonce.to_string(),
        });
    }
    Ok(o)
}

/// The nonce and sender named in a message's header, read *without* verifying it: only
/// for addressing the `unauthorized` reply to a request that failed verification. Falls
/// back to 32 zeros and `"unknown"`.
pub fn unverified_return_address<F: AsRef<[u8]>>(frames: &[F]) -> (String, String) {
    #[derive(Deserialize)]
    struct Loose {
        nonce: Option<String>,
        from: Option<String>,
    }
    let h = frames
        .get(1)
        .map(AsRef::as_ref)
        .filter(|h| h.len() <= MAX_HEADER)
        .and_then(|h| serde_json::from_slice::<Loose>(h).ok());
    let nonce = h
        .as_ref()
        .and_then(|h| h.nonce.clone())
        .filter(|n| n.len() == 32 && is_lower_hex(n.as_bytes()))
        .unwrap_or_else(|| "0".repeat(32));
    let from = h
        .and_then(|h| h.from)
        .filter(|f| valid_identity(f))
        .unwrap_or_else(|| "unknown".into());
    (nonce, from)
}

/// What [`ReplayGuard::admit`] decided about an authentic request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new request: handle it, then give its reply to [`ReplayGuard::remember_reply`].
    Fresh,
    /// A retry of a request already answered: send these frames again, handle nothing.
    Retry(Vec<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Seen {
    header: Header,
    body_digest: [u8; 32],
}

/// The receiver's memory of requests: refuses timestamps before its start or outside the
/// window, and nonces seen with another message; answers retries with the cached reply.
/// Memory is bounded: nonces older than the window are forgotten, at most `capacity` are
/// kept (when full, new messages are refused rather than old nonces forgotten early), and
/// the reply cache holds at most [`REPLY_CACHE_ENTRIES`] replies of
/// [`REPLY_CACHE_BYTES`] in all (a retry whose reply is gone is refused as a replay).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    started_ms: u64,
    window_ms: u64,
    capacity: usize,
    by_time: BTreeSet<(u64, String)>,
    seen: HashMap<String, Seen>,
    replies: VecDeque<(String, Vec<Vec<u8>>)>,
    reply_bytes: usize,
}

impl ReplayGuard {
    /// A guard for a receiver that started at `started_ms` (ms since the Unix epoch), with
    /// the given window and capacity.
    pub fn new(started_ms: u64, window_ms: u64, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            started_ms,
            window_ms,
            capacity,
            by_time: BTreeSet::new(),
            seen: HashMap::new(),
            replies: VecDeque::new(),
            reply_bytes: 0,
        }
    }

    /// Admit an opened request at local time `now_ms`, or say why not.
    pub fn admit(&mut self, now_ms: u64, msg: &Opened) -> Result<Admission, AuthError> {
        let header = &msg.header;
        if header.ts < self.started_ms {
            return Err(AuthError::BeforeStart {
                ts: header.ts,
                started: self.started_ms,
            });
        }
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
            self.seen.remove(&first.1);
        }
        let digest: [u8; 32] = Sha256::digest(&msg.body).into();
        if let Some(seen) = self.seen.get(&header.nonce) {
            if seen.header == *header && seen.body_digest == digest {
                if let Some((_, frames)) = self.replies.iter().find(|(n, _)| *n == header.nonce) {
                    return Ok(Admission::Retry(frames.clone()));
                }
            }
            return Err(AuthError::Replay(header.nonce.clone()));
        }
        if self.seen.len() >= self.capacity {
            return Err(AuthError::MemoryFull(self.capacity));
        }
        self.seen.insert(
            header.nonce.clone(),
            Seen {
                header: header.clone(),
                body_digest: digest,
            },
        );
        self.by_time.insert((header.ts, header.nonce.clone()));
        Ok(Admission::Fresh)
    }

    /// Keep the reply sent to the request with `nonce`, for its retries.
    pub fn remember_reply(&mut self, nonce: &str, frames: &[Vec<u8>]) {
        let size: usize = frames.iter().map(Vec::len).sum();
        if size > REPLY_CACHE_BYTES {
            return;
        }
        while self.replies.len() >= REPLY_CACHE_ENTRIES
            || self.reply_bytes + size > REPLY_CACHE_BYTES
        {
            match self.replies.pop_front() {
                Some((_, f)) => self.reply_bytes -= f.iter().map(Vec::len).sum::<usize>(),
                None => break,
            }
        }
        self.reply_bytes += size;
        self.replies.push_back((nonce.to_string(), frames.to_vec()));
    }

    /// Nonces currently remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Replies currently cached for retries.
    pub fn cached_replies(&self) -> usize {
        self.replies.len()
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
mod tests;
