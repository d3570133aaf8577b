//! Cost of one authenticated agent request (seal, verify, replay check, decode) and of
//! stepping a sequence: the overhead Ferry adds to each control-plane round trip, which
//! make-before-break must fit inside its arming margin.

use criterion::{criterion_group, criterion_main, Criterion};
use ferry_migrate::auth::{self, AuthKey, ReplayGuard};
use ferry_migrate::machine::{Action, Event, LocalValue};
use ferry_migrate::protocol::{Request, StartD2d, StartMode};
use ferry_migrate::{ConsoleCommand, Control, LegacyConfig};
use serde_json::json;
use std::hint::black_box;

fn control() -> Control {
    Control::from_value(&json!({
        "workmode": 1, "phy_cell_ID": 301, "group_ID": 100, "cell_ID": 1,
        "CPtype": 0, "BW": 5, "RBIdx": 25, "duplexMode": 0,
        "numAntennaTX": 1, "numAntennaRX": 1, "DLULAssign": 1,
        "trans_mode": 1, "type_mode": 2, "RNTI": 4660,
        "frame_start_sample": 1234, "SFN": 0, "sample_rate": 7_680_000, "CFO_Hz": 150.0
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn bench(c: &mut Criterion) {
    let key = AuthKey::new(b"benchmark key of 32 bytes.......").unwrap_or_else(|e| panic!("{e}"));
    let req = Request::StartD2d(StartD2d {
        warm: true,
        control: Some(control()),
        mode: StartMode::Shadow,
    });
    let mut n: u64 = 0;
    let mut guard = ReplayGuard::new(0, 30_000, 1 << 20);
    c.bench_function(
        "start_d2d request: encode+seal+open+replay check+decode",
        |b| {
            b.iter(|| {
                n += 1;
                let mut nonce = [0u8; 16];
                nonce[..8].copy_from_slice(&n.to_le_bytes());
                let frames = auth::seal_request(
                    &key,
                    1_000_000 + n / 1000,
                    nonce,
                    "ctl",
                    "server2",
                    &req.encode(),
                );
                let o = auth::open(&key, &frames).unwrap_or_else(|e| panic!("{e}"));
                guard
                    .admit(1_000_000 + n / 1000, &o)
                    .unwrap_or_else(|e| panic!("{e}"));
                black_box(Request::decode(&o.body).unwrap_or_else(|e| panic!("{e}")))
            })
        },
    );
    c.bench_function("DS sequence, all steps answered ok", |b| {
        b.iter(|| {
            let cfg = LegacyConfig::default();
            let mut seq = ConsoleCommand::DoubleStart
                .start(&cfg, 0)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut now = 0;
            loop {
                match seq.poll_action() {
                    Some(Action::Local(_)) => {
                        now += 1;
                        seq.handle(now, Event::LocalDone(Ok(LocalValue::Unit)));
                    }
                    Some(Action::Done(o)) => break black_box(o.ok),
                    Some(_) => {}
                    None => break false,
                }
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
