//! Runs one migration-core [`Sequence`] to its [`Outcome`]: local steps on this host through
//! [`HostExec`], requests to the local or remote agent through Lazy Pirate clients, radio
//! commands through `ferry air`'s link control. One effect at a time; every effect bounded
//! by the sequence's own deadline.

use crate::client::{AgentClient, CallError};
use ferry_agent::{HostExec, StepError};
use ferry_fronthaul::control::{Reply as RadioReply, Request as RadioRequest};
use ferry_migrate::{
    Action, ErrorKind, Event, Outcome, Peer, RadioClock, RadioOp, RadioValue, Reply, Report,
    Sequence,
};
use ferry_radio::ControlClient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The radio's link control, for make-before-break.
pub struct RadioControl {
    /// Client of `ferry air`'s control endpoint.
    pub client: ControlClient,
    /// Radio name (e.g. `pool`).
    pub radio: String,
}

impl RadioControl {
    fn endpoint(to: &str) -> Result<SocketAddr, String> {
        to.parse()
            .map_err(|_| format!("radio endpoint {to:?} is not ip:port"))
    }

    /// Perform one radio command.
    pub fn perform(&self, op: &RadioOp) -> Result<RadioValue, String> {
        let radio = self.radio.clone();
        let req = match op {
            RadioOp::Clock => {
                let (t, st) = self.client.status(&radio).map_err(|e| e.to_string())?;
                return Ok(RadioValue::Clock(RadioClock {
                    sample: t,
                    rate_hz: u64::from(st.info.sample_rate_hz),
                    primary: st.linked.map(|a| a.to_string()),
                }));
            }
            RadioOp::Shadow { to } => RadioRequest::Shadow {
                radio,
                endpoint: Some(Self::endpoint(to)?),
            },
            RadioOp::Unshadow { .. } => RadioRequest::Shadow {
                radio,
                endpoint: None,
            },
            RadioOp::SwitchAt {
                at,
                to,
                grace_ms: 0,
            } => RadioRequest::SwitchAt {
                radio,
                at: *at,
                endpoint: Self::endpoint(to)?,
            },
            RadioOp::SwitchAt { at, to, grace_ms } => RadioRequest::SwitchAtFallback {
                radio,
                at: *at,
                endpoint: Self::endpoint(to)?,
                grace_ms: *grace_ms,
            },
            RadioOp::CancelSwitch { .. } => RadioRequest::CancelSwitch { radio },
            RadioOp::Protect { to } => RadioRequest::Protect {
                radio,
                endpoint: to.as_deref().map(Self::endpoint).transpose()?,
            },
        };
        match self.client.call(&req).map_err(|e| e.to_string())? {
            RadioReply::Error { message, .. } => Err(message),
            _ => Ok(RadioValue::Unit),
        }
    }
}

/// Everything a sequence may need.
pub struct Driver {
    /// This host (local steps); `None`: local steps fail.
    pub host: Option<HostExec>,
    /// The agent on this host (make-before-break `Peer::Local`).
    pub local: Option<AgentClient>,
    /// The other pool server's agent.
    pub remote: Option<AgentClient>,
    /// The radio's link control.
    pub radio: Option<RadioControl>,
    start: Instant,
}

impl Driver {
    /// A driver with the given parts.
    pub fn new(
        host: Option<HostExec>,
        local: Option<AgentClient>,
        remote: Option<AgentClient>,
        radio: Option<RadioControl>,
    ) -> Driver {
        Driver {
            host,
            local,
            remote,
            radio,
            start: Instant::now(),
        }
    }

    /// Milliseconds on the driver's monotonic clock (what sequences are started with).
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Run `seq` to its end, passing every report to `report`.
    pub fn run(&mut self, mut seq: Sequence, report: &mut dyn FnMut(&Report)) -> Outcome {
        loop {
            if crate::interrupt::requested() && !seq.is_interrupted() {
                let now = self.now();
                report(&Report {
                    level: ferry_migrate::Level::Warn,
                    text: format!(
                        "{}: interrupted — finishing or undoing it before exiting",
                        seq.name()
                    ),
                });
                seq.interrupt(now);
            }
            if let Some(h) = self.host.as_mut() {
                if let Some(why) = h.check_modem() {
                    tracing::warn!("{why}");
                }
            }
            match seq.poll_action() {
                Some(Action::Local(op)) => {
                    let r = match self.host.as_mut() {
                        Some(h) => match h.perform(&op) {
                            Ok(v) => Ok(v),
                            Err(StepError::Failed(e)) | Err(StepError::Raised(e)) => Err(e),
                        },
                        None => Err("no local host configured".into()),
                    };
                    let now = self.now();
                    seq.handle(now, Event::LocalDone(r));
                }
                Some(Action::Request { to, request }) => {
                    // Never wait past the sequence's own deadline for this request.
                    let now = self.now();
                    let left = seq.poll_timeout().map(|t| t.saturating_sub(now));
                    let client = match to {
                        Peer::Local => self.local.as_mut(),
                        Peer::Remote => self.remote.as_mut(),
                    };
                    let ev = match client {
                        None => Event::Reply(Reply::fail(
                            request.cmd(),
                            ErrorKind::Failed,
                            format!("no {to:?} agent configured"),
                        )),
                        Some(c) => {
                            let t = left
                                .map(Duration::from_millis)
                                .unwrap_or(c.timeout())
                                .min(c.timeout());
                            match c.call_body(&request.encode(), t) {
                                Ok(r) => Event::Reply(r),
                                Err(CallError::Timeout { .. }) => Event::Timeout,
                                Err(e) => Event::Reply(Reply::fail(
                                    request.cmd(),
                                    ErrorKind::Failed,
                                    e.to_string(),
                                )),
                            }
                        }
                    };
                    let now = self.now();
                    seq.handle(now, ev);
                }
                Some(Action::Radio(op)) => {
                    let r = match &self.radio {
                        Some(rc) => rc.perform(&op),
                        None => Err("no radio link control configured".into()),
                    };
                    let now = self.now();
                    seq.handle(now, Event::RadioDone(r));
                }
                Some(Action::Report(r)) => report(&r),
                Some(Action::Done(o)) => return o,
                None => {
                    let now = self.now();
                    let at = seq.poll_timeout().unwrap_or(now + 10);
                    std::thread::sleep(Duration::from_millis(at.saturating_sub(now).clamp(0, 50)));
                    let now = self.now();
                    seq.handle(now, Event::Tick);
                }
            }
        }
    }
}
