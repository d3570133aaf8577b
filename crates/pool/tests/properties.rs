//! Properties of the scheduler over random pools and loads: capacity with headroom, moves
//! only to warm servers, every cell placed exactly once on a powered server, no oscillation
//! under a flat load.

use ferry_pool::{
    CellDemand, Decision, Policy, Pool, Power, PowerAction, SchedulerConfig, ServerId, ServerSpec,
};
use proptest::prelude::*;

const INTERVAL_MS: u64 = 60_000;

#[derive(Clone, Debug)]
struct Case {
    cores: Vec<u32>,
    boot_ms: Vec<u64>,
    hosts: Vec<u32>,
    /// Relative demand per cell per interval (scaled to fit the pool).
    weights: Vec<Vec<f64>>,
    fill: f64,
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..10, 1usize..50, 0.05f64..0.6).prop_flat_map(|(servers, cells, fill)| {
        (
            prop::collection::vec(prop::sample::select(vec![4u32, 8, 16]), servers),
            prop::collection::vec(0u64..=INTERVAL_MS, servers),
            prop::collection::vec(0u32..servers as u32, cells),
            prop::collection::vec(prop::collection::vec(0.01f64..1.0, cells), 12),
            Just(fill),
        )
            .prop_map(|(cores, boot_ms, hosts, weights, fill)| Case {
                cores,
                boot_ms,
                hosts,
                weights,
                fill,
            })
    })
}

fn pool_of(case: &Case) -> Pool {
    let servers = case
        .cores
        .iter()
        .zip(&case.boot_ms)
        .enumerate()
        .map(|(i, (c, b))| ServerSpec {
            name: format!("server{i}"),
            cores: *c,
            boot_ms: *b,
            idle_w: 100.0,
            busy_w: 250.0,
        })
        .collect();
    let cells = case
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("cell{i}"), ServerId(*h)))
        .collect();
    Pool::new(servers, Power::On, cells, SchedulerConfig::default()).unwrap()
}

/// Demand of interval `k`: the weights scaled so the pool's total is `fill` of its usable
/// cores, each cell at most a quarter of the smallest server's usable cores (so a feasible
/// packing always exists).
fn demand(pool: &Pool, case: &Case, k: usize) -> Vec<CellDemand> {
    let usable: f64 = (0..pool.servers.len())
        .map(|s| pool.usable(ServerId(s as u32)))
        .sum();
    let smallest = (0..pool.servers.len())
        .map(|s| pool.usable(ServerId(s as u32)))
        .fold(f64::MAX, f64::min);
    let w = &case.weights[k % case.weights.len()];
    let sum: f64 = w.iter().sum();
    w.iter()
        .map(|x| CellDemand::flat((x / sum * case.fill * usable).min(smallest / 4.0)))
        .collect()
}

fn planned_loads(pool: &Pool, demand: &[CellDemand]) -> Vec<f64> {
    pool.server_loads(|i| demand[i].now.max(demand[i].ahead))
}

/// Checks one decision against the pool it was made for, applies it and checks the result.
fn step(pool: &mut Pool, now: u64, d: &[CellDemand], policy: Policy) -> Decision {
    pool.advance(now);
    let before = pool.clone();
    let decision = pool.decide(now, d, policy).unwrap();
    for m in &decision.moves {
        assert_eq!(
            before.servers[m.to.0 as usize].power,
            Power::On,
            "{policy:?} moved {:?} to a server that is not on and warm",
            m.cell
        );
        assert_ne!(m.from, m.to);
    }
    if policy == Policy::Static {
        assert!(decision.moves.is_empty(), "static never moves");
    }
    let moved_cells: std::collections::HashSet<_> = decision.moves.iter().map(|m| m.cell).collect();
    assert_eq!(
        moved_cells.len(),
        decision.moves.len(),
        "a cell moved twice"
    );
    pool.apply(&decision).unwrap();
    // Every cell exactly once, on a powered server.
    for c in &pool.cells {
        assert!(c.moving_to.is_none());
        assert!(
            pool.servers[c.host.0 as usize].power.is_powered(),
            "{} left on a server that is off",
            c.name
        );
    }
    // Destinations stay within usable cores (headroom kept).
    let load = planned_loads(pool, d);
    for m in &decision.moves {
        let s = m.to.0 as usize;
        assert!(
            load[s] <= pool.usable(m.to) + 1e-9,
            "{policy:?}: {} over usable {} after moves",
            load[s],
            pool.usable(m.to)
        );
    }
    for a in &decision.power {
        if let PowerAction::PowerOff { server } = a {
            assert!(pool.cells.iter().all(|c| c.host != *server));
        }
    }
    decision
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn varying_load_keeps_capacity_warm_destinations_and_placement(case in case()) {
        for policy in Policy::ALL {
            let mut pool = pool_of(&case);
            for k in 0..12 {
                let d = demand(&pool, &case, k);
                step(&mut pool, k as u64 * INTERVAL_MS, &d, policy);
            }
            prop_assert_eq!(pool.cells.len(), case.hosts.len());
        }
    }

    #[test]
    fn flat_load_settles_and_then_never_moves(case in case()) {
        for policy in [Policy::Spread, Policy::Consolidate] {
            let mut pool = pool_of(&case);
            let d = demand(&pool, &case, 0);
            let mut settled_at = None;
            for k in 0..20 {
                let decision = step(&mut pool, k as u64 * INTERVAL_MS, &d, policy);
                match settled_at {
                    None if decision.is_empty() => settled_at = Some(k),
                    Some(at) => prop_assert!(
                        decision.is_empty(),
                        "{:?} settled at interval {} but acted at {}: {:?}",
                        policy, at, k, decision
                    ),
                    None => {}
                }
            }
            let at = settled_at.expect("settles");
            prop_assert!(at <= 6, "{:?} took {} intervals to settle", policy, at);
            // A settled pool under a feasible flat load is within usable cores everywhere.
            let load = planned_loads(&pool, &d);
            for (s, l) in load.iter().enumerate() {
                prop_assert!(*l <= pool.usable(ServerId(s as u32)) + 1e-9);
            }
        }
    }
}
