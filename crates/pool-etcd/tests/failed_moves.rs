//! A move that fails never becomes a claim: against a real single-node etcd, a controller
//! whose executor's make-before-break fails asks where the cell really serves and makes
//! etcd say exactly that — back at the source (move aborted), or at the destination when
//! the move happened after all (move finished).

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_pool_etcd::{layout, LocalEtcd, MoveExecutor, PoolStore};

/// An executor whose every move fails; where the cells "really" serve is its `serving` map,
/// which a failed move changes only when `lands` says so.
struct FailingExecutor {
    serving: BTreeMap<String, String>,
    lands: bool,
    attempts: Vec<(String, u64, String, String)>,
}

impl MoveExecutor for FailingExecutor {
    fn execute(&mut self, cell: &str, from: &str, to: &str, epoch: u64) -> Result<(), String> {
        self.attempts
            .push((cell.into(), epoch, from.into(), to.into()));
        if self.lands {
            // The destination took over, but the answer was lost.
            self.serving.insert(cell.into(), to.into());
        }
        Err("make-before-break failed: destination did not sync (test)".into())
    }

    fn locate(&mut self, cell: &str) -> Result<Option<String>, String> {
        Ok(self.serving.get(cell).cloned())
    }
}

fn setup_and_run(
    etcd: &LocalEtcd,
    exec: &mut FailingExecutor,
) -> BTreeMap<String, layout::CellRecord> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let endpoints = vec![etcd.client_url.clone()];
            let mut store = PoolStore::connect(&endpoints).await.unwrap();
            for s in ["server1", "server2"] {
                let record = layout::ServerRecord {
                    cores: 4,
                    boot_ms: 0,
                    idle_w: 100.0,
                    busy_w: 200.0,
                    load_cores: 0.0,
                    agent: String::new(),
                    slots: Default::default(),
                };
                store.register_server(s, &record, 0).await.unwrap();
            }
            // One small cell on each server: consolidate packs them onto one server.
            store.create_cell("a", "server1", 0.2).await.unwrap();
            store.create_cell("b", "server2", 0.2).await.unwrap();
            store
                .set_policy(ferry_pool::Policy::Consolidate)
                .await
                .unwrap();
            let config = ferry_pool_etcd::ControllerConfig {
                name: "only".into(),
                endpoints: endpoints.clone(),
                lease_ttl_s: 5,
                interval: Duration::from_millis(100),
                default_policy: ferry_pool::Policy::Consolidate,
                scheduler: ferry_pool::SchedulerConfig::default(),
            };
            let run = ferry_pool_etcd::run_controller(config, exec);
            assert!(tokio::time::timeout(Duration::from_millis(1500), run)
                .await
                .is_err());
            store.read().await.unwrap().cells
        })
}

#[test]
fn a_failed_move_leaves_etcd_where_the_cell_really_serves() {
    if ferry_pool_etcd::local::etcd_binary().is_none() {
        eprintln!("SKIPPED (needs the etcd binary: scripts/deps installs etcd-server): a_failed_move_leaves_etcd_where_the_cell_really_serves");
        return;
    }
    // The move fails and the source still serves: etcd says the source, desired = actual.
    let etcd = LocalEtcd::start(Duration::from_secs(20)).unwrap();
    let mut exec = FailingExecutor {
        serving: [("a", "server1"), ("b", "server2")]
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .into(),
        lands: false,
        attempts: Vec::new(),
    };
    let cells = setup_and_run(&etcd, &mut exec);
    assert!(!exec.attempts.is_empty(), "consolidate tried a move");
    for (name, rec) in &cells {
        assert_eq!(rec.actual, rec.desired, "{name}: a move left open");
        assert_eq!(
            Some(&rec.actual),
            exec.serving.get(name),
            "{name}: etcd claims a move"
        );
    }
    // Each attempt is a begin (+1) and an abort (+1) on the cell's epoch.
    let bumps: u64 = cells.values().map(|r| r.epoch - 1).sum();
    assert_eq!(bumps, 2 * exec.attempts.len() as u64);
    drop(etcd);

    // The move "fails" but the destination did take over: etcd records the move.
    let etcd = LocalEtcd::start(Duration::from_secs(20)).unwrap();
    let mut exec = FailingExecutor {
        serving: [("a", "server1"), ("b", "server2")]
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .into(),
        lands: true,
        attempts: Vec::new(),
    };
    let cells = setup_and_run(&etcd, &mut exec);
    assert_eq!(
        exec.attempts.len(),
        1,
        "packed after one move: {:?}",
        exec.attempts
    );
    let (cell, _, _, to) = &exec.attempts[0];
    assert_eq!(&cells[cell].actual, to);
    for (name, rec) in &cells {
        assert_eq!(rec.actual, rec.desired);
        assert_eq!(Some(&rec.actual), exec.serving.get(name));
    }
}
