use super::*;
use proptest::prelude::*;

fn key() -> AuthKey {
    AuthKey::from_file_contents(b"00112233445566778899aabbccddeeff\n").expect("key")
}

const START: u64 = 1_700_000_000_000;

fn req(ts: u64, n: u8, to: &str, body: &[u8]) -> Vec<Vec<u8>> {
    seal_request(&key(), ts, [n; 16], "ctl", to, body)
}

#[test]
fn seal_open_round_trip_and_tamper() {
    let frames = req(1_000, 7, "server2", br#"{"cmd":"status"}"#);
    let o = open_request(&key(), &frames, "server2").expect("verifies");
    assert_eq!(o.body, br#"{"cmd":"status"}"#);
    assert_eq!(o.header.nonce, "07".repeat(16));
    assert_eq!(o.header.from, "ctl");
    let mut bad = frames.clone();
    bad[2] = br#"{"cmd":"double_kill"}"#.to_vec();
    assert_eq!(open(&key(), &bad), Err(AuthError::BadMac));
    let other = AuthKey::new(b"another key, 16+ bytes").expect("key");
    assert_eq!(open(&other, &frames), Err(AuthError::BadMac));
    assert!(matches!(
        open(&key(), &frames[..3]),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn request_for_another_recipient_is_refused() {
    // A genuine request to server1, replayed verbatim to server2.
    let frames = req(START, 1, "server1", br#"{"cmd":"kill_d2d"}"#);
    assert!(open_request(&key(), &frames, "server1").is_ok());
    assert_eq!(
        open_request(&key(), &frames, "server2"),
        Err(AuthError::NotForUs {
            to: "server1".into(),
            me: "server2".into()
        })
    );
}

#[test]
fn reply_fed_back_as_request_is_refused() {
    let rep = seal_reply(
        &key(),
        START,
        [2; 16],
        "server2",
        "ctl",
        &"01".repeat(16),
        b"{}",
    );
    assert_eq!(
        open_request(&key(), &rep, "ctl"),
        Err(AuthError::WrongDirection {
            got: Dir::Reply,
            expected: Dir::Request
        })
    );
    // And a request is never taken as a reply.
    let r = req(START, 3, "ctl", b"{}");
    assert!(matches!(
        open_reply(&key(), &r, "ctl", "ctl", &"03".repeat(16)),
        Err(AuthError::WrongDirection { .. })
    ));
}

#[test]
fn known_mac_vector() {
    let frames = req(START, 0, "server2", br#"{"cmd":"get_tun_ip"}"#);
    assert_eq!(
        frames[1],
        br#"{"ts":1700000000000,"nonce":"00000000000000000000000000000000","dir":"req","to":"server2","from":"ctl"}"#
    );
    // Computed independently with Python's hmac/hashlib (see docs/AGENT-PROTOCOL.md).
    assert_eq!(
        String::from_utf8_lossy(&frames[3]),
        "e4ac963c58bca4117914428a2c4f6fd114551ebe764588cbcc7839b0cf105d05"
    );
}

#[test]
fn accepts_frames_made_by_python() {
    // json.dumps with its default spacing: the MAC covers the header bytes as sent.
    let frames: [&[u8]; 4] = [
        b"ferry/2",
        br#"{"ts": 1700000000123, "nonce": "abababababababababababababababab", "dir": "req", "to": "server2", "from": "ctl"}"#,
        br#"{"cmd": "set_tun_ip", "tun_ip": "192.168.40.9"}"#,
        b"5aa4936c40204b14ee6ad3ec6f500c6d68c38d79b0b197b68bccf88b95ca985c",
    ];
    let o = open_request(&key(), &frames, "server2").expect("python frames verify");
    assert_eq!(o.header.ts, 1_700_000_000_123);
    assert_eq!(
        unverified_return_address(&frames),
        ("ab".repeat(16), "ctl".to_string())
    );
}

#[test]
fn reply_correlation_and_sender() {
    let r = req(5, 1, "server2", b"{}");
    let nonce = open(&key(), &r).expect("ok").header.nonce;
    let rep = seal_reply(&key(), 6, [2; 16], "server2", "ctl", &nonce, b"{}");
    assert!(open_reply(&key(), &rep, "ctl", "server2", &nonce).is_ok());
    assert!(matches!(
        open_reply(&key(), &rep, "ctl", "server2", &"ff".repeat(16)),
        Err(AuthError::WrongCorrelation { .. })
    ));
    assert!(matches!(
        open_reply(&key(), &rep, "ctl", "server3", &nonce),
        Err(AuthError::WrongSender { .. })
    ));
    assert!(matches!(
        open_reply(&key(), &rep, "modem", "server2", &nonce),
        Err(AuthError::NotForUs { .. })
    ));
}

#[test]
fn stale_before_start_is_refused() {
    // A request made (and maybe answered) by the previous run of this receiver.
    let mut g = ReplayGuard::new(START, 30_000, 100);
    let old = open(&key(), &req(START - 1, 1, "a", b"{}")).expect("open");
    assert_eq!(
        g.admit(START + 10, &old),
        Err(AuthError::BeforeStart {
            ts: START - 1,
            started: START
        })
    );
    let fresh = open(&key(), &req(START + 5, 2, "a", b"{}")).expect("open");
    assert_eq!(g.admit(START + 10, &fresh), Ok(Admission::Fresh));
}

#[test]
fn retry_gets_cached_reply_and_replay_is_refused() {
    let mut g = ReplayGuard::new(START, 30_000, 100);
    let frames = req(START + 1, 1, "a", br#"{"cmd":"kill_d2d"}"#);
    let o = open(&key(), &frames).expect("open");
    assert_eq!(g.admit(START + 2, &o), Ok(Admission::Fresh));
    let reply = seal_reply(
        &key(),
        START + 3,
        [9; 16],
        "a",
        "ctl",
        &o.header.nonce,
        b"{}",
    );
    g.remember_reply(&o.header.nonce, &reply);
    // The same frames again (a Lazy Pirate retry): the same reply, nothing run again.
    assert_eq!(g.admit(START + 500, &o), Ok(Admission::Retry(reply)));
    // The same nonce with another body (cannot be signed without the key, but a key holder
    // reusing a nonce) is a replay.
    let other = open(&key(), &req(START + 1, 1, "a", br#"{"cmd":"status"}"#)).expect("open");
    assert_eq!(
        g.admit(START + 600, &other),
        Err(AuthError::Replay("01".repeat(16)))
    );
    // Same nonce, another timestamp: a replay too.
    let later = open(&key(), &req(START + 7, 1, "a", br#"{"cmd":"kill_d2d"}"#)).expect("open");
    assert!(matches!(
        g.admit(START + 600, &later),
        Err(AuthError::Replay(_))
    ));
}

#[test]
fn replay_without_cached_reply_is_refused() {
    let mut g = ReplayGuard::new(START, 30_000, 100);
    let o = open(&key(), &req(START + 1, 1, "a", b"{}")).expect("open");
    assert_eq!(g.admit(START + 2, &o), Ok(Admission::Fresh));
    assert!(matches!(g.admit(START + 3, &o), Err(AuthError::Replay(_))));
}

#[test]
fn reply_cache_is_bounded() {
    let mut g = ReplayGuard::new(0, 1 << 40, 1 << 20);
    for i in 0..(REPLY_CACHE_ENTRIES + 10) {
        g.remember_reply(&format!("{i:032x}"), &[vec![0u8; 100]]);
    }
    assert_eq!(g.cached_replies(), REPLY_CACHE_ENTRIES);
    g.remember_reply("big", &[vec![0u8; REPLY_CACHE_BYTES / 2 + 1]]);
    g.remember_reply("big2", &[vec![0u8; REPLY_CACHE_BYTES / 2 + 1]]);
    assert_eq!(g.cached_replies(), 1);
    g.remember_reply("huge", &[vec![0u8; REPLY_CACHE_BYTES + 1]]);
    assert_eq!(g.cached_replies(), 1);
}

#[test]
fn replay_guard_window_and_memory() {
    let mut g = ReplayGuard::new(0, 1_000, 3);
    let o = |ts, n: u8| open(&key(), &req(ts, n, "a", b"{}")).expect("open");
    assert_eq!(g.admit(10_000, &o(10_000, 1)), Ok(Admission::Fresh));
    assert!(matches!(
        g.admit(12_000, &o(10_000, 2)),
        Err(AuthError::Stale { .. })
    ));
    assert_eq!(g.admit(10_500, &o(10_400, 2)), Ok(Admission::Fresh));
    assert_eq!(g.admit(10_500, &o(10_450, 3)), Ok(Admission::Fresh));
    assert_eq!(
        g.admit(10_500, &o(10_450, 4)),
        Err(AuthError::MemoryFull(3))
    );
    // Time passes: old nonces are forgotten and memory frees.
    assert_eq!(g.admit(11_420, &o(11_420, 4)), Ok(Admission::Fresh));
    assert_eq!(g.remembered(), 2); // nonces 3 and 4
}

#[test]
fn oversized_frames_are_refused() {
    let big = vec![b' '; MAX_BODY + 1];
    let frames = req(START, 1, "a", &big);
    assert_eq!(
        open(&key(), &frames),
        Err(AuthError::Malformed("frame too large".into()))
    );
    let long_to = "x".repeat(MAX_IDENTITY + 1);
    let frames = req(START, 1, &long_to, b"{}");
    assert!(matches!(
        open(&key(), &frames),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn hex_and_keys() {
    assert_eq!(hex_decode(b"0aFf"), Some(vec![10, 255]));
    assert_eq!(hex_decode(b"0g"), None);
    assert_eq!(hex_decode(b"abc"), None);
    assert!(matches!(
        AuthKey::new(b"short"),
        Err(AuthError::KeyTooShort(5))
    ));
    assert!(AuthKey::from_file_contents(b"a passphrase of some length").is_ok());
}

#[cfg(unix)]
#[test]
fn readable_key_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ferry-auth-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("k.hex");
    std::fs::write(&path, "00112233445566778899aabbccddeeff\n").expect("write");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let e = load_key_file(&path).expect_err("too open").to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(load_key_file(&path).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #[test]
    fn open_never_panics(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 0..6)) {
        let _ = open(&key(), &frames);
        let _ = open_request(&key(), &frames, "me");
        let _ = unverified_return_address(&frames);
    }

    #[test]
    fn open_never_panics_on_near_valid_headers(ts in any::<u64>(), to in ".{0,80}", from in ".{0,80}", dir in "[a-z]{0,4}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let header = serde_json::json!({"ts": ts, "nonce": "ab".repeat(16), "dir": dir, "to": to, "from": from});
        let h = serde_json::to_vec(&header).unwrap_or_default();
        let mac = hex_encode(&key().mac(&h, &body).finalize().into_bytes());
        let frames = vec![TAG.to_vec(), h, body, mac.into_bytes()];
        if let Ok(o) = open(&key(), &frames) {
            prop_assert!(valid_identity(&o.header.to) && valid_identity(&o.header.from));
        }
    }

    #[test]
    fn any_tampering_is_detected(pos in any::<prop::sample::Index>(), frame in 0usize..4, flip in 1u8..=255) {
        let mut frames = req(42, 9, "server2", br#"{"cmd":"double_kill"}"#);
        let f = &mut frames[frame];
        let i = pos.index(f.len());
        f[i] ^= flip;
        prop_assert!(open(&key(), &frames).is_err());
    }

    #[test]
    fn guard_admits_each_message_once(nonces in prop::collection::vec(0u8..8, 1..40)) {
        let mut g = ReplayGuard::new(START, 30_000, 1000);
        let mut fresh = std::collections::HashSet::new();
        for n in nonces {
            let o = open(&key(), &req(START + 1, n, "a", b"{}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            match g.admit(START + 2, &o) {
                Ok(Admission::Fresh) => prop_assert!(fresh.insert(n)),
                Ok(Admission::Retry(_)) => prop_assert!(false, "no reply was cached"),
                Err(AuthError::Replay(_)) => prop_assert!(fresh.contains(&n)),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
