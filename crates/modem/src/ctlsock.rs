//! The control socket's connection bookkeeping, bounded everywhere so a local client can
//! neither stall the real-time loop nor make the modem buffer without limit:
//!
//! - [`LineReader`]: request bytes in, complete lines out; a line longer than
//!   [`MAX_LINE`] is refused before anything is parsed.
//! - [`OutBuffer`]: reply bytes waiting for a client to read them, capped at
//!   [`MAX_PENDING_OUT`]; a client that lets it fill is dropped, never waited for.
//! - [`bounded_reply`]: one reply line of at most [`MAX_REPLY`] bytes.
//! - [`evict_for_new`]: which connection makes room when the cap is reached (the one idle
//!   longest), so idle connections cannot lock the agent out.
//!
//! Pure: bytes and times in, decisions out; the IO is in `run.rs`.

use crate::proto::ModemReply;
use std::collections::VecDeque;

pub use crate::proto::MAX_LINE;
/// Longest reply line sent; a longer one is replaced by an error reply.
pub const MAX_REPLY: usize = 64 * 1024;
/// Reply bytes held for one client that does not read; beyond this it is dropped.
pub const MAX_PENDING_OUT: usize = 64 * 1024;
/// Connections served at once; a new one beyond this evicts the one idle longest.
pub const MAX_CONNECTIONS: usize = 16;
/// Requests handled per poll over all connections (round robin): bounds the real-time
/// loop's work whatever the clients send.
pub const REQUESTS_PER_POLL: usize = 4;
/// Connections accepted per poll: a connect flood cannot push out a connection before its
/// first request has been read.
pub const ACCEPTS_PER_POLL: usize = 4;

/// What [`LineReader::next_line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without the newline), possibly with invalid UTF-8 replaced.
    Complete(String),
    /// The client sent more than [`MAX_LINE`] bytes without a newline.
    TooLong(usize),
}

/// Splits a byte stream into lines of bounded length.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    max: usize,
}

impl LineReader {
    /// A reader refusing lines longer than `max` bytes.
    pub fn new(max: usize) -> LineReader {
        LineReader {
            buf: Vec::new(),
            max,
        }
    }

    /// How many more bytes may be read before a line must end (reads are sized by this, so
    /// the buffer never exceeds `max + 1`).
    pub fn room(&self) -> usize {
        (self.max + 1).saturating_sub(self.buf.len())
    }

    /// Append bytes read from the socket (at most [`LineReader::room`] of them are kept).
    pub fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.room());
        self.buf.extend_from_slice(bytes.get(..n).unwrap_or(&[]));
    }

    /// The next complete line, or `TooLong` once more than `max` bytes came without a
    /// newline (the caller refuses and closes: the rest of the stream has no framing).
    pub fn next_line(&mut self) -> Option<Line> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(pos) if pos <= self.max => {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(line.get(..pos).unwrap_or(&[]));
                Some(Line::Complete(text.into_owned()))
            }
            _ if self.buf.len() > self.max => {
                let n = self.buf.len();
                self.buf.clear();
                Some(Line::TooLong(n))
            }
            _ => None,
        }
    }
}

/// Reply bytes not yet taken by the client.
#[derive(Debug, Default)]
pub struct OutBuffer {
    bytes: VecDeque<u8>,
    max: usize,
}

/// The client does not read its replies: drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("client does not read its replies ({pending} bytes pending, limit {limit})")]
pub struct Overflow {
    /// Bytes that would be pending.
    pub pending: usize,
    /// The cap.
    pub limit: usize,
}

impl OutBuffer {
    /// A buffer holding at most `max` bytes.
    pub fn new(max: usize) -> OutBuffer {
        OutBuffer {
            bytes: VecDeque::new(),
            max,
        }
    }

    /// Queue one reply line; refused (nothing queued) if it would exceed the cap.
    pub fn queue(&mut self, line: &[u8]) -> Result<(), Overflow> {
        let pending = self.bytes.len() + line.len();
        if pending > self.max {
            return Err(Overflow {
                pending,
                limit: self.max,
            });
        }
        self.bytes.extend(line);
        Ok(())
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next contiguous bytes to write.
    pub fn front(&self) -> &[u8] {
        self.bytes.as_slices().0
    }

    /// `n` bytes were written.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n);
    }
}

/// `reply` as one newline-terminated line of at most [`MAX_REPLY`] bytes: a longer one is
/// replaced by an error reply saying so.
pub fn bounded_reply(reply: &ModemReply) -> Vec<u8> {
    let mut text = reply.to_line();
    if text.len() + 1 > MAX_REPLY {
        let n = text.len();
        text = ModemReply::err(
            &reply.cmd,
            format!("reply of {n} bytes exceeds the control socket's limit of {MAX_REPLY}"),
        )
        .to_line();
    }
    text.push('\n');
    text.into_bytes()
}

/// With `open` connections whose last activity was at `last_active` (same order), which
/// one to close so a new connection fits under `cap`: the one idle longest, or `None`
/// while there is room.
pub fn evict_for_new<T: Ord + Copy>(last_active: &[T], cap: usize) -> Option<usize> {
    if last_active.len() < cap {
        return None;
    }
    last_active
        .iter()
        .enumerate()
        .min_by_key(|(_, t)| **t)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_split_and_overlong_is_refused() {
        let mut r = LineReader::new(10);
        r.push(b"{\"a\":1}\n{\"b");
        assert_eq!(r.next_line(), Some(Line::Complete("{\"a\":1}".into())));
        assert_eq!(r.next_line(), None);
        r.push(b"\":2}\n");
        assert_eq!(r.next_line(), Some(Line::Complete("{\"b\":2}".into())));
        // Exactly max is fine; max + 1 without a newline is refused.
        r.push(b"0123456789\n");
        assert_eq!(r.next_line(), Some(Line::Complete("0123456789".into())));
        r.push(&[b'x'; 100]);
        assert_eq!(r.room(), 0);
        assert_eq!(r.next_line(), Some(Line::TooLong(11)));
        assert_eq!(r.next_line(), None);
    }

    #[test]
    fn out_buffer_caps_and_drains() {
        let mut o = OutBuffer::new(8);
        o.queue(b"abcde").unwrap();
        assert_eq!(
            o.queue(b"fghi"),
            Err(Overflow {
                pending: 9,
                limit: 8
            })
        );
        assert_eq!(o.len(), 5);
        assert_eq!(o.front(), b"abcde");
        o.consume(3);
        o.queue(b"fgh").unwrap();
        let mut all = Vec::new();
        while !o.is_empty() {
            let f = o.front().to_vec();
            o.consume(f.len());
            all.extend(f);
        }
        assert_eq!(all, b"defgh");
    }

    #[test]
    fn huge_replies_become_an_error_line() {
        let big = ModemReply::ok(
            "get_routes",
            Some(serde_json::Value::String("r".repeat(MAX_REPLY))),
        );
        let line = bounded_reply(&big);
        assert!(line.len() < 200);
        let text = String::from_utf8(line).unwrap();
        assert!(
            text.contains("exceeds the control socket's limit"),
            "{text}"
        );
        assert!(text.ends_with('\n'));
        let small = bounded_reply(&ModemReply::ok("status", None));
        assert_eq!(small, b"{\"ok\":true,\"cmd\":\"status\"}\n");
    }

    #[test]
    fn the_connection_idle_longest_makes_room() {
        assert_eq!(evict_for_new(&[5, 1, 3], 4), None);
        assert_eq!(evict_for_new(&[5, 1, 3, 9], 4), Some(1));
    }

    proptest! {
        #[test]
        fn reader_never_holds_more_than_max_plus_one(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40),
            max in 1usize..50,
        ) {
            let mut r = LineReader::new(max);
            for c in &chunks {
                r.push(c);
                prop_assert!(r.buf.len() <= max + 1);
                while let Some(l) = r.next_line() {
                    if let Line::Complete(s) = l {
                        prop_assert!(s.len() <= 3 * max);
                    }
                }
            }
        }

        #[test]
        fn every_line_gets_a_bounded_reply(s in ".{0,300}") {
            let reply = match crate::proto::parse_request(&s) {
                Ok(req) => ModemReply::ok(req.name(), None),
                Err(e) => ModemReply::refused(&e),
            };
            prop_assert!(bounded_reply(&reply).len() <= MAX_REPLY);
        }
    }
}
