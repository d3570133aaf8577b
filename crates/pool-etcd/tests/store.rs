//! The pool's etcd transactions against a real single-node etcd on loopback: a cell's epoch
//! refuses a second move, a deposed leader's fenced writes are refused, the election hands
//! over when the leader's lease ends.

use std::time::Duration;

use ferry_pool::Power;
use ferry_pool_etcd::{layout, Fence, LocalEtcd, PoolStore};

fn etcd_or_skip(test: &str) -> Option<LocalEtcd> {
    if ferry_pool_etcd::local::etcd_binary().is_none() {
        eprintln!("SKIPPED (needs the etcd binary: scripts/deps installs etcd-server): {test}");
        return None;
    }
    Some(LocalEtcd::start(Duration::from_secs(20)).expect("etcd starts"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn two_controllers_cannot_move_the_same_cell_twice() {
    let Some(etcd) = etcd_or_skip("two_controllers_cannot_move_the_same_cell_twice") else {
        return;
    };
    rt().block_on(async {
        let endpoints = vec![etcd.client_url.clone()];
        let mut a = PoolStore::connect(&endpoints).await.unwrap();
        let mut b = PoolStore::connect(&endpoints).await.unwrap();
        assert!(a.create_cell("cell1", "server1", 0.3).await.unwrap());
        assert!(
            !b.create_cell("cell1", "server9", 0.3).await.unwrap(),
            "created twice"
        );
        // Both read epoch 1 and try to move it to different servers at once.
        let (ra, rb) = tokio::join!(
            a.begin_move("cell1", 1, "server1", "server2", None),
            b.begin_move("cell1", 1, "server1", "server3", None)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra ^ rb, "exactly one move wins: {ra} {rb}");
        let rec = a.cell("cell1").await.unwrap().unwrap();
        assert_eq!(rec.epoch, 2);
        assert_eq!(rec.actual, "server1");
        let winner = if ra { "server2" } else { "server3" };
        assert_eq!(rec.desired, winner);
        // A stale epoch is refused, also for finishing.
        assert!(!b
            .begin_move("cell1", 1, "server1", "server4", None)
            .await
            .unwrap());
        assert!(!b.finish_move("cell1", 1, None).await.unwrap());
        assert!(a.finish_move("cell1", 2, None).await.unwrap());
        let rec = a.cell("cell1").await.unwrap().unwrap();
        assert_eq!((rec.actual.as_str(), rec.epoch), (winner, 2));
        // Moving again needs the new epoch.
        assert!(a
            .begin_move("cell1", 2, winner, "server1", None)
            .await
            .unwrap());
    });
}

#[test]
fn a_deposed_leader_cannot_write_and_the_standby_takes_over() {
    let Some(etcd) = etcd_or_skip("a_deposed_leader_cannot_write_and_the_standby_takes_over")
    else {
        return;
    };
    rt().block_on(async {
        let endpoints = vec![etcd.client_url.clone()];
        let mut a = PoolStore::connect(&endpoints).await.unwrap();
        let mut b = PoolStore::connect(&endpoints).await.unwrap();
        a.create_cell("cell1", "server1", 0.3).await.unwrap();
        let lease_a = a.client.lease_grant(30, None).await.unwrap().id();
        let lease_b = b.client.lease_grant(30, None).await.unwrap().id();
        let lead_a = a
            .client
            .campaign(layout::ELECTION, "a", lease_a)
            .await
            .unwrap();
        let key_a = lead_a.leader().unwrap();
        let fence_a = Fence {
            key: key_a.key().to_vec(),
            rev: key_a.rev(),
        };
        // b campaigns and waits; a leads.
        let mut b2 = b.clone();
        let standby = tokio::spawn(async move {
            let r = b2
                .client
                .campaign(layout::ELECTION, "b", lease_b)
                .await
                .unwrap();
            let k = r.leader().unwrap();
            Fence {
                key: k.key().to_vec(),
                rev: k.rev(),
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!standby.is_finished(), "two leaders at once");
        assert!(a
            .set_power("server1", Power::On, Some(&fence_a))
            .await
            .unwrap());
        // a dies: its lease ends (revoked here; expiry in the process test).
        a.client.lease_revoke(lease_a).await.unwrap();
        let fence_b = tokio::time::timeout(Duration::from_secs(5), standby)
            .await
            .expect("b leads")
            .unwrap();
        let leader = b.client.leader(layout::ELECTION).await.unwrap();
        assert_eq!(leader.kv().unwrap().value(), b"b");
        // a's fenced writes are refused; b's go through.
        assert!(!a
            .begin_move("cell1", 1, "server1", "server2", Some(&fence_a))
            .await
            .unwrap());
        assert!(!a
            .set_power("server1", Power::Off, Some(&fence_a))
            .await
            .unwrap());
        assert!(b
            .begin_move("cell1", 1, "server1", "server2", Some(&fence_b))
            .await
            .unwrap());
    });
}

/// A leader died after `begin_move`: once after the executor finished the move (the new
/// leader only records it), once before (the new leader executes it). Exactly once each.
#[test]
fn interrupted_moves_are_finished_exactly_once() {
    let Some(etcd) = etcd_or_skip("interrupted_moves_are_finished_exactly_once") else {
        return;
    };
    let log =
        std::env::temp_dir().join(format!("ferry-pool-interrupted-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    rt().block_on(async {
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
        store.set_policy(ferry_pool::Policy::Static).await.unwrap();
        store.create_cell("done", "server1", 0.2).await.unwrap();
        store.create_cell("pending", "server1", 0.2).await.unwrap();
        assert!(store
            .begin_move("done", 1, "server1", "server2", None)
            .await
            .unwrap());
        assert!(store
            .begin_move("pending", 1, "server1", "server2", None)
            .await
            .unwrap());
        // The dead leader's executor had completed "done" only.
        let mut exec = ferry_pool_etcd::DryRunLog {
            path: log.clone(),
            move_ms: 0,
        };
        use ferry_pool_etcd::MoveExecutor;
        exec.execute("done", "server1", "server2", 2).unwrap();

        let config = ferry_pool_etcd::ControllerConfig {
            name: "successor".into(),
            endpoints: endpoints.clone(),
            lease_ttl_s: 5,
            interval: Duration::from_millis(100),
            default_policy: ferry_pool::Policy::Static,
            scheduler: ferry_pool::SchedulerConfig::default(),
        };
        let run = ferry_pool_etcd::run_controller(config, &mut exec);
        // The controller runs for ever; a second is many rounds.
        assert!(tokio::time::timeout(Duration::from_secs(2), run)
            .await
            .is_err());
        let moves = ferry_pool_etcd::DryRunLog::read(&log).unwrap();
        assert_eq!(
            moves,
            vec![
                ("done".into(), 2, "server1".into(), "server2".into()),
                ("pending".into(), 2, "server1".into(), "server2".into()),
            ]
        );
        for cell in ["done", "pending"] {
            let rec = store.cell(cell).await.unwrap().unwrap();
            assert_eq!(
                (rec.actual.as_str(), rec.desired.as_str(), rec.epoch),
                ("server2", "server2", 2)
            );
        }
        // The successor's snapshot is there for views.
        let snap = store.snapshot().await.unwrap().expect("snapshot written");
        assert_eq!(snap.servers_on, 2);
        assert_eq!(snap.cells.len(), 2);
    });
    let _ = std::fs::remove_file(&log);
}
