//! The thesis' relay scenario (ch. 4, fig. 4-5) in the deterministic harness: server3 (node 8)
//! and server4 (node 10) cannot hear each other; the relay server1 (node 9, base station)
//! hears both. Discovery must find the two-hop routes, traffic must flow through the relay,
//! and a relay restarted with a migrated `route_list` must forward at once.

use ferry_mac::route::DiscoveryConfig;
use ferry_mac::sim::Sim;
use ferry_mac::{Delivery, Mac, MacConfig, NodeId, Role, Schedule, Window};

const RELAY: usize = 0; // server1, node 9
const S3: usize = 1; // server3, node 8
const S4: usize = 2; // server4, node 10

fn n(x: u8) -> NodeId {
    NodeId(x)
}

fn relay_cfg(discovery: DiscoveryConfig) -> MacConfig {
    let mut c = MacConfig::new(
        n(9),
        Role::BaseStation,
        Schedule::tdd(1).unwrap_or_else(|e| panic!("{e}")),
    );
    c.slaves = vec![n(8), n(10)];
    c.discovery = discovery;
    c
}

fn slave(node: u8, discovery: DiscoveryConfig) -> Mac {
    let mut c = MacConfig::new(
        n(node),
        Role::Slave,
        Schedule::tdd(1).unwrap_or_else(|e| panic!("{e}")),
    );
    c.discovery = discovery;
    Mac::new(c).unwrap_or_else(|e| panic!("{e}"))
}

/// A warm replica: receives, but its TX and RX windows are closed (a make-before-break
/// destination before T, a hot standby).
fn warm_replica(mut m: Mac) -> Mac {
    let never = Window {
        from: Some(u64::MAX),
        until: None,
    };
    m.set_tx_window(never);
    m.set_rx_window(never);
    m
}

fn scenario(discovery: DiscoveryConfig) -> Sim {
    let relay = Mac::new(relay_cfg(discovery)).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = Sim::new(
        vec![relay, slave(8, discovery), slave(10, discovery)],
        300,
        0,
    );
    sim.set_link(S3, S4, false); // the obstacle between server3 and server4
    sim
}

fn expected() -> [Vec<(NodeId, NodeId)>; 3] {
    [
        vec![(n(8), n(8)), (n(10), n(10))],
        vec![(n(9), n(9)), (n(10), n(9))],
        vec![(n(8), n(9)), (n(9), n(9))],
    ]
}

fn converged(sim: &Sim) -> bool {
    sim.nodes
        .iter()
        .zip(expected())
        .all(|(m, want)| m.routes() == want)
}

/// Virtual milliseconds until every table matches the topology.
fn convergence_ms(discovery: DiscoveryConfig, loss_percent: u64, seed: u64) -> u64 {
    let mut sim = scenario(discovery);
    if loss_percent > 0 {
        // Deterministic pseudo-random TB loss (xorshift), no dependency on a clock.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        sim.set_loss(Box::new(move |_, _, _| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 100 < loss_percent
        }));
    }
    let t = sim.run_until(60_000, converged).unwrap_or_else(|| {
        panic!(
            "no convergence in 60 s: {:?}",
            sim.nodes.iter().map(|m| m.routes()).collect::<Vec<_>>()
        )
    });
    if loss_percent == 0 {
        // Converged means stable: nothing changes over the next 10 beacon periods. (With
        // heavy loss, four beacons in a row can be lost and a route times out and returns.)
        sim.run(10 * discovery.period);
        assert!(converged(&sim), "tables changed after convergence");
    }
    t
}

#[test]
fn server3_learns_server4_via_the_relay() {
    let cfg = DiscoveryConfig::default();
    let t_triggered = convergence_ms(cfg, 0, 0);
    let periodic = DiscoveryConfig {
        triggered_min_gap: None,
        ..cfg
    };
    let t_periodic = convergence_ms(periodic, 0, 0);
    // Lossy air: 20 seeds each at 20 % and 50 % TB loss (every reception independently).
    let spread = |loss| {
        let mut v: Vec<u64> = (0..20)
            .map(|seed| convergence_ms(cfg, loss, seed))
            .collect();
        v.sort_unstable();
        (v[0], v[10], v[19])
    };
    let lossy20 = spread(20);
    let lossy50 = spread(50);
    eprintln!(
        "relay scenario convergence at 1 s beacons: triggered updates {t_triggered} ms, \
         periodic only {t_periodic} ms; (min, median, max) over 20 seeds with 20% TB loss \
         {lossy20:?} ms, with 50% loss {lossy50:?} ms"
    );
    assert!(lossy20.2 <= 5_000, "{lossy20:?}");
    assert!(lossy50.2 <= 20_000, "{lossy50:?}");
    assert!(lossy50.1 >= lossy20.1, "more loss, slower convergence");
    // Two hops: at most two beacon periods plus grant waits without triggered updates.
    assert!(t_periodic <= 2 * cfg.period + 100, "{t_periodic}");
    assert!(t_triggered <= t_periodic);
}

#[test]
fn ping_flows_through_the_relay_and_back() {
    let mut sim = scenario(DiscoveryConfig::default());
    assert!(sim.run_until(10_000, converged).is_some());
    let start = sim.now();
    let mut echo_requests = 0;
    let mut echo_replies = 0;
    for k in 0..3000u64 {
        if k % 10 == 0 && k < 2000 {
            let ping = [0x45, 8, (k >> 8) as u8, k as u8];
            assert!(sim.nodes[S3].enqueue(&ping, n(10)).is_ok());
        }
        for (rx, d) in sim.step() {
            if let Delivery::Local { src, packet } = d {
                if rx == S4 && src == n(8) {
                    echo_requests += 1;
                    let mut reply = packet.clone();
                    reply[1] = 0;
                    assert!(sim.nodes[S4].enqueue(&reply, n(8)).is_ok());
                } else if rx == S3 && src == n(10) {
                    assert_eq!(packet[1], 0);
                    echo_replies += 1;
                }
            }
        }
    }
    assert_eq!((echo_requests, echo_replies), (200, 200));
    let relay = sim.nodes[RELAY].counters();
    assert_eq!(relay.forwarded, 400);
    assert_eq!(
        relay.no_route_drops + relay.ttl_drops + relay.queue_full_drops,
        0
    );
    // Every forward happened at the relay, towards one of the two terminals.
    assert!(sim
        .log
        .iter()
        .filter(|(t, _, _)| *t >= start)
        .all(|(_, rx, d)| match d {
            Delivery::Forwarded { next_hop, .. } =>
                *rx == RELAY && (*next_hop == n(8) || *next_hop == n(10)),
            _ => true,
        }));
    assert_eq!(sim.stats().collisions, 0);
}

/// A warm replica of server4 (same node, RX and TX windows closed, as a hot standby) hears
/// what the relay sends server4: it delivers nothing, and keeps exactly what server4
/// delivered, in order, for the caller to take (a failover replays from these).
#[test]
fn a_warm_replica_keeps_copies_of_what_the_primary_delivers() {
    let cfg = DiscoveryConfig::default();
    let relay = Mac::new(relay_cfg(cfg)).unwrap_or_else(|e| panic!("{e}"));
    let replica = warm_replica(slave(10, cfg));
    let mut sim = Sim::new(vec![relay, slave(8, cfg), slave(10, cfg), replica], 300, 0);
    sim.set_link(S3, S4, false);
    sim.set_link(S3, 3, false);
    // The first three nodes (the replica is the fourth; `expected` has three rows).
    assert!(sim.run_until(10_000, converged).is_some());
    let routes = sim.nodes[S4].routes();
    let now = sim.now();
    assert!(sim.nodes[3].set_routes(now, &routes).is_ok());
    let (mut delivered, mut copies) = (Vec::new(), Vec::new());
    for k in 0..2000u64 {
        if k % 10 == 0 && k < 1500 {
            let ping = [0x45, 8, (k >> 8) as u8, k as u8];
            assert!(sim.nodes[S3].enqueue(&ping, n(10)).is_ok());
        }
        for (rx, d) in sim.step() {
            if let Delivery::Local { packet, .. } = d {
                assert_ne!(rx, 3, "the replica delivered");
                if rx == S4 {
                    delivered.push(packet);
                }
            }
        }
        copies.extend(sim.nodes[3].take_suppressed());
    }
    assert_eq!(delivered.len(), 150);
    assert_eq!(copies, delivered);
}

/// The relay task is restarted (as on a migration target) while server3 sends a packet to
/// server4 every 10 ms. Returns (ms from restart to the first packet delivered at server4,
/// packets lost at the relay for lack of a route).
fn restart_relay(with_routes: bool) -> (u64, u64) {
    let cfg = DiscoveryConfig::default();
    let mut sim = scenario(cfg);
    assert!(sim.run_until(10_000, converged).is_some());
    sim.run(cfg.period / 2);
    let route_list = sim.nodes[RELAY].routes();
    let t0 = sim.now();
    let mut fresh = Mac::new(relay_cfg(cfg)).unwrap_or_else(|e| panic!("{e}"));
    if with_routes {
        assert!(fresh.set_routes(t0, &route_list).is_ok());
    }
    sim.replace(RELAY, fresh);
    let mut first = None;
    for k in 0..5000u64 {
        if k % 10 == 0 {
            let _ = sim.nodes[S3].enqueue(&[0x45, 1, 2, 3], n(10));
        }
        for (rx, d) in sim.step() {
            if rx == S4 && matches!(d, Delivery::Local { .. }) && first.is_none() {
                first = Some(sim.now() - t0);
            }
        }
    }
    assert_eq!(sim.nodes[RELAY].routes(), expected()[0]);
    (
        first.unwrap_or(u64::MAX),
        sim.nodes[RELAY].counters().no_route_drops,
    )
}

#[test]
fn migrated_route_list_is_used_without_rediscovery() {
    let (warm_ms, warm_drops) = restart_relay(true);
    let (cold_ms, cold_drops) = restart_relay(false);
    eprintln!(
        "relay restart: with migrated routes first packet after {warm_ms} ms, {warm_drops} no-route drops; \
         cold (rediscovery) after {cold_ms} ms, {cold_drops} no-route drops"
    );
    assert_eq!(warm_drops, 0);
    assert!(warm_ms < 20, "warm relay forwards at once: {warm_ms} ms");
    assert!(
        cold_drops > 0,
        "a cold relay drops until beacons rebuild its table"
    );
    assert!(cold_ms > warm_ms);
}

#[test]
fn unblocking_the_direct_path_shortens_the_route_and_blocking_restores_the_relay() {
    let cfg = DiscoveryConfig::default();
    let mut sim = scenario(cfg);
    assert!(sim.run_until(10_000, converged).is_some());
    sim.set_link(S3, S4, true);
    let direct = sim.run_until(10_000, |s| {
        s.nodes[S3].route_table().next_hop(n(10)) == Some(n(10))
    });
    assert!(
        direct.is_some(),
        "server3 hears server4 directly once the obstacle is gone"
    );
    sim.set_link(S3, S4, false);
    // The direct route expires after route_timeout; the relay path comes back.
    let back = sim.run_until(20_000, converged);
    let t = back.unwrap_or_else(|| panic!("{:?}", sim.nodes[S3].routes()));
    let since_block = t - direct.unwrap_or(0);
    assert!(
        since_block <= cfg.route_timeout + 2 * cfg.period,
        "{since_block}"
    );
}

const S2: usize = 3; // server2: the migration target for the relay task (also node 9)

/// Result of moving the relay task from server1 to server2 at subframe T under traffic.
#[derive(Debug)]
struct Cutover {
    sent_to_s4: usize,
    got_at_s4: Vec<u16>,
    sent_to_s3: usize,
    got_at_s3: Vec<u16>,
    lost_counted: u64,
    resyncs: u64,
}

/// server3 sends 1200-byte packets to server4 every 10 ms (1000-byte TBs, so each spans two),
/// server4 sends 100-byte packets back every 3 ms; the relay moves at T. `make_before_break`: server2 shadows from the start and
/// takes server1's transmit state at T; otherwise server2 is deaf until T and starts with
/// the migrated routes only, and server1's queue dies with it (a hard switch at the same
/// instant, without the thesis' 1.8 s outage).
fn cutover(make_before_break: bool, t_offset: u64, lead: u64, latency: u64) -> Cutover {
    let cfg = DiscoveryConfig::default();
    let relay = Mac::new(relay_cfg(cfg)).unwrap_or_else(|e| panic!("{e}"));
    let target = warm_replica(Mac::new(relay_cfg(cfg)).unwrap_or_else(|e| panic!("{e}")));
    let mut sim = Sim::new(vec![relay, slave(8, cfg), slave(10, cfg), target], 300, 0);
    sim.set_timing(lead, latency);
    sim.set_link(S3, S4, false);
    sim.set_link(RELAY, S2, false); // two pool servers behind one radio never hear each other
    if !make_before_break {
        sim.set_link(S2, S3, false);
        sim.set_link(S2, S4, false);
    }
    // The first three nodes (the replica is the fourth; `expected` has three rows).
    assert!(sim.run_until(10_000, converged).is_some());
    sim.set_tb_capacity(1000);
    let t = sim.now() + t_offset;
    // Before the first grants are heard, slaves may collide once (start-up, not cutover).
    let startup_collisions = sim.stats().collisions;
    let routes = sim.nodes[RELAY].routes();
    let now = sim.now();
    assert!(sim.nodes[S2].set_routes(now, &routes).is_ok());
    sim.nodes[RELAY].set_tx_window(Window {
        from: None,
        until: Some(t),
    });
    sim.nodes[RELAY].set_rx_window(Window {
        from: None,
        until: Some(t),
    });
    sim.nodes[S2].set_tx_window(Window {
        from: Some(t),
        until: None,
    });
    sim.nodes[S2].set_rx_window(Window {
        from: Some(t),
        until: None,
    });
    let (mut to_s4, mut to_s3) = (0u16, 0u16);
    let (mut got_s4, mut got_s3) = (Vec::new(), Vec::new());
    let stop = t + 700;
    while sim.now() < stop + 1000 {
        let now = sim.now();
        // The source prepared its last TB (T - 1) in the previous step; the target prepares
        // its first (T) in this one.
        if now + lead == t {
            if make_before_break {
                let h = sim.nodes[RELAY].take_tx_handover();
                assert!(sim.nodes[S2].apply_tx_handover(h).is_ok());
            } else {
                sim.set_link(S2, S3, true);
                sim.set_link(S2, S4, true);
            }
        }
        if now > t && make_before_break {
            // X2-style forwarding of anything the source still queued after the cutover.
            for p in sim.nodes[RELAY].drain_queue() {
                assert!(sim.nodes[S2].requeue(&p).is_ok());
            }
        }
        if now < stop && now % 10 == 0 {
            let mut p = vec![0x45u8; 1200];
            p[..2].copy_from_slice(&to_s4.to_be_bytes());
            assert!(sim.nodes[S3].enqueue(&p, n(10)).is_ok());
            to_s4 += 1;
        }
        if now < stop && now % 3 == 0 {
            let mut p = vec![0x45u8; 100];
            p[..2].copy_from_slice(&to_s3.to_be_bytes());
            assert!(sim.nodes[S4].enqueue(&p, n(8)).is_ok());
            to_s3 += 1;
        }
        for (rx, d) in sim.step() {
            if let Delivery::Local { packet, .. } = d {
                let id = u16::from_be_bytes([packet[0], packet[1]]);
                match rx {
                    S4 => got_s4.push(id),
                    S3 => got_s3.push(id),
                    _ => {}
                }
            }
        }
    }
    if make_before_break {
        assert!(
            sim.nodes[S2].take_suppressed().is_empty(),
            "a relay's replica keeps no copies of what it would relay"
        );
        let (src, dst) = (sim.nodes[RELAY].counters(), sim.nodes[S2].counters());
        assert!(
            dst.shadow_suppressed > 0,
            "the target shadowed traffic before T"
        );
        assert!(
            src.forwarded > 0 && dst.forwarded > 0,
            "both relayed: before and after T"
        );
        assert_eq!(
            sim.stats().collisions,
            startup_collisions,
            "none around the cutover"
        );
    }
    let (c3, c4) = (sim.nodes[S3].counters(), sim.nodes[S4].counters());
    Cutover {
        sent_to_s4: usize::from(to_s4),
        got_at_s4: got_s4,
        sent_to_s3: usize::from(to_s3),
        got_at_s3: got_s3,
        lost_counted: c3.reassembly.lost + c4.reassembly.lost + c3.rx_tb_lost + c4.rx_tb_lost,
        resyncs: c3.rx_seq_resyncs
            + c4.rx_seq_resyncs
            + c3.reassembly.resyncs
            + c4.reassembly.resyncs,
    }
}

#[test]
fn make_before_break_relay_cutover_loses_and_duplicates_nothing() {
    let in_order = |got: &[u16], sent: usize| got.iter().copied().eq(0..sent as u16);
    let (mut total, mut hard_total, mut hard_missing, mut hard_counted) = (0, 0, 0, 0);
    // Ten cutover instants, so T falls at every phase of the traffic and the frame.
    for t_offset in 700..710 {
        let c = cutover(true, t_offset, 0, 0);
        assert!(
            in_order(&c.got_at_s4, c.sent_to_s4),
            "T+{t_offset}: s4 got {} of {}",
            c.got_at_s4.len(),
            c.sent_to_s4
        );
        assert!(
            in_order(&c.got_at_s3, c.sent_to_s3),
            "T+{t_offset}: s3 got {} of {}",
            c.got_at_s3.len(),
            c.sent_to_s3
        );
        assert_eq!(
            (c.lost_counted, c.resyncs),
            (0, 0),
            "receivers saw one continuous relay"
        );
        total += c.sent_to_s4 + c.sent_to_s3;

        let h = cutover(false, t_offset, 0, 0);
        hard_total += h.sent_to_s4 + h.sent_to_s3;
        hard_missing += h.sent_to_s4 - h.got_at_s4.len() + h.sent_to_s3 - h.got_at_s3.len();
        hard_counted += h.lost_counted;
    }
    eprintln!(
        "relay cutover under traffic, 10 cutover instants: make-before-break lost 0 of {total} packets; \
         hard switch at the same instants (migrated routes, no shadow, no handover) lost \
         {hard_missing} of {hard_total} ({hard_counted} counted lost by the receivers)"
    );
    assert!(
        hard_missing > 0,
        "the hard switch must lose what was in flight"
    );
}

#[test]
fn make_before_break_cutover_with_a_real_time_pipeline() {
    // Modem pipeline: TBs prepared 2 subframes ahead, decoded 1 subframe late. The source
    // decodes the last subframes before T after it handed over: those relayed packets reach
    // the target through drain_queue/requeue (X2) and still nothing is lost or duplicated.
    for t_offset in 700..705 {
        let c = cutover(true, t_offset, 2, 1);
        assert!(
            c.got_at_s4.iter().copied().eq(0..c.sent_to_s4 as u16),
            "T+{t_offset}: s4 {} of {}",
            c.got_at_s4.len(),
            c.sent_to_s4
        );
        assert!(
            c.got_at_s3.iter().copied().eq(0..c.sent_to_s3 as u16),
            "T+{t_offset}: s3 {} of {}",
            c.got_at_s3.len(),
            c.sent_to_s3
        );
        assert_eq!((c.lost_counted, c.resyncs), (0, 0));
    }
}
