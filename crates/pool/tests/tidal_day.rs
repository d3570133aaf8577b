//! A small pool over one tidal day: consolidate follows the tide (fewer servers at night,
//! woken ahead of the morning ramp, no overload), static keeps everything on, spread keeps
//! everything on and balanced.

use ferry_pool::{
    AreaKind, Bandwidth, CellTraffic, DayLedger, Modulation, Policy, Pool, Power, SchedulerConfig,
    ServerId, ServerSpec,
};

const INTERVAL_MS: u64 = 300_000;
const BOOT_MS: u64 = 180_000;

fn traffic(i: usize) -> CellTraffic {
    CellTraffic {
        bandwidth: [Bandwidth::Mhz5, Bandwidth::Mhz10][i % 2],
        modulation: [Modulation::Qpsk, Modulation::Qam16, Modulation::Qam64][i % 3],
        peak_prb_use: 0.9,
        area: [AreaKind::Office, AreaKind::Residential][(i / 2) % 2],
    }
}

fn run(policy: Policy) -> (DayLedger, Vec<usize>) {
    let servers = (0..12)
        .map(|i| ServerSpec {
            name: format!("server{i}"),
            cores: 4,
            boot_ms: BOOT_MS,
            idle_w: 120.0,
            busy_w: 300.0,
        })
        .collect();
    let cells: Vec<CellTraffic> = (0..60).map(traffic).collect();
    let placement = (0..cells.len())
        .map(|i| (format!("cell{i}"), ServerId((i % 12) as u32)))
        .collect();
    let mut pool = Pool::new(servers, Power::On, placement, SchedulerConfig::default()).unwrap();
    let mut ledger = DayLedger::default();
    let mut on_per_hour = Vec::new();
    // Look-ahead: boot time plus one interval (the decision after next must find it warm).
    let lookahead_s = (BOOT_MS + INTERVAL_MS) as f64 / 1000.0;
    for k in 0..288u64 {
        let now = k * INTERVAL_MS;
        let t = now as f64 / 1000.0;
        pool.advance(now);
        let demand: Vec<_> = cells.iter().map(|c| c.demand(t, lookahead_s)).collect();
        let decision = pool.decide(now, &demand, policy).unwrap();
        pool.apply(&decision).unwrap();
        let real: Vec<f64> = demand.iter().map(|d| d.now).collect();
        ledger.record(&pool, &decision, &real, 12, INTERVAL_MS);
        if k % 12 == 0 {
            on_per_hour.push(pool.servers.iter().filter(|s| s.power.is_powered()).count());
        }
    }
    (ledger, on_per_hour)
}

#[test]
fn consolidate_follows_the_tide_without_overload() {
    let (stat, _) = run(Policy::Static);
    assert_eq!(stat.moves, 0);
    assert!(stat.saved_pct().abs() < 1e-9);
    let (spread, _) = run(Policy::Spread);
    assert!(spread.saved_pct().abs() < 1e-9);
    assert_eq!(spread.overloads, 0);

    let (cons, on) = run(Policy::Consolidate);
    eprintln!(
        "consolidate: saved {:.1} %, moves {}, peak {}, on per hour {:?}",
        cons.saved_pct(),
        cons.moves,
        cons.peak_moves_per_interval,
        on
    );
    assert_eq!(cons.overloads, 0, "late subframes");
    assert_eq!(cons.over_headroom, 0, "woken too late for the ramp");
    assert!(cons.saved_pct() > 30.0);
    assert!(cons.energy_wh < stat.energy_wh);
    // The tide: fewer servers at 04:00 than at 11:00.
    assert!(on[4] < on[11], "{on:?}");
}

#[test]
fn operator_drain_empties_the_server_under_every_policy_and_keeps_it_off() {
    for policy in Policy::ALL {
        let servers = (0..4)
            .map(|i| ServerSpec {
                name: format!("server{i}"),
                cores: 4,
                boot_ms: 0,
                idle_w: 100.0,
                busy_w: 200.0,
            })
            .collect();
        let cells = (0..8)
            .map(|i| (format!("cell{i}"), ServerId(i % 4)))
            .collect();
        let mut pool = Pool::new(servers, Power::On, cells, SchedulerConfig::default()).unwrap();
        let demand = vec![ferry_pool::CellDemand::flat(0.5); 8];
        pool.request_drain(ServerId(2));
        let mut moved_off = 0;
        for k in 0..5u64 {
            pool.advance(k * INTERVAL_MS);
            let d = pool.decide(k * INTERVAL_MS, &demand, policy).unwrap();
            moved_off += d.moves.iter().filter(|m| m.from == ServerId(2)).count();
            assert!(d.moves.iter().all(|m| m.to != ServerId(2)));
            pool.apply(&d).unwrap();
        }
        assert_eq!(moved_off, 2, "{policy:?}");
        assert_eq!(pool.servers[2].power, Power::Off, "{policy:?}");
        assert!(pool.cells.iter().all(|c| c.host != ServerId(2)));
    }
}
