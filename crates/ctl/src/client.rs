//! A request/reply client of one agent with the zguide's Lazy Pirate pattern: every request
//! has a deadline; when it passes, the REQ socket is closed and a fresh one is made, so a
//! dead or slow peer never wedges the console and a late reply can never be mistaken for
//! the answer to a later request.

use ferry_migrate::auth::{self, AuthKey};
use ferry_migrate::{Reply, Request};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The identity an agent has unless `ferry agent --name` gives another.
pub const DEFAULT_AGENT_NAME: &str = "agent";

/// Why a call produced no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No reply within the deadline (the socket was recreated).
    #[error("no reply from {endpoint} within {ms} ms")]
    Timeout {
        /// Peer.
        endpoint: String,
        /// Deadline.
        ms: u64,
    },
    /// Socket trouble (bad endpoint ...).
    #[error("zmq {endpoint}: {message}")]
    Zmq {
        /// Peer.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// A reply came but does not verify or answers another request.
    #[error("bad reply from {endpoint}: {message}")]
    BadReply {
        /// Peer.
        endpoint: String,
        /// Why.
        message: String,
    },
}

/// A Lazy Pirate client of one agent.
pub struct AgentClient {
    ctx: zmq::Context,
    endpoint: String,
    key: AuthKey,
    recipient: String,
    me: String,
    retries: u32,
    timeout: Duration,
    sock: Option<zmq::Socket>,
    /// Sockets recreated after a timeout (for tests and logs).
    pub reconnects: u64,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl AgentClient {
    /// A client of the agent named [`DEFAULT_AGENT_NAME`] at `endpoint`; `timeout` is the
    /// default deadline of each request.
    pub fn new(endpoint: impl Into<String>, key: AuthKey, timeout: Duration) -> AgentClient {
        AgentClient::named(DEFAULT_AGENT_NAME, endpoint, key, timeout)
    }

    /// A client of the agent named `name` (its `ferry agent --name`) at `endpoint`.
    pub fn named(
        name: impl Into<String>,
        endpoint: impl Into<String>,
        key: AuthKey,
        timeout: Duration,
    ) -> AgentClient {
        AgentClient {
            ctx: zmq::Context::new(),
            endpoint: endpoint.into(),
            key,
            recipient: name.into(),
            me: "ctl".into(),
            retries: 0,
            timeout,
            sock: None,
            reconnects: 0,
        }
    }

    /// Resend an unanswered request this many times (the same signed frames on a fresh
    /// socket, each with the full deadline): the agent runs it at most once and answers a
    /// retry with the reply it already gave.
    pub fn with_retries(mut self, retries: u32) -> AgentClient {
        self.retries = retries;
        self
    }

    /// The agent's identity (recipient of every request).
    pub fn recipient(&self) -> &str {
        &self.recipient
    }

    /// The peer's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Default deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn zerr(&self, e: zmq::Error) -> CallError {
        CallError::Zmq {
            endpoint: self.endpoint.clone(),
            message: e.to_string(),
        }
    }

    fn socket(&mut self) -> Result<&zmq::Socket, CallError> {
        if self.sock.is_none() {
            let s = self.ctx.socket(zmq::REQ).map_err(|e| self.zerr(e))?;
            s.set_linger(0).map_err(|e| self.zerr(e))?;
            // A reply frame is never larger than the envelope's body limit: a peer that
            // sends more is cut off by libzmq before it is buffered.
            let max = ferry_migrate::auth::MAX_BODY + 4096;
            s.set_maxmsgsize(max as i64).map_err(|e| self.zerr(e))?;
            s.connect(&self.endpoint).map_err(|e| self.zerr(e))?;
            self.sock = Some(s);
        }
        self.sock.as_ref().ok_or_else(|| CallError::Zmq {
            endpoint: self.endpoint.clone(),
            message: "no socket".into(),
        })
    }

    /// Send a request, wait at most the default deadline.
    pub fn call(&mut self, request: &Request) -> Result<Reply, CallError> {
        self.call_body(&request.encode(), self.timeout)
    }

    /// Send raw body bytes (scripts, malformed-input tests), wait at most `timeout`.
    pub fn call_body(&mut self, body: &[u8], timeout: Duration) -> Result<Reply, CallError> {
        let nonce: [u8; 16] = rand::random();
        let frames = auth::seal_request(
            &self.key,
            epoch_ms(),
            nonce,
            &self.me,
            &self.recipient,
            body,
        );
        let nonce_hex = auth::hex_encode(&nonce);
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        // The deadline is the whole call's: each of the 1 + retries tries gets its share,
        // so a dead agent costs `timeout`, not (1 + retries) × `timeout`.
        let per_try = (ms / (u64::from(self.retries) + 1)).max(1);
        let mut tries = 0;
        let got = loop {
            let sock = self.socket()?;
            let sent = sock.send_multipart(frames.iter(), zmq::DONTWAIT);
            let got = match sent {
                Ok(()) => {
                    match sock.poll(zmq::POLLIN, i64::try_from(per_try).unwrap_or(i64::MAX)) {
                        Ok(n) if n > 0 => Some(sock.recv_multipart(0)),
                        _ => None,
                    }
                }
                // Not even queued (no peer yet on some transports): same as no reply.
                Err(_) => None,
            };
            match got {
                Some(g) => break g,
                None => {
                    // Lazy Pirate: a REQ socket that sent and got nothing cannot send again.
                    self.sock = None;
                    self.reconnects += 1;
                    if tries >= self.retries {
                        return Err(CallError::Timeout {
                            endpoint: self.endpoint.clone(),
                            ms,
                        });
                    }
                    tries += 1;
                }
            }
        };
        let frames = got.map_err(|e| {
            self.sock = None;
            self.zerr(e)
        })?;
        let bad = |message: String| CallError::BadReply {
            endpoint: self.endpoint.clone(),
            message,
        };
        let opened = auth::open_reply(&self.key, &frames, &self.me, &self.recipient, &nonce_hex)
            .map_err(|e| bad(e.to_string()))?;
        Reply::decode(&opened.body).map_err(|e| bad(e.to_string()))
    }
}
