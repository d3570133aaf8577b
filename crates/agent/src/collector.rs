//! The thesis' collector: a thread that reads the running modem's Control (and relay
//! routes) through its control socket every period (10 s in the thesis) and hands them to
//! the agent, so that a migration can start from fresh state.

use crate::modem::modem_call;
use crossbeam_channel::Sender;
use ferry_migrate::{Control, RouteList};
use ferry_modem::ModemRequest;
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

/// Read Control and routes once; false when nobody listens any more.
fn collect_once(socket: &std::path::Path, out: &Sender<Collected>) -> bool {
    let timeout = Duration::from_secs(1);
    let c = match modem_call(socket, &ModemRequest::GetControl, timeout) {
        Ok(v) => match Control::from_value(&v) {
            Ok(c) => Collected::Control(c),
            Err(e) => Collected::Failed(format!("modem Control invalid: {e}")),
        },
        Err(e) => Collected::Failed(format!("get_control: {e}")),
    };
    if out.send(c).is_err() {
        return false;
    }
    // Routes exist only on relay tasks; a refusal is not news.
    if let Ok(v) = modem_call(socket, &ModemRequest::GetRoutes, timeout) {
        if let Ok(r) = RouteList::from_value(&v) {
            return out.send(Collected::Routes(r)).is_ok();
        }
    }
    true
}

/// A running collector thread.
pub struct Collector {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Start collecting from the modem socket at `socket`: once now, then every `period`.
    pub fn start(
        socket: PathBuf,
        period: Duration,
        out: Sender<Collected>,
    ) -> std::io::Result<Collector> {
        // The first reading happens before `start` returns, so a migration right after
        // DS already finds a Control.
        if !collect_once(&socket, &out) {
            return Err(std::io::Error::other("collector channel closed"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || loop {
                let next = Instant::now() + period;
                while Instant::now() < next {
                    if s.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10).min(period));
                }
                if !collect_once(&socket, &out) {
                    return;
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
