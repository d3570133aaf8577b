//! Real-process sessions in the namespace testbed: `ferry air`, the far-end modem, agents
//! and `ferry ctl` started as processes (argument vectors, never a shell), the traffic
//! (`ping -i 0.1` and the 1 ms UDP probe) and the migrations of both methods, shared by
//! `ferry demo`, `ferry bench migrate` and the root-only tests.
//!
//! Everything started here is owned by a guard whose `Drop` kills it; [`Bed`]'s `Drop`
//! also kills whatever is left in its namespaces and removes them, so an error, a panic or
//! an interruption (the caller's signal flag, see [`install_signal_flag`]) cleans up.

use crate::live::{self, LiveEvent, LiveSink};
use crate::netns::{self, command_in};
use crate::ping::{PingReport, PingRun};
use crate::probe::{self, ProbeLog};
use crate::topology::{Bridge, Topology, FAR_END_TUN, POOL_TUN};
use crate::video::{enter_netns, unix_ms};
use ferry_migrate::timeline::Timeline;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The radio link-control endpoint of `ferry air` on the mgmt LAN.
pub const RADIO_CTL: &str = "tcp://10.99.0.10:5550";
/// server4's TUN address (node 10), the receiver behind the relay (thesis 4.3).
pub const RELAY_RX_TUN: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 168, 40, 10);
/// UDP port of the probe's echo responders.
pub const PROBE_PORT: u16 = 7777;

/// Failure of a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The operator interrupted (SIGINT/SIGTERM).
    #[error("interrupted")]
    Interrupted,
    /// Building the testbed failed.
    #[error("testbed: {0}")]
    Testbed(#[from] netns::TestbedError),
    /// A bad namespace prefix.
    #[error("{0}")]
    Prefix(String),
    /// A process could not be started or talked to.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Something did not happen in time or answered wrongly.
    #[error("{0}")]
    Failed(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SessionError {
    let what = what.into();
    move |source| SessionError::Io { what, source }
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Installs a SIGINT/SIGTERM handler that only sets a flag ([`interrupted`]); every wait
/// in this module polls it and returns [`SessionError::Interrupted`].
pub fn install_signal_flag() {
    extern "C" fn on_signal(_: libc::c_int) {
        SIGNALLED.store(true, Ordering::SeqCst);
    }
    // SAFETY: the handler only does an atomic store, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT/SIGTERM arrived.
pub fn interrupted() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

/// Sleeps `d`, waking early with an error when interrupted.
pub fn sleep(d: Duration) -> Result<(), SessionError> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if interrupted() {
            return Err(SessionError::Interrupted);
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
    }
    if interrupted() {
        return Err(SessionError::Interrupted);
    }
    Ok(())
}

/// Tools the testbed and the traffic need, with the Debian package that has each.
pub const REQUIRED_TOOLS: &[(&str, &str)] = &[("ip", "iproute2"), ("ping", "iputils-ping")];

/// Which of `tools` are not on `PATH` (as `(tool, package)`).
pub fn missing_tools<'a>(tools: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    tools
        .iter()
        .filter(|(t, _)| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .copied()
        .collect()
}

/// The testbed with its processes. Dropping it kills them and removes the namespaces.
pub struct Bed {
    /// Namespace prefix.
    pub prefix: String,
    /// The topology.
    pub topo: Topology,
    /// The `ferry` binary started in the namespaces.
    pub ferry: PathBuf,
    /// Scratch directory (key, air config, control sockets).
    pub dir: PathBuf,
    procs: Vec<(String, Child)>,
    /// Route-discovery beacon period given to every modem (`None`: the modem's default).
    pub discovery_period_ms: Option<u64>,
    /// Chapter 4 (relay): the task is a base station (workmode 2) relaying between
    /// server3 and server4, the air also has server4's radio (`relayrx`), and `ferry ctl`
    /// carries the route list (`--relay`).
    pub relay: bool,
    /// LTE bandwidth (MHz) of the task's carrier: every modem's `--bw` and the air's
    /// sample rate (`None`: 1.4 MHz at 1.92 Msps, the defaults).
    pub bw: Option<f64>,
    /// The air's radio model with [`Bed::bw`] (`ferry air --radio-model`: `auto`, `n210`,
    /// `b210`, `x310`; `None`: auto, a model that gives the rate).
    pub radio_model: Option<String>,
    /// What `ferry air` said about its radios' model at the last [`Bed::start_air`] with
    /// [`Bed::bw`] (e.g. a B210 because an N210 cannot stream 30.72 Msps).
    pub air_note: Option<String>,
    /// Extra `ferry modem` flags for every modem (e.g. `--type-mode=2`).
    pub modem_flags: Vec<String>,
    /// Oscillator error of the radio room in ppm (`ferry air` config `clock_ppm`): the
    /// emulated radios' sample clocks run this much fast (+) or slow (−) against the host.
    pub clock_ppm: f64,
    /// Extra `ferry ctl` options for the console (e.g. `--pause-after=started`).
    pub console_args: Vec<String>,
    /// The far radio's own receiver noise floor (dBFS; `None`: the air's −60): a noisy
    /// downlink to server3 while the uplink stays clean (the HARQ experiment).
    pub far_noise_floor_dbfs: Option<f64>,
    /// The pool and far radios as two-channel B210s (`channels: 2`): two antennas each in
    /// the air, one stream per antenna (the two-antenna experiment).
    pub two_channel_radios: bool,
    /// Flat Rayleigh fading on every antenna pair, this maximum Doppler (Hz; air config
    /// `fading`); `None`: static antenna pairs.
    pub fading_doppler_hz: Option<f64>,
    /// The fronthaul LAN's MTU when raised by [`Bed::set_fronthaul_mtu`] (jumbo frames):
    /// the air and every modem size their sample packets to it.
    pub fronthaul_mtu: Option<u16>,
}

impl Bed {
    /// Removes leftovers with `prefix`, builds the testbed and writes the agents' key.
    pub fn up(ferry: &Path, prefix: &str) -> Result<Bed, SessionError> {
        let topo = Topology::thesis(prefix).map_err(|e| SessionError::Prefix(e.to_string()))?;
        Bed::up_with(ferry, topo)
    }

    /// As [`Bed::up`], with another topology (e.g. [`Topology::pool`]).
    pub fn up_with(ferry: &Path, topo: Topology) -> Result<Bed, SessionError> {
        let prefix = topo.prefix.clone();
        let prefix = prefix.as_str();
        netns::down(prefix)?;
        let dir = std::env::temp_dir().join(format!("ferry-{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let bed = Bed {
            prefix: prefix.to_string(),
            topo,
            ferry: ferry.to_path_buf(),
            dir,
            procs: Vec::new(),
            discovery_period_ms: None,
            relay: false,
            bw: None,
            radio_model: None,
            air_note: None,
            modem_flags: Vec::new(),
            console_args: Vec::new(),
            clock_ppm: 0.0,
            far_noise_floor_dbfs: None,
            two_channel_radios: false,
            fading_doppler_hz: None,
            fronthaul_mtu: None,
        };
        crate::netns::up(&bed.topo)?;
        write_random_key(&bed.key()).map_err(io("writing the run's key"))?;
        Ok(bed)
    }

    /// Raises the fronthaul LAN's MTU to `mtu` (jumbo frames, as USRPs on 10 GbE are run:
    /// fewer, larger sample packets): every fronthaul veth on both sides of the switch, then
    /// `ferry air --fronthaul-mtu` and every modem's `--fronthaul-mtu` (modems started
    /// afterwards). 1500 is the default and needs no call.
    pub fn set_fronthaul_mtu(&mut self, mtu: u16) -> Result<(), SessionError> {
        if !(1280..=9000).contains(&mtu) {
            return Err(SessionError::Failed(format!(
                "fronthaul MTU {mtu}: expected 1280–9000"
            )));
        }
        let m = mtu.to_string();
        for h in &self.topo.hosts {
            for i in h.ifaces.iter().filter(|i| i.bridge == Bridge::Fh) {
                netns::ip(&[
                    "-n",
                    &self.topo.switch_ns,
                    "link",
                    "set",
                    &i.peer,
                    "mtu",
                    &m,
                ])?;
                netns::ip(&["-n", &h.ns, "link", "set", &i.name, "mtu", &m])?;
            }
        }
        self.fronthaul_mtu = Some(mtu);
        self.modem_flags.push(format!("--fronthaul-mtu={mtu}"));
        Ok(())
    }

    /// The run's key file (agents and link control): random per run, mode 0600.
    pub fn key(&self) -> PathBuf {
        self.dir.join("agent.key")
    }

    /// Namespace of `host` (`server1`, `radio`, ...).
    pub fn ns(&self, host: &str) -> String {
        self.topo
            .host(host)
            .map_or_else(|| format!("{}-{host}", self.prefix), |h| h.ns.clone())
    }

    /// A `ferry` command inside `host`'s namespace.
    pub fn ferry_in(&self, host: &str) -> Command {
        command_in(&self.ns(host), &self.ferry.to_string_lossy())
    }

    /// Starts `cmd` (output to a log file in the scratch directory) and keeps it.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<(), SessionError> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))
            .map_err(io(format!("log of {name}")))?;
        let err = log.try_clone().map_err(io(format!("log of {name}")))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io(format!("starting {name}")))?;
        self.procs.push((name.to_string(), child));
        Ok(())
    }

    /// Fails if a kept process has exited (with its log's tail).
    pub fn check_alive(&mut self) -> Result<(), SessionError> {
        for (name, c) in &mut self.procs {
            if let Ok(Some(st)) = c.try_wait() {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                return Err(SessionError::Failed(exit_report(
                    name,
                    &st.to_string(),
                    &log,
                )));
            }
        }
        Ok(())
    }

    /// Stops the kept process `name` (SIGTERM, then SIGKILL after 1.5 s) and forgets it.
    pub fn stop_named(&mut self, name: &str) {
        let Some(i) = self.procs.iter().position(|(n, _)| n == name) else {
            return;
        };
        let (_, mut c) = self.procs.remove(i);
        // SAFETY: kill(2) on our own child, not yet reaped.
        if let Ok(pid) = i32::try_from(c.id()) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let end = Instant::now() + Duration::from_millis(1500);
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Kills every kept process and whatever else runs in the testbed's namespaces.
    pub fn stop_all(&mut self) {
        for (_, c) in &mut self.procs {
            // SAFETY: kill(2) on our own child (not yet reaped): SIGTERM first so modems
            // and agents close their TUN and sockets.
            if let Ok(pid) = i32::try_from(c.id()) {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let end = Instant::now() + Duration::from_millis(1500);
        for (_, c) in &mut self.procs {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.clear();
        for ns in self.topo.namespaces() {
            netns::kill_all_in(ns, Duration::from_millis(500));
        }
    }

    /// Starts `ferry air` in the radio namespace with the pool and far radios. `legacy`:
    /// the pool radio is address-bound to 192.168.10.1 (the thesis' N210); otherwise it
    /// is under link control only (make-before-break).
    /// With [`Bed::relay`] the air also has server4's radio `relayrx` (it hears the pool
    /// radio, never server3's: the default air blocks far–relayrx).
    pub fn start_air(&mut self, legacy: bool) -> Result<(), SessionError> {
        let relay = self.relay;
        let far_noise = self.far_noise_floor_dbfs;
        let two_channels = self.two_channel_radios;
        let wanted = |n: &serde_json::Value| n == "pool" || n == "far" || (relay && n == "relayrx");
        let mut print = Command::new(&self.ferry);
        print.args(["air", "--print-default-config"]);
        // The air sets its clock and picks a radio model that gives the rate (say which).
        if let Some(mhz) = self.bw {
            print.arg(format!("--bw={mhz}"));
            if let Some(m) = &self.radio_model {
                print.arg(format!("--radio-model={m}"));
            }
        }
        let out = print
            .output()
            .map_err(io("ferry air --print-default-config"))?;
        if !out.status.success() {
            return Err(SessionError::Failed(format!(
                "ferry air --print-default-config: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        self.air_note = self.bw.map(|_| {
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .trim_start_matches("ferry air: ")
                .to_string()
        });
        if self.two_channel_radios {
            // The default's model is replaced below: say what actually runs.
            let note = self.air_note.take().unwrap_or_default();
            self.air_note = Some(format!(
                "{note}{}pool and far as two-channel B210s (two antennas each)",
                if note.is_empty() { "" } else { "; then " }
            ));
        }
        let mut cfg: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| SessionError::Failed(format!("air default config: {e}")))?;
        let pick = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
        let radios: Vec<serde_json::Value> = pick(&cfg["radios"])
            .into_iter()
            .filter(|r| wanted(&r["name"]))
            .map(|mut r| {
                let pool = r["name"] == "pool";
                r["init_ms"] = 0.into();
                r["fronthaul"] = if pool {
                    "192.168.10.2:49156"
                } else if r["name"] == "far" {
                    "192.168.13.2:49157"
                } else {
                    "192.168.14.2:49158"
                }
                .into();
                if r["name"] == "far" {
                    if let Some(db) = far_noise {
                        r["noise_floor_dbfs"] = db.into();
                    }
                }
                if two_channels && (pool || r["name"] == "far") {
                    r["channels"] = 2.into();
                    r["rf"]["model"] = "b210".into();
                }
                r["legacy_host"] = if pool && legacy {
                    "192.168.10.1:49200".into()
                } else {
                    serde_json::Value::Null
                };
                r
            })
            .collect();
        let links: Vec<serde_json::Value> = pick(&cfg["links"])
            .into_iter()
            .filter(|l| wanted(&l["a"]) && wanted(&l["b"]))
            .collect();
        cfg["radios"] = radios.into();
        cfg["links"] = links.into();
        cfg["control"] = RADIO_CTL.into();
        cfg["clock_ppm"] = self.clock_ppm.into();
        if let Some(hz) = self.fading_doppler_hz {
            cfg["fading"] = serde_json::json!({ "doppler_hz": hz });
        }
        let path = self.dir.join("air.json");
        std::fs::write(&path, cfg.to_string()).map_err(io("writing air.json"))?;
        let mut c = self.ferry_in("radio");
        c.arg("air")
            .arg("--config")
            .arg(&path)
            .arg("--key")
            .arg(self.key());
        if let Some(mtu) = self.fronthaul_mtu {
            c.arg(format!("--fronthaul-mtu={mtu}"));
        }
        self.spawn("air", c)
    }

    /// Starts the far-end modem (slave, D2D) in server3 on the far radio.
    pub fn start_far(&mut self) -> Result<(), SessionError> {
        let mut c = self.ferry_in("server3");
        c.args([
            "modem",
            "--workmode",
            "1",
            "--radio",
            "far",
            "--radio-control",
            RADIO_CTL,
            "--bind",
            "192.168.13.1:49200",
            "--tun-addr",
            &format!("{FAR_END_TUN}/24"),
        ])
        .arg("--control-socket")
        .arg(self.dir.join("far.sock"))
        .arg("--key")
        .arg(self.key());
        if let Some(p) = self.discovery_period_ms {
            c.arg(format!("--discovery-period-ms={p}"));
        }
        if let Some(bw) = self.bw {
            c.arg(format!("--bw={bw}"));
        }
        c.args(&self.modem_flags);
        self.spawn("far-modem", c)
    }

    /// Starts server4's modem (slave, node 10) on the `relayrx` radio: the receiver behind
    /// the relay in chapter 4.
    pub fn start_relay_rx(&mut self) -> Result<(), SessionError> {
        let mut c = self.ferry_in("server4");
        c.args([
            "modem",
            "--workmode",
            "1",
            "--radio",
            "relayrx",
            "--radio-control",
            RADIO_CTL,
            "--bind",
            "192.168.14.1:49200",
            "--tun-addr",
            &format!("{RELAY_RX_TUN}/24"),
        ])
        .arg("--control-socket")
        .arg(self.dir.join("relayrx.sock"))
        .arg("--key")
        .arg(self.key());
        if let Some(p) = self.discovery_period_ms {
            c.arg(format!("--discovery-period-ms={p}"));
        }
        self.spawn("relayrx-modem", c)
    }

    /// The `result` of a modem's `status` on its control socket `name` in the scratch
    /// directory; `None` if it does not answer.
    pub fn modem_status(&self, name: &str) -> Option<serde_json::Value> {
        use std::io::Read;
        let mut c = std::os::unix::net::UnixStream::connect(self.dir.join(name)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        c.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
        let mut line = Vec::new();
        let mut b = [0u8; 4096];
        while !line.contains(&b'\n') && line.len() < 1 << 20 {
            let n = c.read(&mut b).ok()?;
            if n == 0 {
                break;
            }
            line.extend_from_slice(b.get(..n)?);
        }
        let v: serde_json::Value =
            serde_json::from_slice(line.split(|&x| x == b'\n').next()?).ok()?;
        Some(v["result"].clone())
    }

    /// The `counters` of a modem's `status`, asked on its control socket `name` in the
    /// scratch directory (`far.sock`, `relayrx.sock`, `s1.sock`, …); `None` if it does not
    /// answer.
    pub fn modem_counters(&self, name: &str) -> Option<serde_json::Value> {
        self.modem_status(name).map(|r| r["counters"].clone())
    }

    /// Waits until one ping from server3 reaches the task's TUN address.
    pub fn wait_first_ping(&mut self, timeout: Duration) -> Result<Duration, SessionError> {
        self.wait_first_ping_to(POOL_TUN, timeout)
    }

    /// Waits until one ping from server3 reaches `to` (server4 through the relay: every
    /// modem's route table has converged).
    pub fn wait_first_ping_to(
        &mut self,
        to: std::net::Ipv4Addr,
        timeout: Duration,
    ) -> Result<Duration, SessionError> {
        let t0 = Instant::now();
        loop {
            if interrupted() {
                return Err(SessionError::Interrupted);
            }
            self.check_alive()?;
            let ok = command_in(&self.ns("server3"), "ping")
                .args(["-c", "1", "-W", "1", &to.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                return Err(SessionError::Failed(format!(
                    "no ping from server3 reached {to} within {timeout:?}; logs in {}",
                    self.dir.display()
                )));
            }
        }
    }

    /// The `--modem-arg` list of a pool-server modem master.
    fn modem_args(&self, legacy: bool, n: u8) -> Vec<String> {
        // The relay task is a base station (workmode 2): it grants the slaves' uplink and
        // forwards between them.
        let wm = if self.relay {
            "--workmode=2"
        } else {
            "--workmode=0"
        };
        let mut args: Vec<String> = if legacy {
            vec![
                "modem".into(),
                wm.into(),
                "--legacy-radio=192.168.10.2:49156".into(),
                "--bind=0.0.0.0:49200".into(),
            ]
        } else {
            vec![
                "modem".into(),
                wm.into(),
                "--radio=pool".into(),
                format!("--radio-control={RADIO_CTL}"),
                format!("--bind=192.168.10.1{n}:49200"),
                format!("--forward-bind=192.168.10.1{n}:7000"),
            ]
        };
        if let Some(p) = self.discovery_period_ms {
            args.push(format!("--discovery-period-ms={p}"));
        }
        if let Some(bw) = self.bw {
            args.push(format!("--bw={bw}"));
        }
        args.extend(self.modem_flags.iter().cloned());
        args.into_iter()
            .map(|a| format!("--modem-arg={a}"))
            .collect()
    }

    /// Host options shared by `ferry agent` and `ferry ctl` on server `n`.
    fn host_args(&self, c: &mut Command, legacy: bool, n: u8) {
        c.arg("--key")
            .arg(self.key())
            .arg("--radio-key")
            .arg(self.key())
            .args(["--parked", &format!("192.168.20.{n}")]);
        if legacy {
            c.args(["--radio", "legacy"]);
        } else {
            c.args(["--radio", "controlled", "--radio-control", RADIO_CTL]);
        }
        c.args(["--usrp-in-modem", "--tun", "ferry0", "--modem"])
            .arg(&self.ferry)
            .args(self.modem_args(legacy, n))
            .arg("--modem-socket")
            .arg(self.dir.join(format!("s{n}.sock")));
    }

    /// Starts `ferry agent` on server `n`.
    pub fn start_agent(&mut self, legacy: bool, n: u8) -> Result<(), SessionError> {
        let mut c = self.ferry_in(&format!("server{n}"));
        c.args(["agent", "--bind", &format!("tcp://10.99.0.{n}:5555")])
            .args(["--name", &format!("server{n}")]);
        self.host_args(&mut c, legacy, n);
        self.spawn(&format!("agent-server{n}"), c)
    }

    /// Make-before-break's starting point: the air (link control), the far-end modem, the
    /// agents of server1 and server2, and the task (cold) on server1, waited for until a
    /// ping from server3 passes through it.
    pub fn serving_task(&mut self) -> Result<(), SessionError> {
        self.start_air(false)?;
        self.start_far()?;
        self.start_agent(false, 1)?;
        self.start_agent(false, 2)?;
        sleep(Duration::from_millis(600))?;
        self.check_alive()?;
        self.send(1, "set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#)?;
        self.send(1, "start_d2d", r#"{"control_flag":0}"#)?;
        self.wait_first_ping(Duration::from_secs(60))?;
        Ok(())
    }

    /// `ferry ctl` on server1 migrating the task to server2 by make-before-break (with the
    /// global `options`, e.g. `--pause-after synced`, before `migrate`), stdin closed,
    /// stdout and stderr piped, started: for tests that act at a progress line.
    pub fn spawn_mbb(&self, options: &[&str]) -> std::io::Result<std::process::Child> {
        let mut c = self.ferry_in("server1");
        c.arg("ctl")
            .arg("--key")
            .arg(self.key())
            .arg("--radio-key")
            .arg(self.key())
            .args(options)
            .args(mbb_migrate_args(1, 2, RADIO_CTL))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn()
    }

    /// A `ferry ctl` make-before-break migration server1 → server2 with `options`; at the
    /// first stderr line `at` accepts, `act` runs with ctl's pid (to kill something right
    /// there). Returns ctl's exit status and its whole output (stdout, then stderr), or the
    /// output so far if `at` never matched.
    pub fn mbb_acting_at(
        &self,
        options: &[&str],
        at: impl Fn(&str) -> bool,
        act: impl FnOnce(u32),
    ) -> Result<(std::process::ExitStatus, String), String> {
        use std::io::BufRead;
        let mut ctl = self.spawn_mbb(options).map_err(|e| e.to_string())?;
        let Some(err) = ctl.stderr.take() else {
            return Err("ctl has no stderr".into());
        };
        let mut lines = std::io::BufReader::new(err).lines();
        let mut log = Vec::new();
        let mut act = Some(act);
        for l in lines.by_ref().map_while(Result::ok) {
            let hit = at(&l);
            log.push(l);
            if hit {
                if let Some(a) = act.take() {
                    a(ctl.id());
                }
                break;
            }
        }
        if act.is_some() {
            let _ = ctl.kill();
            let _ = ctl.wait();
            return Err(format!("never reached:\n{}", log.join("\n")));
        }
        log.extend(lines.map_while(Result::ok));
        let out = ctl.wait_with_output().map_err(|e| e.to_string())?;
        Ok((
            out.status,
            format!("{}{}", String::from_utf8_lossy(&out.stdout), log.join("\n")),
        ))
    }

    /// `status` of server `n`'s agent (its `result` object; null when it does not answer).
    pub fn agent_status(&self, n: u8) -> serde_json::Value {
        let o = self
            .ferry_in(&format!("server{n}"))
            .arg("ctl")
            .arg("--key")
            .arg(self.key())
            .args([
                "send",
                "status",
                "--to",
                &format!("server{n}=tcp://10.99.0.{n}:5555"),
            ])
            .output();
        o.ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .map_or(serde_json::Value::Null, |v| v["result"].clone())
    }

    /// The pool radio's link-control status (null when the air does not answer).
    pub fn radio_status(&self) -> serde_json::Value {
        self.ferry_in("radio")
            .args(["radio", "--control", RADIO_CTL, "--key"])
            .arg(self.key())
            .args(["status", "pool"])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or_default()
    }

    /// What pool server `n`, which should not serve the task, still holds: its agent
    /// running a modem, a modem process, the task's TUN address, or the radio shadowing
    /// its RX to someone. Empty when clean.
    pub fn leftovers_off_duty(&self, n: u8) -> Vec<String> {
        let mut left = Vec::new();
        let st = self.agent_status(n);
        if st["d2d"] != false {
            left.push(format!("server{n}'s agent runs a modem: {st}"));
        }
        let modems = self.pids(n, "modem");
        if !modems.is_empty() {
            left.push(format!("modem processes on server{n}: {modems:?}"));
        }
        let ns = self.ns(&format!("server{n}"));
        if netns::holds_addr(&ns, "ferry0", std::net::Ipv4Addr::new(192, 168, 40, 9)) {
            left.push(format!("the task's TUN address on server{n}"));
        }
        let radio = self.radio_status();
        if !radio["radios"][0]["shadow"].is_null() {
            left.push(format!("the radio still shadows: {radio}"));
        }
        left
    }

    /// Which pool server (1 or 2) the pool radio names as its primary, if any.
    pub fn primary_server(&self) -> Option<u8> {
        let r = self.radio_status();
        let linked = r["radios"][0]["linked"].as_str()?.to_string();
        (1..=2u8).find(|n| format!("192.168.10.1{n}:49200") == linked)
    }

    /// The air's link-control `status` of every radio (pool and far end), `null` if the air
    /// did not answer.
    pub fn radios_status(&self) -> serde_json::Value {
        self.ferry_in("radio")
            .args(["radio", "--control", RADIO_CTL, "--key"])
            .arg(self.key())
            .arg("status")
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or_default()
    }

    /// Pids in server `n`'s namespace whose `argv[1]` is `what` (`modem`, `agent`).
    pub fn pids(&self, n: u8, what: &str) -> Vec<i32> {
        netns::pids_in(&self.ns(&format!("server{n}")))
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(what.as_bytes()))
            })
            .collect()
    }

    /// Restarts server `n`'s agent after it died (a rebooted server): the dead process is
    /// reaped and forgotten, a new one takes its name.
    pub fn restart_agent(&mut self, n: u8) -> Result<(), SessionError> {
        self.restart_agent_as(n, false)
    }

    /// [`Bed::restart_agent`] for the legacy method (`legacy`: the thesis' agent with its
    /// own radio link) or make-before-break.
    pub fn restart_agent_as(&mut self, n: u8, legacy: bool) -> Result<(), SessionError> {
        let name = format!("agent-server{n}");
        self.procs.retain_mut(|(p, c)| {
            if *p == name {
                let _ = c.kill();
                let _ = c.wait();
                false
            } else {
                true
            }
        });
        self.start_agent(legacy, n)
    }

    /// Starts the thesis console (`ferry ctl ... console --json`) on server1, whose task
    /// it hosts itself, with server2's agent as the remote.
    pub fn start_console(&mut self) -> Result<Console, SessionError> {
        let mut c = self.ferry_in("server1");
        c.arg("ctl");
        if self.relay {
            c.arg("--relay");
        }
        self.host_args(&mut c, true, 1);
        c.args(&self.console_args);
        c.args([
            "--peer",
            "server2=tcp://10.99.0.2:5555",
            "--remote",
            "server2",
            "console",
            "--json",
        ]);
        let log = std::fs::File::create(self.dir.join("console.log"))
            .map_err(io("log of the console"))?;
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io("starting ferry ctl console"))?;
        let stdin = child.stdin.take();
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Console {
            child: Some(child),
            stdin,
            lines: rx,
            transcript: String::new(),
        })
    }

    /// `ferry ctl send CMD JSON --to` server `n`'s agent.
    pub fn send(&self, n: u8, cmd: &str, json: &str) -> Result<(), SessionError> {
        let o = self
            .ferry_in(&format!("server{n}"))
            .arg("ctl")
            .arg("--key")
            .arg(self.key())
            .args([
                "send",
                cmd,
                json,
                "--to",
                &format!("server{n}=tcp://10.99.0.{n}:5555"),
            ])
            .output()
            .map_err(io(format!("ferry ctl send {cmd}")))?;
        if !o.status.success() {
            return Err(SessionError::Failed(format!(
                "{cmd} on server{n}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        Ok(())
    }

    /// One make-before-break migration server `from` → server `to` with `ferry ctl
    /// migrate --method mbb --json`; returns the timeline and its start (Unix ms).
    pub fn migrate_mbb(&self, from: u8, to: u8) -> Result<(Timeline, f64), SessionError> {
        match self.migrate_mbb_outcome(from, to)? {
            (t, start, Ok(())) => Ok((t, start)),
            (_, _, Err(text)) => Err(SessionError::Failed(format!(
                "make-before-break server{from} → server{to} failed:\n{text}"
            ))),
        }
    }

    /// [`Bed::migrate_mbb`] that also returns a migration ctl reported as failed, with its
    /// timeline and ctl's output (`Err(text)`); an error only when ctl printed no timeline.
    pub fn migrate_mbb_outcome(
        &self,
        from: u8,
        to: u8,
    ) -> Result<(Timeline, f64, Result<(), String>), SessionError> {
        let mut c = self.ferry_in(&format!("server{from}"));
        c.arg("ctl");
        if self.relay {
            c.arg("--relay");
        }
        c.arg("--key")
            .arg(self.key())
            .arg("--radio-key")
            .arg(self.key())
            .args(mbb_migrate_args(from, to, RADIO_CTL))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = unix_ms();
        let child = c.spawn().map_err(io("ferry ctl migrate"))?;
        let out = wait_output(child, Duration::from_secs(60))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let tl = text
            .lines()
            .find(|l| l.starts_with("{\"label\""))
            .and_then(|l| serde_json::from_str::<Timeline>(l).ok());
        let all = || format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        match tl {
            Some(t) if out.status.success() => Ok((t, start, Ok(()))),
            Some(t) => Ok((t, start, Err(all()))),
            None => Err(SessionError::Failed(format!(
                "make-before-break server{from} → server{to} failed:\n{}",
                all()
            ))),
        }
    }
}

/// Why a kept process exited, from its log: its own error (anyhow's `Error: …` and its
/// causes, without the backtrace that `RUST_BACKTRACE=1` appends), else the log's last lines.
fn exit_report(name: &str, status: &str, log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    if let Some(start) = lines.iter().rposition(|l| l.starts_with("Error: ")) {
        let mut error: Vec<&str> = Vec::new();
        for l in lines[start..]
            .iter()
            .take_while(|l| !l.starts_with("Stack backtrace:"))
        {
            // anyhow numbers several causes (`0: …`); a cause that repeats the one before
            // it (an error that prints its source) is said once.
            let l = l.trim();
            let l = match l.split_once(": ") {
                Some((n, rest)) if n.parse::<u32>().is_ok() => rest,
                _ => l,
            };
            if !l.is_empty() && l != "Caused by:" && !error.iter().any(|e| e.contains(l)) {
                error.push(l);
            }
        }
        error.truncate(8);
        return format!("{name} exited ({status}): {}", error.join(": "));
    }
    let tail: Vec<&str> = lines.iter().rev().take(8).rev().copied().collect();
    format!(
        "{name} exited ({status}); last lines of its log:\n  {}",
        tail.join("\n  ")
    )
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.stop_all();
        let _ = netns::down(&self.prefix);
        // FERRY_KEEP_LOGS=1 keeps the scratch directory (every process's log) for a look.
        if std::env::var_os("FERRY_KEEP_LOGS").is_some() {
            eprintln!("logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits for `child` with its output, polling the signal flag; kills it on timeout or
/// interruption.
fn wait_output(mut child: Child, timeout: Duration) -> Result<std::process::Output, SessionError> {
    let t0 = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block.
    let read = |p: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut v);
            }
            v
        })
    };
    let so = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let se = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let status = loop {
        if let Some(st) = child.try_wait().map_err(io("waiting for ferry ctl"))? {
            break st;
        }
        if interrupted() || t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(if interrupted() {
                SessionError::Interrupted
            } else {
                SessionError::Failed(format!("ferry ctl did not finish within {timeout:?}"))
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: so.join().unwrap_or_default(),
        stderr: se.join().unwrap_or_default(),
    })
}

/// The `ferry ctl` arguments (after the global key/relay options) of one make-before-break
/// migration in the testbed: server `from`'s agent to server `to`'s, the pool radio through
/// the radio room's link control at `radio_ctl`, the destination's fronthaul and forward
/// ports on its permanent eth3 address.
pub fn mbb_migrate_args(from: u8, to: u8, radio_ctl: &str) -> Vec<String> {
    [
        "--local".to_string(),
        format!("server{from}=tcp://10.99.0.{from}:5555"),
        "--peer".into(),
        format!("server{to}=tcp://10.99.0.{to}:5555"),
        "--radio-control".into(),
        radio_ctl.into(),
        "--radio-name".into(),
        "pool".into(),
        "migrate".into(),
        "--to".into(),
        format!("server{to}"),
        "--method".into(),
        "mbb".into(),
        "--json".into(),
        "--dest-port".into(),
        format!("192.168.10.1{to}:49200"),
        "--forward-to".into(),
        format!("192.168.10.1{to}:7000"),
    ]
    .into()
}

/// Write a fresh random 32-byte key (hex) to `path`, created with mode 0600 in one step
/// (O_CREAT|O_EXCL with the mode: never readable by others, not even for a moment).
pub fn write_random_key(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let key: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(format!("{}\n", ferry_auth::hex_encode(&key)).as_bytes())
}

/// A stranger on the management LAN (in server3's namespace) without the key: until
/// stopped, sends every link-control request (`link`, `shadow`, `switch_at`, `unlink`,
/// `reset`, `capture`, `stop_capture`, `discover`, `status`) for the pool and far radios
/// with `ferry radio`, and counts those the air refused as unauthenticated.
pub struct Stranger {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl Stranger {
    /// Starts the stranger's thread.
    pub fn start(bed: &Bed) -> Stranger {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (ns, ferry, flag) = (
            bed.ns("server3"),
            bed.ferry.to_string_lossy().into_owned(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let (mut sent, mut refused) = (0u64, 0u64);
            let thief = "10.99.0.3:40000";
            while !flag.load(Ordering::Relaxed) {
                for radio in ["pool", "far"] {
                    let ops: [&[&str]; 10] = [
                        &["link", radio, thief],
                        &["shadow", radio, thief],
                        &["unshadow", radio, thief],
                        &["switch-at", radio, thief, "--at", "1"],
                        &["unlink", radio],
                        &["reset", radio],
                        &["capture", radio, "--samples", "1000000"],
                        &["stop-capture", radio],
                        &["discover", radio],
                        &["status", radio],
                    ];
                    for op in ops {
                        if flag.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(o) = crate::netns::command_in(&ns, &ferry)
                            .args(["radio", "--control", RADIO_CTL])
                            .args(op)
                            .output()
                        else {
                            continue;
                        };
                        sent += 1;
                        let err = String::from_utf8_lossy(&o.stderr);
                        if !o.status.success() && err.contains("unauthenticated") {
                            refused += 1;
                        }
                    }
                }
            }
            (sent, refused)
        });
        Stranger {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the stranger; returns (requests sent, refused as unauthenticated).
    pub fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or((0, 0))
    }
}

/// The thesis console on server1, fed one line at a time.
pub struct Console {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Everything the console printed so far.
    pub transcript: String,
}

impl Console {
    /// Sends `line` (DS, M, MB, KL, ...) and waits for its outcome; for M and MB returns
    /// the timeline. `Ok((ok, timeline))`.
    pub fn run(
        &mut self,
        line: &str,
        timeout: Duration,
    ) -> Result<(bool, Option<Timeline>), SessionError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| SessionError::Failed("console closed".into()))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(io(format!("console line {line}")))?;
        let t0 = Instant::now();
        let wants_timeline = matches!(line, "M" | "MB");
        let mut ok = None;
        loop {
            if interrupted() {
                return Err(SessionError::Interrupted);
            }
            let left = timeout.saturating_sub(t0.elapsed());
            if left.is_zero() {
                return Err(SessionError::Failed(format!(
                    "console: {line} gave no outcome within {timeout:?}:\n{}",
                    self.transcript
                )));
            }
            match self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(l) => {
                    self.transcript.push_str(&l);
                    self.transcript.push('\n');
                    if l.starts_with(&format!("{line} succeeded")) {
                        ok = Some(true);
                    } else if l.starts_with(&format!("{line} FAILED")) {
                        ok = Some(false);
                    }
                    if wants_timeline && l.starts_with("{\"label\"") {
                        let t = serde_json::from_str::<Timeline>(&l).ok();
                        return Ok((ok.unwrap_or(false), t));
                    }
                    if let (Some(o), false) = (ok, wants_timeline) {
                        return Ok((o, None));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SessionError::Failed(format!(
                        "console exited during {line}:\n{}",
                        self.transcript
                    )))
                }
            }
        }
    }

    /// The console process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Ends the console's input without a command (EOF), or sends it `signal` (SIGINT,
    /// SIGTERM) with its input left open, and waits up to `within` for it to exit. Returns
    /// its exit status, `None` if it is still running (it is killed then).
    pub fn end(&mut self, signal: Option<i32>, within: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        match signal {
            None => drop(self.stdin.take()),
            Some(sig) => {
                if let Ok(pid) = i32::try_from(c.id()) {
                    // SAFETY: kill(2) on our own child, not yet reaped.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        }
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(st)) = c.try_wait() {
                self.stdin = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        self.stdin = None;
        None
    }

    /// Ends the console: `KL`, then `q`, waits briefly, kills it if still there.
    pub fn close(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "KL");
            let _ = writeln!(s, "q");
        }
        if let Some(mut c) = self.child.take() {
            let end = Instant::now() + Duration::from_secs(3);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.close();
    }
}

/// `ping -i 0.1` from server3 plus the 1 ms UDP probe (sender on server3, echo responders
/// on server1 and server2), to the task's TUN address. Drop stops everything.
pub struct Traffic {
    ping: Option<PingRun>,
    stop_sender: Arc<AtomicBool>,
    stop_echo: Arc<AtomicBool>,
    sender: Option<JoinHandle<std::io::Result<ProbeLog>>>,
    echoes: Vec<JoinHandle<()>>,
    /// When the probe sender started (Unix ms): its sample times are relative to it.
    pub probe_started_unix_ms: f64,
}

/// What a [`Traffic`] measured.
pub struct TrafficResult {
    /// Ping's report (its samples carry Unix stamps through `first_sent_unix_ms`).
    pub ping: PingReport,
    /// The probe's log.
    pub probe: ProbeLog,
    /// When the probe sender started (Unix ms).
    pub probe_started_unix_ms: f64,
}

impl TrafficResult {
    /// Prints the ping and probe summary, and says what was lost or echoed twice: `None`
    /// when nothing (pings still unanswered in the last 500 ms, when traffic stopped, are
    /// not counted lost).
    pub fn losses(&self) -> Option<String> {
        let probe = self.probe.report();
        println!(
            "ping: {} sent, {} lost; probe: {} sent, {} lost, {} duplicates, longest gap {:.1} ms",
            self.ping.sent,
            self.ping.lost,
            probe.sent,
            probe.lost,
            probe.duplicates,
            probe.longest_gap_ms
        );
        let end = self.ping.samples.last().map_or(0.0, |s| s.t_ms);
        let pings: Vec<u64> = self
            .ping
            .samples
            .iter()
            .filter(|s| s.rtt_ms.is_none() && s.t_ms < end - 500.0)
            .map(|s| s.seq)
            .collect();
        (probe.lost > 0 || probe.duplicates > 0 || !pings.is_empty()).then(|| {
            format!(
                "probes lost {}, duplicates {}; pings lost {pings:?}",
                probe.lost, probe.duplicates
            )
        })
    }
}

impl Traffic {
    /// Starts the echo responders, the probe sender (one probe every `probe_interval`;
    /// `None`: no probe) and ping.
    pub fn start(bed: &Bed, probe_interval: Option<Duration>) -> Result<Traffic, SessionError> {
        Traffic::start_live(bed, probe_interval, None)
    }

    /// As [`Traffic::start`], the probe also handing each second's figures to `live`
    /// (the sink and the run's origin, Unix ms) as [`LiveEvent::Second`].
    pub fn start_live(
        bed: &Bed,
        probe_interval: Option<Duration>,
        live: Option<(LiveSink, f64)>,
    ) -> Result<Traffic, SessionError> {
        let stop_echo = Arc::new(AtomicBool::new(false));
        let stop_sender = Arc::new(AtomicBool::new(false));
        let mut echoes = Vec::new();
        for h in ["server1", "server2"] {
            let ns = bed.ns(h);
            let stop = Arc::clone(&stop_echo);
            echoes.push(std::thread::spawn(move || {
                if enter_netns(&ns).is_ok() {
                    let bind = SocketAddr::from(([0, 0, 0, 0], PROBE_PORT));
                    if let Err(e) = probe::run_echo(bind, &stop) {
                        tracing::warn!("probe echo in {ns}: {e}");
                    }
                }
            }));
        }
        // Let the echo sockets bind before the first probe.
        std::thread::sleep(Duration::from_millis(100));
        let ns3 = bed.ns("server3");
        let stop = Arc::clone(&stop_sender);
        let (tx, rx) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            enter_netns(&ns3)?;
            let started = unix_ms();
            let _ = tx.send(started);
            // Each second is reported once 500 ms have passed after it, so its echoes had
            // time to come back.
            let mut reported = 0u64;
            let mut each_second = |log: &ProbeLog, now_ns: u64| {
                let Some((sink, origin)) = &live else {
                    return;
                };
                let done = now_ns.saturating_sub(500_000_000);
                let end = done - done % 1_000_000_000;
                if end > reported {
                    reported = end;
                    sink.emit(LiveEvent::Second(live::probe_second(
                        log,
                        end,
                        started - origin,
                    )));
                }
            };
            probe::run_sender_observed(
                SocketAddr::new(IpAddr::V4(POOL_TUN), PROBE_PORT),
                probe_interval.unwrap_or(Duration::from_millis(1)),
                if probe_interval.is_some() {
                    u64::MAX
                } else {
                    0
                },
                Duration::from_millis(300),
                &stop,
                &mut each_second,
            )
        });
        let probe_started_unix_ms = rx
            .recv_timeout(Duration::from_secs(2))
            .map_err(|_| SessionError::Failed("the probe sender did not start".into()))?;
        let ping = PingRun::start(Some(&bed.ns("server3")), IpAddr::V4(POOL_TUN), 100)
            .map_err(|e| SessionError::Failed(format!("ping: {e}")))?;
        Ok(Traffic {
            ping: Some(ping),
            stop_sender,
            stop_echo,
            sender: Some(sender),
            echoes,
            probe_started_unix_ms,
        })
    }

    /// A reader of ping's report for a live watcher ([`crate::live::SecondsWatcher`]).
    pub fn ping_watch(&self) -> Option<crate::ping::PingWatch> {
        self.ping.as_ref().map(PingRun::watch)
    }

    /// Ping's report so far.
    pub fn ping_snapshot(&self) -> Option<PingReport> {
        self.ping.as_ref().map(PingRun::snapshot)
    }

    /// Waits until pings pass (5 more answered), at most `limit`; false if they do not.
    pub fn pings_flow(&self, limit: Duration) -> bool {
        let Some(before) = self.ping_snapshot().map(|p| p.received) else {
            return false;
        };
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self
                .ping_snapshot()
                .is_some_and(|p| p.received >= before + 5)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops everything and returns what was measured.
    pub fn stop(mut self) -> Result<TrafficResult, SessionError> {
        let ping = self
            .ping
            .take()
            .ok_or_else(|| SessionError::Failed("ping already stopped".into()))?
            .stop()
            .map_err(|e| SessionError::Failed(format!("ping: {e}")))?;
        self.stop_sender.store(true, Ordering::SeqCst);
        let probe = self
            .sender
            .take()
            .ok_or_else(|| SessionError::Failed("probe already stopped".into()))?
            .join()
            .map_err(|_| SessionError::Failed("the probe sender panicked".into()))?
            .map_err(io("probe sender"))?;
        Ok(TrafficResult {
            ping,
            probe,
            probe_started_unix_ms: self.probe_started_unix_ms,
        })
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop_sender.store(true, Ordering::SeqCst);
        self.stop_echo.store(true, Ordering::SeqCst);
        if let Some(s) = self.sender.take() {
            let _ = s.join();
        }
        for e in self.echoes.drain(..) {
            let _ = e.join();
        }
        // PingRun's own Drop stops ping.
    }
}

#[cfg(test)]
mod exit_report_tests {
    use super::exit_report;

    #[test]
    fn the_error_not_the_backtrace_is_reported() {
        let log = "ferry air: radios at 30.72 Msps: N210 (asked for), which cannot\n\
Error: air configuration\n\nCaused by:\n    0: radio pool: rate 30720000 Hz is beyond\n\
    1: rate 30720000 Hz is beyond\n\n\
Stack backtrace:\n   0: std::backtrace::Backtrace::capture\n   1: ferry::main\n   2: core::ops\n\
   3: a\n   4: b\n   5: c\n   6: d\n   7: e\n   8: f\n";
        let r = exit_report("air", "exit status: 1", log);
        assert_eq!(
            r,
            "air exited (exit status: 1): Error: air configuration: radio pool: rate 30720000 Hz is beyond"
        );
        // Without an error line: the tail, as before.
        let r = exit_report("air", "signal: 9", "a\nb\nc");
        assert_eq!(
            r,
            "air exited (signal: 9); last lines of its log:\n  a\n  b\n  c"
        );
    }
}
