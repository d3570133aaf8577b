//! A real single-node etcd on loopback for tests and the demo: Debian's `etcd` binary on
//! free ports with a fresh data directory, killed and removed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::StoreError;

/// A running single-node etcd.
pub struct LocalEtcd {
    child: Child,
    data_dir: PathBuf,
    pub client_url: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The etcd binary on PATH, if installed (`scripts/deps` installs Debian's etcd-server).
pub fn etcd_binary() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    })
}

impl LocalEtcd {
    /// Starts etcd and waits until it answers (at most `timeout`).
    pub fn start(timeout: Duration) -> Result<LocalEtcd, StoreError> {
        let (client_port, peer_port) = (free_port()?, free_port()?);
        LocalEtcd::launch(None, "127.0.0.1", client_port, peer_port, timeout)
    }

    /// Starts etcd inside network namespace `netns` (as `ip netns exec`), its clients on
    /// `ip:2379` (e.g. the management network of the pool testbed), its peer port on the
    /// namespace's loopback; waits until it answers (at most `timeout`).
    pub fn start_in(netns: &str, ip: &str, timeout: Duration) -> Result<LocalEtcd, StoreError> {
        LocalEtcd::launch(Some(netns), ip, 2379, 2380, timeout)
    }

    fn launch(
        netns: Option<&str>,
        ip: &str,
        client_port: u16,
        peer_port: u16,
        timeout: Duration,
    ) -> Result<LocalEtcd, StoreError> {
        let binary = etcd_binary().ok_or(StoreError::NoEtcd)?;
        let unique = format!(
            "ferry-etcd-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let data_dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&data_dir)?;
        let client_url = format!("http://{ip}:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("--name")
            .arg("pool")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("pool={peer_url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut etcd = LocalEtcd {
            child,
            data_dir,
            client_url,
        };
        let deadline = Instant::now() + timeout;
        let addr = format!("{ip}:{client_port}");
        loop {
            if let Some(status) = etcd.child.try_wait()? {
                return Err(StoreError::EtcdExited(status.to_string()));
            }
            if answers(netns, &addr) {
                return Ok(etcd);
            }
            if Instant::now() > deadline {
                let _ = etcd.child.kill();
                return Err(StoreError::EtcdExited("did not listen in time".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether something listens on `addr` (seen from inside `netns`, on a short-lived thread
/// that enters it: a namespace is per thread).
fn answers(netns: Option<&str>, addr: &str) -> bool {
    let Some(ns) = netns else {
        return std::net::TcpStream::connect(addr).is_ok();
    };
    let (ns, addr) = (ns.to_string(), addr.to_string());
    std::thread::spawn(move || {
        let Ok(f) = std::fs::File::open(format!("/var/run/netns/{ns}")) else {
            return false;
        };
        // SAFETY: setns on a descriptor we hold open; it changes only this thread.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        r == 0 && std::net::TcpStream::connect(&addr).is_ok()
    })
    .join()
    .unwrap_or(false)
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
