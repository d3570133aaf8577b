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
        let binary = etcd_binary().ok_or(StoreError::NoEtcd)?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
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
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(binary)
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
        let addr = format!("127.0.0.1:{client_port}");
        loop {
            if let Some(status) = etcd.child.try_wait()? {
                return Err(StoreError::EtcdExited(status.to_string()));
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
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

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
