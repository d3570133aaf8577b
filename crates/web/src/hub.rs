//! The hub: one thread owns the [`View`], folds every input into it (a demo's live events,
//! the pollers' observations) and publishes the view as JSON, at most every
//! [`PUBLISH_EVERY`] and at once after a migration event, to the SSE clients through a
//! bounded `tokio::sync::broadcast`. Inputs arrive through a bounded channel and are dropped
//! (and counted) when it is full: a watcher never slows down the run it watches.

use crate::model::{PoolView, View};
use crate::poll::{Poller, Targets};
use ferry_fronthaul::control::StatusReport;
use ferry_testbed::live::{LiveEvent, LiveSink};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Inputs queued before new ones are dropped.
pub const INPUT_QUEUE: usize = 1024;
/// Published views kept for a slow SSE client before it is dropped.
pub const UPDATE_QUEUE: usize = 16;
/// Least time between two published views (except after migration events).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Something observed.
#[derive(Debug)]
pub enum Input {
    /// A demo's live event.
    Event(LiveEvent),
    /// Link control's `status` of all radios.
    Radios(Result<Vec<StatusReport>, String>),
    /// An agent's `status` result.
    Agent {
        /// Server name.
        server: String,
        /// Its `status` result or why it did not answer.
        status: Result<serde_json::Value, String>,
    },
    /// The serving server's `get_control`.
    Control(serde_json::Value),
    /// The pool's figures.
    Pool(PoolView),
}

/// A handle on the hub (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    tx: SyncSender<Input>,
    latest: Arc<Mutex<Arc<str>>>,
    updates: broadcast::Sender<Arc<str>>,
    dropped: Arc<AtomicU64>,
}

fn encode(seq: u64, view: &View, dropped: u64) -> Arc<str> {
    let body = serde_json::json!({ "seq": seq, "dropped_inputs": dropped, "view": view });
    Arc::from(body.to_string())
}

impl Hub {
    /// Starts the hub thread with `view` as the first state; `targets`, if any, are polled
    /// from the start (`ferry web`); a demo's [`LiveEvent::Testbed`] (re)starts polling.
    /// The thread ends when every handle is dropped.
    pub fn start(view: View, targets: Option<Targets>) -> Hub {
        let (tx, rx) = sync_channel::<Input>(INPUT_QUEUE);
        let latest = Arc::new(Mutex::new(encode(0, &view, 0)));
        let (updates, _) = broadcast::channel(UPDATE_QUEUE);
        let hub = Hub {
            tx,
            latest,
            updates,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        // The thread keeps a handle for the pollers it starts; it ends when no handle is
        // left outside it and its poller (each poller holds exactly one).
        let me = hub.clone();
        let mut poller = targets.map(|t| Poller::start(t, me.clone()));
        std::thread::Builder::new()
            .name("ferry-web-hub".into())
            .spawn(move || {
                let mut view = view;
                let mut seq = 0u64;
                let mut dirty = false;
                let mut last = Instant::now();
                loop {
                    let urgent = match rx.recv_timeout(PUBLISH_EVERY) {
                        Ok(input) => {
                            let urgent = matches!(
                                input,
                                Input::Event(
                                    LiveEvent::MigrationStarted { .. }
                                        | LiveEvent::MigrationEnded { .. }
                                        | LiveEvent::Serving { .. }
                                        | LiveEvent::Finished
                                )
                            );
                            match input {
                                Input::Event(LiveEvent::Finished) => {
                                    poller = None;
                                    view.apply_event(&LiveEvent::Finished);
                                }
                                Input::Event(e @ LiveEvent::Testbed { .. }) => {
                                    // The old poller stops before the new one starts.
                                    drop(poller.take());
                                    poller = Targets::of_testbed(&e)
                                        .map(|t| Poller::start(t, me.clone()));
                                    view.apply_event(&e);
                                }
                                Input::Event(e) => view.apply_event(&e),
                                Input::Radios(r) => view.apply_radio_status(r),
                                Input::Agent { server, status } => {
                                    view.apply_agent_status(&server, status);
                                }
                                Input::Control(c) => view.apply_control(&c),
                                Input::Pool(p) => view.pool = Some(p),
                            }
                            dirty = true;
                            urgent
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            let inside = 1 + usize::from(poller.is_some());
                            if Arc::strong_count(&me.latest) <= inside {
                                break;
                            }
                            false
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    if dirty && (urgent || last.elapsed() >= PUBLISH_EVERY) {
                        seq += 1;
                        let body = encode(seq, &view, me.dropped());
                        if let Ok(mut l) = me.latest.lock() {
                            *l = Arc::clone(&body);
                        }
                        // No receivers is fine: nobody watches.
                        let _ = me.updates.send(body);
                        dirty = false;
                        last = Instant::now();
                    }
                }
                drop(poller);
            })
            .map_or_else(
                |e| tracing::error!("cannot start the web hub thread: {e}"),
                |_| (),
            );
        hub
    }

    /// Queues an input; drops it (and counts) when the queue is full.
    pub fn send(&self, input: Input) {
        match self.tx.try_send(input) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// A sink for a demo's live events.
    pub fn sink(&self) -> LiveSink {
        let hub = self.clone();
        LiveSink::new(move |e| hub.send(Input::Event(e)))
    }

    /// The latest published view (JSON).
    pub fn snapshot(&self) -> Arc<str> {
        self.latest
            .lock()
            .map(|l| Arc::clone(&l))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Published views from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.updates.subscribe()
    }

    /// Inputs dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
