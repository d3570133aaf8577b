//! Supervision of the modem (the thesis' D2D program) as a real child process, and a small
//! client for its local control socket (newline-delimited JSON over a Unix socket, see
//! docs/MODEM-CONTROL.md).
//!
//! The modem is started with an argument vector, never through a shell; it is killed by
//! `quit` on its socket, then SIGTERM, then SIGKILL, and always reaped.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
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
}

/// What to start the modem with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModemStart {
    /// `control_flag` 1 (warm) or 0 (cold).
    pub warm: bool,
    /// Control (thesis field names), when warm.
    pub control: Option<Value>,
    /// Relay routes `[[destID, nexthop], ...]`.
    pub routes: Option<Value>,
    /// Shadow mode (make-before-break destination).
    pub shadow: bool,
    /// tun address to configure, if known.
    pub tun_ip: Option<std::net::Ipv4Addr>,
}

impl ModemCommand {
    /// The full argument vector (documented in docs/AGENT.md):
    /// `ARGS… --control SOCKET [--start 0|1 --control-json JSON [--routes-json JSON]
    /// [--tun-addr IP] [--shadow]]`.
    pub fn argv(&self, start: &ModemStart) -> Vec<String> {
        let mut v = self.args.clone();
        v.push("--control".into());
        v.push(self.socket.display().to_string());
        if !self.state_args {
            return v;
        }
        v.push("--start".into());
        v.push(if start.warm { "1" } else { "0" }.into());
        if let Some(c) = &start.control {
            v.push("--control-json".into());
            v.push(c.to_string());
        }
        if let Some(r) = &start.routes {
            v.push("--routes-json".into());
            v.push(r.to_string());
        }
        if let Some(ip) = start.tun_ip {
            v.push("--tun-addr".into());
            v.push(ip.to_string());
        }
        if start.shadow {
            v.push("--shadow".into());
        }
        v
    }
}

/// A blocking line client of the modem's control socket.
pub struct ModemLine {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl ModemLine {
    /// Connect with a per-read/write timeout.
    pub fn connect(path: &Path, timeout: Duration) -> std::io::Result<ModemLine> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let writer = s.try_clone()?;
        Ok(ModemLine {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Send one request object, return the `result` of an ok reply or the error text.
    pub fn call(&mut self, request: &Value) -> Result<Value, String> {
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("modem control socket: {e}"))?;
        let mut reply = String::new();
        match self.reader.read_line(&mut reply) {
            Ok(0) => return Err("modem closed its control socket".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("modem control socket: {e}")),
        }
        let v: Value = serde_json::from_str(reply.trim())
            .map_err(|e| format!("unreadable modem reply: {e}"))?;
        match v.get("ok") {
            Some(Value::Bool(true)) => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
            _ => Err(v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("modem refused")
                .to_string()),
        }
    }
}

/// One request/reply on a fresh connection.
pub fn modem_call(path: &Path, request: &Value, timeout: Duration) -> Result<Value, String> {
    ModemLine::connect(path, timeout)
        .map_err(|e| format!("modem control socket {}: {e}", path.display()))?
        .call(request)
}

/// The running modem child.
pub struct ModemProcess {
    child: Child,
    socket: PathBuf,
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
        let child = Command::new(&cmd.program)
            .args(cmd.argv(start))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start modem {}: {e}", cmd.program.display()))?;
        let mut p = ModemProcess {
            child,
            socket: cmd.socket.clone(),
        };
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
        let mut line = loop {
            if let Some(st) = self.exited() {
                return Err(format!("modem exited during start-up ({st})"));
            }
            match ModemLine::connect(&self.socket, Duration::from_secs(2)) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
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
        if !configure {
            // Started from its arguments: answering `status` is being up.
            return line.call(&json!({"cmd": "status"})).map(|_| ());
        }
        if let Some(c) = &start.control {
            line.call(&json!({"cmd": "set_control", "control": c}))?;
        }
        if let Some(r) = &start.routes {
            line.call(&json!({"cmd": "set_routes", "routes": r}))?;
        }
        if start.shadow {
            line.call(&json!({"cmd": "shadow"}))?;
        }
        line.call(&json!({"cmd": "start", "control_flag": u8::from(start.warm)}))?;
        Ok(())
    }

    /// The control socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(exit status text)` if the process has ended (it is reaped then).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    /// Stop the modem: `quit` on its socket, then SIGTERM after `grace`, then SIGKILL.
    /// Always reaps. Returns how it ended.
    pub fn kill(&mut self, grace: Duration) -> Result<String, String> {
        if let Some(st) = self.exited() {
            return Ok(format!("already exited ({st})"));
        }
        let _ = modem_call(&self.socket, &json!({"cmd": "quit"}), grace);
        if let Some(st) = self.wait_for(grace) {
            return Ok(format!("quit ({st})"));
        }
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        if pid > 0 {
            // SAFETY: kill(2) on our own child's pid, which is not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if let Some(st) = self.wait_for(grace) {
            return Ok(format!("terminated ({st})"));
        }
        self.child
            .kill()
            .map_err(|e| format!("cannot kill modem pid {pid}: {e}"))?;
        match self.child.wait() {
            Ok(st) => Ok(format!("killed ({st})")),
            Err(e) => Err(format!("cannot reap modem pid {pid}: {e}")),
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
    }
}
