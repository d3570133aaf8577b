//! Supervision of the modem (the thesis' D2D program) as a real child process, and a small
//! client for its local control socket (newline-delimited JSON over a Unix socket, see
//! docs/MODEM-CONTROL.md).
//!
//! The modem is started with an argument vector, never through a shell; it is killed by
//! `quit` on its socket, then SIGTERM, then SIGKILL, and always reaped.

use ferry_migrate::{Control, RouteList};
use ferry_modem::{ModemClient, ModemRequest};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemCommand {
    /// Program (e.g. the `ferry` binary).
    pub program: PathBuf,
    /// Arguments placed before the ones the agent adds (e.g. `["modem", "--radio", ...]`).
    pub args: Vec<String>,
    /// Control socket path given to the modem with `--control`.
    pub socket: PathBuf,
    /// Pass the start state (Control, routes, start flag, shadow, tun address) as
    /// arguments; otherwise only the socket, and the state goes over the socket
    /// (`set_control`, `set_routes`, `shadow`, `start`).
    pub state_args: bool,
    /// Link-control key file given to the modem (`--key FILE --radio-identity ID`).
    pub radio_key: Option<std::path::PathBuf>,
    /// The air's identity, with `radio_key`.
    pub radio_identity: String,
}

/// What to start the modem with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModemStart {
    /// `control_flag` 1 (warm) or 0 (cold).
    pub warm: bool,
    /// Control, when warm.
    pub control: Option<Control>,
    /// Relay routes.
    pub routes: Option<RouteList>,
    /// Shadow mode (make-before-break destination).
    pub shadow: bool,
    /// A shadow that protects the task as a hot standby (`ferry ctl protect`).
    pub hot_standby: bool,
    /// tun address to configure, if known.
    pub tun_ip: Option<std::net::Ipv4Addr>,
    /// Its prefix length.
    pub tun_prefix: u8,
}

impl ModemCommand {
    /// Where the Control goes for `--control-file` (next to the socket).
    pub fn control_file(&self) -> PathBuf {
        let mut f = self.socket.clone().into_os_string();
        f.push(".control.json");
        PathBuf::from(f)
    }

    /// The full argument vector, as `ferry modem` takes it (documented in docs/AGENT.md):
    /// `ARGS… --control-socket SOCKET` then either `--start wait` (state over the socket) or
    /// `--start cold|warm [--control-file FILE] [--routes JSON] [--tun-addr IP/PREFIX]
    /// [--shadow]`.
    pub fn argv(&self, start: &ModemStart) -> Vec<String> {
        let mut v = self.args.clone();
        if let Some(k) = &self.radio_key {
            v.push("--key".into());
            v.push(k.display().to_string());
            v.push("--radio-identity".into());
            v.push(self.radio_identity.clone());
        }
        v.push("--control-socket".into());
        v.push(self.socket.display().to_string());
        v.push("--start".into());
        if !self.state_args {
            v.push("wait".into());
            return v;
        }
        v.push(if start.warm { "warm" } else { "cold" }.into());
        if start.control.is_some() {
            v.push("--control-file".into());
            v.push(self.control_file().display().to_string());
        }
        if let Some(r) = &start.routes {
            v.push("--routes".into());
            v.push(r.to_value().to_string());
        }
        if let Some(ip) = start.tun_ip {
            v.push("--tun-addr".into());
            v.push(format!("{ip}/{}", start.tun_prefix));
        }
        if start.shadow {
            v.push("--shadow".into());
        }
        if start.hot_standby {
            v.push("--hot-standby".into());
        }
        v
    }
}

/// How long a starting modem may take to answer its first request. Its loop first serves
/// the socket after it linked (one link-control round trip, 1 s deadline), tuned (1 s) and
/// synchronised its radio. `ferry demo --bw 20` on 2 cores (debug build) measured 0.1–3.0 s:
/// the air (SCHED_RR 20) and the far end's cell search (SCHED_FIFO 10) each keep a core
/// busy, and a second FIFO-10 modem runs only when the far one blocks. The 2 s this was
/// failed the demo's start in CI.
pub const START_REPLY: Duration = Duration::from_secs(6);

/// One request/reply on a fresh connection: the `result` of an ok reply, or the error.
pub fn modem_call(path: &Path, request: &ModemRequest, timeout: Duration) -> Result<Value, String> {
    let mut c = ModemClient::connect(path, timeout)
        .map_err(|e| format!("modem control socket {}: {e}", path.display()))?;
    let r = c
        .request(request)
        .map_err(|e| format!("modem {}: {e}", request.name()))?;
    if r.ok {
        Ok(r.result.unwrap_or(Value::Null))
    } else {
        Err(r
            .error
            .unwrap_or_else(|| format!("modem refused {}", request.name())))
    }
}

/// The modem's stdout (its run summary) goes to our stderr, the log, so that a console's
/// stdout carries only the console's own output.
fn log_sink() -> Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    }
}

/// The running modem: a child of this agent, or one an earlier agent started and this one
/// adopted after a restart (found through its pidfile and answering on its socket).
pub struct ModemProcess {
    /// `None` for an adopted modem (not our child: watched through /proc).
    child: Option<Child>,
    pid: u32,
    /// Kernel start time of the process (clock ticks since boot): a pid reused by another
    /// process is never taken for the modem.
    start_ticks: u64,
    socket: PathBuf,
}

/// Where the agent records the modem it started: `SOCKET.modem-pid` with
/// `PID START_TICKS`.
pub fn pidfile(socket: &Path) -> PathBuf {
    let mut f = socket.as_os_str().to_owned();
    f.push(".modem-pid");
    PathBuf::from(f)
}

/// The start time (field 22 of /proc/PID/stat) of a live, non-zombie process.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field 22 is rest[19].
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl ModemProcess {
    /// Spawn the modem, wait for its control socket, and start it (`set_control`,
    /// `set_routes`, `start`, and `shadow` when asked). On any failure the child is killed
    /// and reaped.
    pub fn start(
        cmd: &ModemCommand,
        start: &ModemStart,
        ready_timeout: Duration,
    ) -> Result<ModemProcess, String> {
        let _ = std::fs::remove_file(&cmd.socket);
        if let (true, Some(c)) = (cmd.state_args, &start.control) {
            std::fs::write(cmd.control_file(), c.to_json())
                .map_err(|e| format!("cannot write {}: {e}", cmd.control_file().display()))?;
        }
        let child = Command::new(&cmd.program)
            .args(cmd.argv(start))
            .stdin(Stdio::null())
            .stdout(log_sink())
            .spawn()
            .map_err(|e| format!("cannot start modem {}: {e}", cmd.program.display()))?;
        let pid = child.id();
        let mut p = ModemProcess {
            child: Some(child),
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
            socket: cmd.socket.clone(),
        };
        // A restarted agent finds its modem through this (docs/AGENT.md, "Restarts").
        let _ = std::fs::write(pidfile(&cmd.socket), format!("{pid} {}\n", p.start_ticks));
        match p.bring_up(start, ready_timeout, !cmd.state_args) {
            Ok(()) => Ok(p),
            Err(e) => {
                let _ = p.kill(Duration::from_millis(200));
                Err(e)
            }
        }
    }

    fn bring_up(
        &mut self,
        start: &ModemStart,
        ready_timeout: Duration,
        configure: bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + ready_timeout;
        let mut client = loop {
            if let Some(st) = self.exited() {
                return Err(format!("modem exited during start-up ({st})"));
            }
            match ModemClient::connect(&self.socket, START_REPLY) {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    // A connect attempt is a few syscalls; every ms of this wait is a ms of
                    // a make-before-break's destination start.
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    return Err(format!(
                        "modem control socket {} not ready after {} ms: {e}",
                        self.socket.display(),
                        ready_timeout.as_millis()
                    ))
                }
            }
        };
        let mut call = |req: ModemRequest| -> Result<(), String> {
            let r = client.request(&req).map_err(|e| match e {
                ferry_modem::proto::ClientError::Timeout(_) => format!(
                    "modem {}: {e} of its start (it links, tunes and synchronises its radio \
                     first: is the air answering link control, is the host overloaded?)",
                    req.name()
                ),
                e => format!("modem {}: {e}", req.name()),
            })?;
            if r.ok {
                Ok(())
            } else {
                Err(format!(
                    "modem refused {}: {}",
                    req.name(),
                    r.error.unwrap_or_default()
                ))
            }
        };
        if !configure {
            // Started from its arguments: answering `status` is being up.
            return call(ModemRequest::Status);
        }
        if let Some(c) = &start.control {
            call(ModemRequest::SetControl { control: c.clone() })?;
        }
        if let Some(r) = &start.routes {
            call(ModemRequest::SetRoutes { routes: r.clone() })?;
        }
        if start.shadow {
            call(ModemRequest::Shadow)?;
            if start.hot_standby {
                call(ModemRequest::HotStandby)?;
            }
            return call(ModemRequest::Status);
        }
        call(ModemRequest::Start {
            control_flag: u8::from(start.warm),
        })
    }

    /// The control socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Adopt the modem an earlier agent started on `cmd`'s socket, if its pidfile names a
    /// live process (same pid *and* start time) that answers `status` on the socket. A
    /// stale pidfile is removed. `Ok(None)`: nothing to adopt.
    pub fn adopt(cmd: &ModemCommand) -> Result<Option<ModemProcess>, String> {
        let file = pidfile(&cmd.socket);
        let Ok(text) = std::fs::read_to_string(&file) else {
            return Ok(None);
        };
        let mut it = text.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(ticks))) = (it.next(), it.next()) else {
            let _ = std::fs::remove_file(&file);
            return Ok(None);
        };
        let Ok(pid) = u32::try_from(pid) else {
            let _ = std::fs::remove_file(&file);
            return Ok(None);
        };
        if start_ticks(pid) != Some(ticks) {
            // Gone, or the pid now belongs to another process.
            let _ = std::fs::remove_file(&file);
            return Ok(None);
        }
        modem_call(&cmd.socket, &ModemRequest::Status, Duration::from_secs(1)).map_err(|e| {
            format!(
                "modem pid {pid} from {} does not answer: {e}",
                file.display()
            )
        })?;
        Ok(Some(ModemProcess {
            child: None,
            pid,
            start_ticks: ticks,
            socket: cmd.socket.clone(),
        }))
    }

    /// Whether this agent adopted the modem (rather than starting it).
    pub fn adopted(&self) -> bool {
        self.child.is_none()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(exit status text)` if the process has ended (it is reaped then when it is our
    /// child).
    pub fn exited(&mut self) -> Option<String> {
        match &mut self.child {
            Some(c) => match c.try_wait() {
                Ok(Some(st)) => Some(st.to_string()),
                Ok(None) => None,
                Err(e) => Some(format!("wait failed: {e}")),
            },
            None => (start_ticks(self.pid) != Some(self.start_ticks))
                .then(|| "the adopted modem exited".to_string()),
        }
    }

    /// Stop the modem: `quit` on its socket, then SIGTERM after `grace`, then SIGKILL.
    /// Always reaps. Returns how it ended.
    pub fn kill(&mut self, grace: Duration) -> Result<String, String> {
        if let Some(st) = self.exited() {
            return Ok(format!("already exited ({st})"));
        }
        let _ = modem_call(&self.socket, &ModemRequest::Quit, grace);
        if let Some(st) = self.wait_for(grace) {
            return Ok(format!("quit ({st})"));
        }
        let pid = libc::pid_t::try_from(self.pid).unwrap_or(0);
        if pid > 0 {
            // SAFETY: kill(2) on the modem's pid: our unreaped child, or an adopted process
            // whose start time was checked by `exited` just above.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if let Some(st) = self.wait_for(grace) {
            return Ok(format!("terminated ({st})"));
        }
        match &mut self.child {
            Some(c) => {
                c.kill()
                    .map_err(|e| format!("cannot kill modem pid {pid}: {e}"))?;
                match c.wait() {
                    Ok(st) => Ok(format!("killed ({st})")),
                    Err(e) => Err(format!("cannot reap modem pid {pid}: {e}")),
                }
            }
            None => {
                if self.exited().is_none() && pid > 0 {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                match self.wait_for(grace) {
                    Some(st) => Ok(format!("killed ({st})")),
                    None => Err(format!("adopted modem pid {pid} did not die")),
                }
            }
        }
    }

    fn wait_for(&mut self, d: Duration) -> Option<String> {
        let end = Instant::now() + d;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ModemProcess {
    fn drop(&mut self) {
        // Never leave a modem behind, whatever path drops us.
        let _ = self.kill(Duration::from_millis(300));
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(pidfile(&self.socket));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_carries_the_start_state_or_only_the_socket() {
        let control = Control::from_json(
            r#"{"workmode":1,"phy_cell_ID":7,"group_ID":2,"cell_ID":1,"CPtype":0,"BW":1.4,
                "RBIdx":6,"duplexMode":0,"numAntennaTX":1,"numAntennaRX":1,"DLULAssign":1,
                "trans_mode":1,"type_mode":1,"RNTI":1000}"#,
        )
        .expect("valid");
        let routes = RouteList::from_value(&serde_json::json!([[3, 1]])).expect("valid");
        let mut cmd = ModemCommand {
            program: "/usr/bin/ferry".into(),
            args: vec!["modem".into()],
            socket: "/run/ferry/m.sock".into(),
            state_args: true,
            radio_key: None,
            radio_identity: String::new(),
        };
        let start = ModemStart {
            warm: true,
            control: Some(control),
            routes: Some(routes),
            shadow: true,
            hot_standby: false,
            tun_ip: Some("192.168.40.9".parse().expect("ip")),
            tun_prefix: 24,
        };
        let v = cmd.argv(&start);
        let pos = |f: &str| v.iter().position(|a| a == f).expect(f);
        assert_eq!(&v[..3], ["modem", "--control-socket", "/run/ferry/m.sock"]);
        assert_eq!(v[pos("--start") + 1], "warm");
        assert_eq!(
            v[pos("--control-file") + 1],
            "/run/ferry/m.sock.control.json"
        );
        assert_eq!(v[pos("--routes") + 1], "[[3,1]]");
        assert_eq!(v[pos("--tun-addr") + 1], "192.168.40.9/24");
        assert!(v.contains(&"--shadow".to_string()));
        cmd.state_args = false;
        assert_eq!(
            cmd.argv(&start),
            [
                "modem",
                "--control-socket",
                "/run/ferry/m.sock",
                "--start",
                "wait"
            ]
        );
    }
}
