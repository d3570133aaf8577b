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
