//! The agent's fast path of an unplanned failover (issue #12): a thread per running modem
//! blocks on the modem's pidfd and, the moment the modem dies on its own, tells its radio
//! `primary_dead(endpoint)`, so a protecting standby takes over at the next subframe boundary
//! instead of after the radio's liveness interval.
//!
//! Why a thread of its own at real-time priority: the agent's request loop runs at normal
//! priority on a server whose modems (and, in the testbed, the radio emulator) run
//! `SCHED_FIFO`; measured in the failover demo, the loop noticed a killed modem ~20 ms after
//! the kill, later than the radio's own 5-subframe detection. A deliberate stop (`kill_d2d`)
//! disarms the watch first, so only deaths nobody asked for are reported; the radio itself
//! refuses a report that does not name its current primary (a standby or a released source
//! dying deposes nobody).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferry_fronthaul::control::{Reply, Request};
use ferry_radio::{ControlClient, LinkAuth};

/// Whom to tell.
#[derive(Debug, Clone)]
pub struct Report {
    /// Link-control endpoint.
    pub control: String,
    /// Radio name.
    pub radio: String,
    /// Link-control key and the air's identity.
    pub auth: Option<LinkAuth>,
    /// The modem's fronthaul endpoint as the radio sees it.
    pub endpoint: std::net::SocketAddr,
}

impl Report {
    /// A link-control client of the radio, as the agent (500 ms per request).
    pub fn client(&self) -> ControlClient {
        ControlClient::new(self.control.clone(), Duration::from_millis(500))
            .with_auth(self.auth.clone())
            .with_name("agent")
    }
}

/// A running watch; dropping it disarms and stops it.
pub struct DeathWatch {
    disarmed: Arc<AtomicBool>,
    outcome: Arc<Mutex<Option<String>>>,
    stop: OwnedFd,
    handle: Option<JoinHandle<()>>,
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).unwrap_or(-1);
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Ask for `SCHED_FIFO` at `priority` for the calling thread (best effort).
fn realtime(priority: i32) -> bool {
    let p = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pthread_self is always valid for the calling thread; p outlives the call.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &p) == 0 }
}

impl DeathWatch {
    /// Watch process `pid`; on its death (unless disarmed) send `report`. `rt_priority` > 0
    /// asks for `SCHED_FIFO` (refused privileges are logged, the watch runs anyway).
    pub fn start(pid: u32, report: Report, rt_priority: i32) -> std::io::Result<DeathWatch> {
        let pidfd = pidfd_open(pid)?;
        let stop = eventfd()?;
        let stop_raw = stop.as_raw_fd();
        let disarmed = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(None));
        let (d, o) = (disarmed.clone(), outcome.clone());
        let handle = std::thread::Builder::new()
            .name("modem-deathwatch".into())
            .spawn(move || {
                if rt_priority > 0 && !realtime(rt_priority) {
                    tracing::debug!("death watch: SCHED_FIFO refused; running at normal priority");
                }
                // Built before the death so the report costs one round trip.
                let client = report.client();
                let mut fds = [
                    libc::pollfd {
                        fd: pidfd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: stop_raw,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                loop {
                    // SAFETY: fds is a valid array of two pollfd for the call's duration.
                    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
                    if n < 0 {
                        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                        {
                            continue;
                        }
                        return;
                    }
                    if fds[1].revents != 0 || d.load(Ordering::Acquire) {
                        return;
                    }
                    if fds[0].revents != 0 {
                        break;
                    }
                }
                if d.load(Ordering::Acquire) {
                    return;
                }
                let t0 = Instant::now();
                let req = Request::PrimaryDead {
                    radio: report.radio.clone(),
                    endpoint: report.endpoint,
                };
                let answer = client.request(&req);
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let (radio, ep) = (&report.radio, report.endpoint);
                let text = match answer {
                    Ok(Reply::Done { .. }) => {
                        format!(
                            "reported {ep} dead to radio {radio} ({ms:.1} ms): it fails over now"
                        )
                    }
                    Ok(Reply::Error { message, .. }) => {
                        format!("radio {radio} did not act on the report ({ms:.1} ms): {message}")
                    }
                    Ok(other) => format!("radio {radio} answered {other:?}"),
                    Err(e) => format!("could not report to radio {radio}: {e}"),
                };
                tracing::warn!("modem died: {text}");
                if let Ok(mut g) = o.lock() {
                    *g = Some(text);
                }
            })?;
        Ok(DeathWatch {
            disarmed,
            outcome,
            stop,
            handle: Some(handle),
        })
    }

    /// A deliberate stop follows: report nothing.
    pub fn disarm(&self) {
        self.disarmed.store(true, Ordering::Release);
    }

    /// What the report got, once made (waits up to `wait` for a report in flight).
    pub fn outcome(&self, wait: Duration) -> Option<String> {
        let end = Instant::now() + wait;
        loop {
            if let Some(s) = self.outcome.lock().ok().and_then(|g| g.clone()) {
                return Some(s);
            }
            if Instant::now() >= end || self.handle.as_ref().is_none_or(JoinHandle::is_finished) {
                return self.outcome.lock().ok().and_then(|g| g.clone());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for DeathWatch {
    fn drop(&mut self) {
        self.disarm();
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our own eventfd.
        let _ = unsafe {
            libc::write(
                self.stop.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn report() -> Report {
        // Nothing listens here: a report can only fail, which is what the outcome shows.
        Report {
            control: "tcp://127.0.0.1:1".into(),
            radio: "pool".into(),
            auth: None,
            endpoint: "127.0.0.1:49200".parse().unwrap(),
        }
    }

    #[test]
    fn a_death_nobody_asked_for_is_reported_at_once() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let w = DeathWatch::start(child.id(), report(), 0).unwrap();
        assert_eq!(
            w.outcome(Duration::from_millis(50)),
            None,
            "alive: nothing said"
        );
        child.kill().unwrap();
        let _ = child.wait();
        let o = w.outcome(Duration::from_secs(3)).expect("reported");
        assert!(o.contains("radio pool"), "{o}");
    }

    #[test]
    fn a_disarmed_watch_says_nothing_and_a_dropped_one_stops() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let w = DeathWatch::start(child.id(), report(), 0).unwrap();
        w.disarm();
        child.kill().unwrap();
        let _ = child.wait();
        assert_eq!(w.outcome(Duration::from_millis(200)), None);
        let mut other = Command::new("sleep").arg("30").spawn().unwrap();
        let w2 = DeathWatch::start(other.id(), report(), 0).unwrap();
        drop(w2); // joins: the thread left its poll
        other.kill().unwrap();
        let _ = other.wait();
    }
}
