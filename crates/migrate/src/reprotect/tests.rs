//! The re-protection rules on a virtual clock: a scripted radio status and scripted job
//! results, no sockets.

use super::*;

const RATE: u64 = 1_000_000;

fn server(n: u8) -> Server {
    Server {
        name: format!("server{n}"),
        endpoint: format!("192.168.10.1{n}:49200"),
    }
}

fn ep(n: u8) -> Option<String> {
    Some(server(n).endpoint)
}

/// Drives a [`Reprotector`] on a virtual clock and records what it asked for.
struct Harness {
    r: Reprotector,
    now: Millis,
    sample: u64,
    started: Vec<(Millis, Job)>,
    reprotected: Vec<Reprotected>,
    logs: Vec<String>,
}

impl Harness {
    fn new(servers: &[u8]) -> Harness {
        let cfg = ReprotectConfig::new("pool", servers.iter().map(|&n| server(n)).collect());
        Harness {
            r: Reprotector::new(cfg),
            now: 0,
            sample: 0,
            started: Vec::new(),
            reprotected: Vec::new(),
            logs: Vec::new(),
        }
    }

    fn feed(&mut self, input: Input) {
        self.r.handle(self.now, input);
        while let Some(a) = self.r.poll_action() {
            match a {
                Action::Start(j) => self.started.push((self.now, j)),
                Action::Reprotected(r) => self.reprotected.push(r),
                Action::Log(_, t) => self.logs.push(t),
            }
        }
    }

    /// The radio's status now: `primary` serves with `epoch`, `standby` protects it since
    /// radio sample `since`.
    fn status(&mut self, primary: u8, epoch: u64, standby: Option<u8>, since: u64) {
        let v = RadioView {
            radio: "pool".into(),
            sample: self.sample,
            rate_hz: RATE,
            primary: ep(primary),
            epoch,
            standby: standby.and_then(ep),
            protection_since: since,
        };
        self.feed(Input::Status(v));
    }

    /// Let `ms` pass, ticking every 10 ms, with the same status repeated each tick.
    fn hold(&mut self, ms: Millis, primary: u8, epoch: u64, standby: Option<u8>, since: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            self.sample += 10 * RATE / 1000;
            self.status(primary, epoch, standby, since);
        }
    }

    fn done(&mut self, r: Result<(), &str>) {
        self.feed(Input::JobDone(r.map_err(str::to_string)));
    }

    fn jobs_since(&self, n: usize) -> Vec<Job> {
        self.started[n..].iter().map(|(_, j)| j.clone()).collect()
    }
}

fn stop(n: u8) -> Job {
    Job::StopModem {
        server: format!("server{n}"),
    }
}

fn protect(serving: u8, standby: u8) -> Job {
    Job::Protect {
        serving: format!("server{serving}"),
        standby: format!("server{standby}"),
        standby_endpoint: server(standby).endpoint,
    }
}

/// The radio clock as the harness advances it, for `protection_since`.
fn sample_at(h: &Harness) -> u64 {
    h.sample
}

#[test]
fn after_a_failover_the_old_primary_is_stopped_then_protects_and_the_gap_is_measured() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(100, 1, 1, Some(2), 0);
    assert!(h.started.is_empty(), "protected: nothing to do");
    // server1 dies; the radio fails over to server2 and is unprotected from that instant.
    let failover_at = sample_at(&h);
    h.hold(10, 2, 2, None, failover_at);
    assert_eq!(
        h.jobs_since(0),
        [stop(1)],
        "the deposed primary's modem goes first"
    );
    h.done(Ok(()));
    h.hold(100, 2, 2, None, failover_at);
    assert_eq!(
        h.jobs_since(1),
        [protect(2, 1)],
        "then it stands by for server2"
    );
    h.hold(300, 2, 2, None, failover_at);
    assert_eq!(
        h.started.len(),
        2,
        "one protect at a time, however long it runs"
    );
    h.done(Ok(()));
    let protected_at = sample_at(&h);
    h.hold(20, 2, 2, Some(1), protected_at);
    assert_eq!(h.reprotected.len(), 1);
    let r = &h.reprotected[0];
    assert_eq!(
        (r.serving.as_str(), r.standby.as_str()),
        ("server2", "server1")
    );
    let want = (protected_at - failover_at) as f64 / RATE as f64 * 1e3;
    assert!((r.unprotected_ms - want).abs() < 1e-9, "{r:?} vs {want}");
    assert!(h.logs.iter().any(|l| l.contains("unprotected for")));
    h.hold(1_000, 2, 2, Some(1), protected_at);
    assert_eq!(h.started.len(), 2, "protected again: nothing more");
}

#[test]
fn an_agent_that_stays_down_is_retried_with_backoff_and_never_replaced_by_the_serving_one() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(50, 1, 1, Some(2), 0);
    let t = sample_at(&h);
    let mut starts = Vec::new();
    // server1's agent never answers: every stop fails.
    for _ in 0..4 {
        let before = h.started.len();
        for _ in 0..400 {
            if h.started.len() > before {
                break;
            }
            h.hold(10, 2, 2, None, t);
        }
        assert_eq!(h.started.len(), before + 1);
        starts.push(h.now);
        h.done(Err("timeout"));
    }
    for (_, j) in &h.started {
        assert_eq!(
            *j,
            stop(1),
            "only server1 may stand by, and only once clean"
        );
    }
    let gaps: Vec<Millis> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // 200, 400, 800 ms (plus the tick it took to notice).
    for (g, want) in gaps.iter().zip([200, 400, 800]) {
        assert!(*g >= want && *g <= want + 20, "backoff {gaps:?}");
    }
    assert_eq!(h.r.counts().stops_failed, 4);
    assert_eq!(
        h.r.counts().protects,
        0,
        "never protected with a dirty or serving server"
    );
}

#[test]
fn a_clean_candidate_protects_first_and_a_stop_that_keeps_failing_is_set_aside() {
    let mut h = Harness::new(&[1, 2, 3]);
    h.hold(50, 1, 1, Some(2), 0);
    let t = sample_at(&h);
    // server3 runs nothing yet but is unknown at start: it is cleaned (the task is
    // protected, nothing is more urgent).
    assert_eq!(h.jobs_since(0), [stop(3)]);
    h.done(Ok(()));
    // server1 fails; server2 serves. The clean server3 protects first (after the settle),
    // before the deposed server1 is cleaned.
    h.hold(10, 2, 2, None, t);
    assert_eq!(h.started.len(), 1, "settling: {:?}", h.started);
    h.hold(50, 2, 2, None, t);
    assert_eq!(h.jobs_since(1), [protect(2, 3)]);
    h.done(Ok(()));
    let p = sample_at(&h);
    h.hold(10, 2, 2, Some(3), p);
    assert_eq!(h.reprotected.len(), 1);
    // Then server1's modem; its agent never answers: set aside after give_up_after
    // failures in a row.
    let mut n = 0;
    while n < 5 {
        h.hold(10, 2, 2, Some(3), p);
        if let Some(j) = h.r.job().cloned() {
            assert_eq!(j, stop(1));
            h.done(Err("agent unreachable"));
            n += 1;
        }
    }
    let tried = h.started.len();
    h.hold(20_000, 2, 2, Some(3), p);
    assert_eq!(
        h.started.len(),
        tried,
        "set aside: no more tries for a while"
    );
    assert!(h.logs.iter().any(|l| l.contains("given up")));
    h.hold(11_000, 2, 2, Some(3), p);
    assert_eq!(
        h.jobs_since(tried),
        [stop(1)],
        "tried again after set_aside_ms"
    );
}

#[test]
fn after_a_failed_protect_another_candidate_is_tried() {
    let mut h = Harness::new(&[1, 2, 3]);
    h.hold(50, 1, 1, Some(2), 0);
    h.done(Ok(())); // server3 cleaned
    let t = sample_at(&h);
    h.hold(60, 2, 2, None, t);
    assert_eq!(h.r.job(), Some(&protect(2, 3)));
    h.done(Err("start_d2d failed"));
    // server3 in backoff and dirty: server1 is cleaned, then protects.
    h.hold(10, 2, 2, None, t);
    assert_eq!(h.r.job(), Some(&stop(1)));
    h.done(Ok(()));
    h.hold(10, 2, 2, None, t);
    assert_eq!(h.r.job(), Some(&protect(2, 1)), "{:?}", h.started);
    assert_eq!(h.r.counts().protects_failed, 1);
}

#[test]
fn a_flapping_status_starts_nothing_until_it_holds() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(50, 1, 1, Some(2), 0);
    // The standby appears and disappears every poll (e.g. a radio being reconfigured).
    for i in 0..30 {
        let standby = if i % 2 == 0 { None } else { Some(2) };
        h.hold(10, 1, 1, standby, 0);
    }
    assert!(h.started.is_empty(), "{:?}", h.started);
    // It holds unprotected: one protect (server2 was the standby, so it is clean).
    h.hold(100, 1, 1, None, sample_at(&h));
    assert_eq!(h.jobs_since(0), [protect(1, 2)]);
}

#[test]
fn a_change_of_serving_server_during_a_protect_is_followed_after_it() {
    let mut h = Harness::new(&[1, 2, 3]);
    h.hold(50, 1, 1, None, 0);
    // server2 and server3 are cleaned, then server2 protects server1.
    while h
        .r
        .job()
        .is_some_and(|j| matches!(j, Job::StopModem { .. }))
    {
        h.done(Ok(()));
        h.hold(10, 1, 1, None, 0);
    }
    h.hold(50, 1, 1, None, 0);
    let n = h.started.len();
    assert_eq!(h.r.job(), Some(&protect(1, 2)));
    // While it runs, the task moves to server3 (an operator's migration, a fallback).
    h.hold(100, 3, 2, None, sample_at(&h));
    assert_eq!(h.started.len(), n, "never two sequences at once");
    h.done(Ok(()));
    // The radio does not name server2 (it protected a task no longer there): after
    // verify_ms it counts as failed, its modem is stopped and a protect for server3 follows.
    for _ in 0..250 {
        h.hold(10, 3, 2, None, 0);
        if h.r
            .job()
            .is_some_and(|j| matches!(j, Job::StopModem { .. }))
        {
            h.done(Ok(()));
        }
    }
    let after = h.jobs_since(n);
    assert!(
        after.contains(&stop(1)),
        "the deposed server1 is cleaned: {after:?}"
    );
    let Some(Job::Protect { standby, .. }) = after.last().cloned() else {
        panic!("no protect for server3: {after:?}");
    };
    h.done(Ok(()));
    let k: u8 = standby["server".len()..].parse().unwrap();
    h.hold(500, 3, 2, Some(k), 0);
    // Once protected, the orphaned hot standby on server2 is stopped.
    let after = h.jobs_since(n);
    assert_eq!(after.last(), Some(&stop(2)), "{after:?}");
    for j in &after {
        if let Job::Protect {
            serving, standby, ..
        } = j
        {
            assert_eq!(serving, "server3");
            assert_ne!(standby, "server3", "never the serving server");
        }
    }
    assert_eq!(h.r.counts().protects_failed, 1);
}

#[test]
fn strangers_garbled_and_old_statuses_are_ignored_and_counted() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(50, 1, 1, Some(2), 0);
    let mut v = RadioView {
        radio: "other".into(),
        sample: h.sample + 1,
        rate_hz: RATE,
        primary: ep(2),
        epoch: 9,
        standby: None,
        protection_since: 0,
    };
    h.feed(Input::Status(v.clone()));
    h.feed(Input::Garbled("reply does not verify".into()));
    // Our radio, but older than what was seen: a reordered reply.
    v.radio = "pool".into();
    v.sample = 5;
    h.feed(Input::Status(v));
    h.feed(Input::NoStatus("timeout".into()));
    for _ in 0..20 {
        h.now += 10;
        h.feed(Input::Tick);
    }
    let c = h.r.counts();
    assert_eq!((c.strangers, c.garbled, c.stale, c.no_status), (1, 1, 1, 1));
    assert_eq!(c.primary_changes, 0);
    assert!(h.started.is_empty(), "{:?}", h.started);
}

#[test]
fn a_stale_view_is_not_acted_on() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(50, 1, 1, Some(2), 0);
    h.now += 10;
    h.status(2, 2, None, 0);
    assert_eq!(h.jobs_since(0), [stop(1)]);
    // The radio stops answering while the stop runs: by its end the last view is old, and
    // nothing more starts on it.
    for _ in 0..150 {
        h.now += 10;
        h.feed(Input::NoStatus("timeout".into()));
    }
    h.done(Ok(()));
    for _ in 0..100 {
        h.now += 10;
        h.feed(Input::NoStatus("timeout".into()));
    }
    assert_eq!(h.started.len(), 1, "{:?}", h.started);
    // It answers again, still unprotected: the protect follows.
    h.hold(100, 2, 2, None, 0);
    assert_eq!(h.jobs_since(1), [protect(2, 1)]);
}

#[test]
fn a_protect_the_radio_never_shows_is_retried() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(50, 1, 1, None, 0);
    assert_eq!(h.jobs_since(0), [stop(2)]);
    h.done(Ok(()));
    h.hold(50, 1, 1, None, 0);
    assert_eq!(h.jobs_since(1), [protect(1, 2)]);
    h.done(Ok(()));
    h.hold(3_000, 1, 1, None, 0);
    // Failed verification: stop it, then protect again after the backoff.
    assert_eq!(h.jobs_since(2)[..1], [stop(2)]);
    h.done(Ok(()));
    h.hold(500, 1, 1, None, 0);
    assert_eq!(h.jobs_since(3), [protect(1, 2)]);
}

#[test]
fn never_two_jobs_and_never_the_serving_server_under_random_statuses() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut h = Harness::new(&[1, 2, 3]);
    let mut primary = 1u8;
    let mut epoch = 1;
    for _ in 0..5_000 {
        let before = h.started.len();
        match rng.random_range(0..10) {
            0 => {
                primary = rng.random_range(1..=3);
                epoch += 1;
            }
            1 if h.r.job().is_some() => {
                let ok = rng.random_bool(0.7);
                h.done(if ok { Ok(()) } else { Err("failed") });
            }
            _ => {}
        }
        let standby = rng.random_bool(0.5).then(|| rng.random_range(1..=3));
        let standby = standby.filter(|&s| s != primary);
        h.hold(10, primary, epoch, standby, 0);
        assert!(h.started.len() <= before + 1);
        if let Some(Job::Protect {
            serving, standby, ..
        }) = h.r.job()
        {
            assert_ne!(serving, standby);
        }
        for (_, j) in &h.started[before..] {
            if let Job::Protect {
                serving, standby, ..
            } = j
            {
                assert_eq!(*serving, format!("server{primary}"));
                assert_ne!(*standby, format!("server{primary}"));
            }
            if let Job::StopModem { server } = j {
                assert_ne!(
                    *server,
                    format!("server{primary}"),
                    "never the serving modem"
                );
            }
        }
    }
    assert!(h.r.counts().protects > 0);
}

fn health(h: &mut Harness, n: u8, reachable: bool) {
    h.feed(Input::Agent {
        server: format!("server{n}"),
        reachable,
    });
}

#[test]
fn an_unreachable_agent_is_not_tried_until_it_answers_then_at_once() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(50, 1, 1, Some(2), 0);
    health(&mut h, 1, true);
    health(&mut h, 2, true);
    // server1 is cut off (a partition, a dead server): the radio fails over.
    health(&mut h, 1, false);
    let t = sample_at(&h);
    h.hold(3_000, 2, 2, None, t);
    assert!(h.started.is_empty(), "{:?}", h.started);
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains("server1: agent does not answer")));
    // It answers again: its stale modem is stopped at once, then it protects.
    health(&mut h, 1, true);
    assert_eq!(h.jobs_since(0), [stop(1)]);
    h.done(Ok(()));
    h.hold(100, 2, 2, None, t);
    assert_eq!(h.jobs_since(1), [protect(2, 1)]);
}

#[test]
fn a_reachable_candidate_is_preferred_and_an_unreachable_one_skipped() {
    let mut h = Harness::new(&[1, 2, 3, 4, 5]);
    health(&mut h, 3, false);
    health(&mut h, 5, true);
    h.hold(50, 1, 1, Some(2), 0);
    // Protected: the unknown servers are cleaned, but not server3 (no answer).
    while let Some(Job::StopModem { server }) = h.r.job().cloned() {
        assert_ne!(server, "server3");
        h.done(Ok(()));
        h.hold(10, 1, 1, Some(2), 0);
    }
    assert_eq!(h.jobs_since(0), [stop(4), stop(5)]);
    let t = sample_at(&h);
    h.hold(60, 2, 2, None, t);
    assert_eq!(
        h.r.job(),
        Some(&protect(2, 5)),
        "server5 answered, server4 was not probed yet: {:?}",
        h.started
    );
}

#[test]
fn no_protect_while_the_serving_servers_agent_does_not_answer() {
    let mut h = Harness::new(&[1, 2]);
    h.hold(50, 1, 1, Some(2), 0);
    // The radio drops the standby (say, an operator's unprotect of a broken one) while
    // server1's management link is down: the task serves on, unprotected.
    health(&mut h, 1, false);
    h.hold(2_000, 1, 1, None, sample_at(&h));
    assert!(
        h.jobs_since(0)
            .iter()
            .all(|j| matches!(j, Job::StopModem { .. })),
        "{:?}",
        h.started
    );
    while h.r.job().is_some() {
        h.done(Ok(()));
        h.hold(10, 1, 1, None, 0);
    }
    assert_eq!(h.r.counts().protects, 0);
    health(&mut h, 1, true);
    h.hold(100, 1, 1, None, 0);
    assert_eq!(h.r.job(), Some(&protect(1, 2)));
}
