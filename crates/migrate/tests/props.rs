//! Property tests: decoding anything from the network or an operator never panics, and
//! validation is exact (valid values round-trip, each bad field is named).

use ferry_migrate::auth::{self, AuthKey};
use ferry_migrate::control::{Control, RouteList};
use ferry_migrate::protocol::{ErrorKind, Reply, Request, COMMANDS};
use ferry_migrate::{Agent, AgentAction, AgentConfig};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        (0u64..700).prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const FIELDS: [&str; 18] = [
    "workmode",
    "phy_cell_ID",
    "group_ID",
    "cell_ID",
    "CPtype",
    "BW",
    "RBIdx",
    "duplexMode",
    "numAntennaTX",
    "numAntennaRX",
    "DLULAssign",
    "trans_mode",
    "type_mode",
    "RNTI",
    "frame_start_sample",
    "SFN",
    "sample_rate",
    "CFO_Hz",
];

/// Valid Controls, built from the rules.
fn arb_control() -> impl Strategy<Value = Value> {
    (
        (0u64..3, 0u64..168, 0u64..3, 0u64..2),
        0usize..6,
        0u64..2,
        prop::sample::select(vec![1u64, 2, 4]),
        prop::sample::select(vec![1u64, 2, 4]),
        0u64..7,
        1u64..10,
        1u64..4,
        0x3Du64..=0xFFF3,
        prop::option::of((any::<u64>(), 0u64..1024, 1u64..5, -15_000.0f64..15_000.0)),
    )
        .prop_map(
            |((wm, g, c, cp), bwi, dup, tx, rx, dl, tm, ty, rnti, warm)| {
                let bws = [
                    (json!(1.4), 6, 1_920_000u64),
                    (json!(3), 15, 3_840_000),
                    (json!(5), 25, 7_680_000),
                    (json!(10), 50, 15_360_000),
                    (json!(15), 75, 23_040_000),
                    (json!(20), 100, 30_720_000),
                ];
                let (bw, rb, rate) = bws[bwi].clone();
                let tm = if tx == 1 && (2..=6).contains(&tm) {
                    1
                } else {
                    tm
                };
                let mut v = json!({
                    "workmode": wm, "phy_cell_ID": 3 * g + c, "group_ID": g, "cell_ID": c,
                    "CPtype": cp, "BW": bw, "RBIdx": rb, "duplexMode": dup,
                    "numAntennaTX": tx, "numAntennaRX": rx, "DLULAssign": dl,
                    "trans_mode": tm, "type_mode": ty, "RNTI": rnti
                });
                if let (Some((start, sfn, mult, cfo)), Some(m)) = (warm, v.as_object_mut()) {
                    m.insert("frame_start_sample".into(), json!(start));
                    m.insert("SFN".into(), json!(sfn));
                    m.insert("sample_rate".into(), json!(rate * mult));
                    m.insert("CFO_Hz".into(), json!(cfo));
                }
                v
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let r = Request::decode(&bytes);
        if let Err(e) = r {
            let reply = e.to_reply();
            prop_assert!(!reply.ok);
            prop_assert!(Reply::decode(&reply.encode()).is_ok());
        }
    }

    #[test]
    fn request_decode_never_panics_on_json(
        cmd in prop::sample::select(COMMANDS.to_vec()),
        extra in prop::collection::btree_map(
            prop::sample::select(vec!["control_flag", "Control", "mode", "tun_ip", "route_list",
                                      "at_sample", "forward_to", "junk"]),
            arb_json(), 0..4),
    ) {
        let mut m: Map<String, Value> = extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        m.insert("cmd".into(), json!(cmd));
        let body = Value::Object(m).to_string();
        match Request::decode(body.as_bytes()) {
            Ok(r) => {
                prop_assert_eq!(r.cmd(), cmd);
                // Whatever decodes re-encodes to something that decodes to the same request.
                prop_assert_eq!(Request::decode(&r.encode()), Ok(r));
            }
            Err(e) => prop_assert_eq!(e.kind, ErrorKind::BadRequest),
        }
    }

    #[test]
    fn reply_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), v in arb_json()) {
        let _ = Reply::decode(&bytes);
        let _ = Reply::decode(v.to_string().as_bytes());
    }

    #[test]
    fn control_parse_never_panics(v in arb_json()) {
        let _ = Control::from_value(&v);
        let _ = RouteList::from_value(&v);
    }

    #[test]
    fn valid_controls_round_trip(v in arb_control()) {
        let c = Control::from_value(&v);
        prop_assert!(c.is_ok(), "{:?} rejected: {:?}", v, c);
        if let Ok(c) = c {
            prop_assert_eq!(Control::from_value(&c.to_value()), Ok(c));
        }
    }

    #[test]
    fn a_corrupted_field_is_named(v in arb_control(), idx in 0usize..14, bad in arb_json()) {
        let field = FIELDS[idx];
        let mut v = v;
        if let Some(m) = v.as_object_mut() {
            m.insert(field.to_string(), bad);
        }
        if let Err(e) = Control::from_value(&v) {
            // Either the corrupted field itself or a cross-field rule involving it is named.
            let named: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
            let related: &[&str] = match field {
                "group_ID" | "cell_ID" => &["phy_cell_ID"],
                "BW" => &["RBIdx", "sample_rate"],
                "numAntennaTX" => &["trans_mode"],
                _ => &[],
            };
            prop_assert!(named.contains(&field) || related.iter().any(|r| named.contains(r)),
                "{} not named in {:?}", field, named);
        }
    }

    #[test]
    fn auth_open_never_panics(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..6)) {
        let key = AuthKey::new(b"0123456789abcdef0123").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = auth::open(&key, &frames);
    }

    #[test]
    fn any_tampering_is_detected(pos in any::<prop::sample::Index>(), frame in 0usize..4, flip in 1u8..=255) {
        let key = AuthKey::new(b"0123456789abcdef0123").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut frames = auth::seal_request(&key, 42, [9; 16], "ctl", "server2", br#"{"cmd":"double_kill"}"#);
        let f = &mut frames[frame];
        let i = pos.index(f.len());
        f[i] ^= flip;
        prop_assert!(auth::open(&key, &frames).is_err());
    }

    #[test]
    fn agent_answers_any_bytes_with_one_reply(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut a = Agent::new(AgentConfig::default());
        a.receive(0, &bytes);
        let mut replies = 0;
        let mut locals = 0;
        while let Some(x) = a.poll_action() {
            match x {
                AgentAction::Reply(_) => replies += 1,
                AgentAction::Local(_) => locals += 1,
                _ => {}
            }
        }
        // Either answered at once, or a handler started and awaits its first local step.
        prop_assert!(replies + locals == 1, "replies {} locals {}", replies, locals);
    }
}
