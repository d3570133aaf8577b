//! The thesis' collector: a thread that reads the running modem's Control (and relay
//! routes) through its control socket every period (10 s in the thesis) and hands them to
//! the agent, so that a migration can start from fresh state.

use crate::modem::modem_call;
use crossbeam_channel::Sender;
use ferry_migrate::{Control, RouteList};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one collection produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Collected {
    /// A validated Control.
    Control(Control),
    /// A validated route list.
    Routes(RouteList),
    /// A read failed (logged; the previous values stay).
    Failed(String),
}

/// A running collector thread.
pub struct Collector {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Start collecting from the modem socket at `socket`: once at once, then every `period`.
    pub fn start(
        socket: PathBuf,
        period: Duration,
        out: Sender<Collected>,
    ) -> std::io::Result<Collector> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let timeout = Duration::from_secs(1);
                while !s.load(Ordering::Relaxed) {
                    let c = match modem_call(&socket, &json!({"cmd": "get_control"}), timeout) {
                        Ok(v) => match Control::from_value(&v) {
                            Ok(c) => Collected::Control(c),
                            Err(e) => Collected::Failed(format!("modem Control invalid: {e}")),
                        },
                        Err(e) => Collected::Failed(format!("get_control: {e}")),
                    };
                    if out.send(c).is_err() {
                        return;
                    }
                    // Routes exist only on relay tasks; a refusal is not news.
                    if let Ok(v) = modem_call(&socket, &json!({"cmd": "get_routes"}), timeout) {
                        if let Ok(r) = RouteList::from_value(&v) {
                            if out.send(Collected::Routes(r)).is_err() {
                                return;
                            }
                        }
                    }
                    let next = Instant::now() + period;
                    while !s.load(Ordering::Relaxed) && Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(10).min(period));
                    }
                }
            })?;
        Ok(Collector {
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the thread still runs.
    pub fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop and join.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}
