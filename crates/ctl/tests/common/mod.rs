//! Shared test setup: a dry agent on 127.0.0.1 with a temporary key and the stand-in modem.
#![allow(dead_code)]

use ferry_agent::{AgentSettings, HostConfig, ModemCommand, ServeSummary};
use ferry_ctl::AgentClient;
use ferry_migrate::auth::AuthKey;
use ferry_migrate::AgentConfig;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub fn key() -> AuthKey {
    AuthKey::from_file_contents(KEY_HEX.as_bytes()).expect("key")
}

/// A fresh temporary directory for this test.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ferry-ctl-test-{}-{tag}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

pub fn fake_modem(socket: PathBuf, extra: &[&str]) -> ModemCommand {
    ModemCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_ferry-test-modem")),
        args: extra.iter().map(|s| s.to_string()).collect(),
        socket,
        state_args: true,
        radio_key: None,
        radio_identity: String::new(),
    }
}

/// A dry host with the stand-in modem and a fast collector.
pub fn dry_host(dir: &std::path::Path, name: &str, extra: &[&str]) -> HostConfig {
    let mut h = HostConfig::dry();
    h.modem = Some(fake_modem(dir.join(format!("{name}.sock")), extra));
    h.collector_period = Duration::from_millis(50);
    h
}

pub struct RunningAgent {
    pub name: String,
    pub endpoint: String,
    pub stop: Arc<AtomicBool>,
    pub thread: Option<std::thread::JoinHandle<ServeSummary>>,
}

impl RunningAgent {
    pub fn client(&self, timeout_ms: u64) -> AgentClient {
        AgentClient::named(
            self.name.clone(),
            self.endpoint.clone(),
            key(),
            Duration::from_millis(timeout_ms),
        )
    }
    pub fn join(mut self) -> ServeSummary {
        self.thread
            .take()
            .expect("thread")
            .join()
            .expect("agent thread")
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn start_agent(endpoint: &str, host: HostConfig) -> RunningAgent {
    start_named_agent(ferry_ctl::DEFAULT_AGENT_NAME, endpoint, host)
}

/// An agent whose identity (recipient name) is `name`.
pub fn start_named_agent(name: &str, endpoint: &str, host: HostConfig) -> RunningAgent {
    let agent = AgentConfig {
        parked_addr: host.parked_addr,
        active_addr: host.active_addr,
        ..AgentConfig::default()
    };
    let (endpoint, stop, thread) = ferry_agent::spawn(AgentSettings {
        name: name.into(),
        endpoint: endpoint.into(),
        key: key(),
        window_ms: 30_000,
        lease_ms: ferry_migrate::lease::LEASE_MS,
        agent,
        host,
    })
    .expect("agent binds");
    RunningAgent {
        name: name.into(),
        endpoint,
        stop,
        thread: Some(thread),
    }
}

/// Whether a process id is alive (signal 0; a reaped child is gone).
pub fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The pid the stand-in modem wrote next to its socket.
pub fn modem_pid(socket: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(format!("{}.pid", socket.display()))
        .ok()?
        .trim()
        .parse()
        .ok()
}
