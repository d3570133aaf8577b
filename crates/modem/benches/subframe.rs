//! Real-time margin of the modem core: CPU per 1 ms subframe (build a full data TX subframe;
//! receive, decode and unpack one) at each bandwidth, against the 1 ms budget.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ferry_mac::harq::HarqConfig;
use ferry_mac::{AddressPlan, NodeId};
use ferry_migrate::Control;
use ferry_modem::core::ModemCore;
use num_complex::Complex32;
use serde_json::json;

fn control(workmode: u8, mhz: &str, rb: u8, tm: u8) -> Control {
    let bw: serde_json::Value = serde_json::from_str(mhz).unwrap();
    Control::from_value(&json!({
        "workmode": workmode, "phy_cell_ID": 7, "group_ID": 2, "cell_ID": 1, "CPtype": 0,
        "BW": bw, "RBIdx": rb, "duplexMode": 0, "numAntennaTX": 1, "numAntennaRX": 1,
        "DLULAssign": 1, "trans_mode": 1, "type_mode": tm, "RNTI": 265
    }))
    .unwrap()
}

fn packet(len: usize) -> Vec<u8> {
    let mut p = vec![0x11u8; len];
    p[0] = 0x45;
    p[12..16].copy_from_slice(&[192, 168, 40, 9]);
    p[16..20].copy_from_slice(&[192, 168, 40, 8]);
    p
}

/// Keep the queue loaded; the static route is re-installed as virtual time runs on (routes
/// that no beacon confirms age out).
fn fill(m: &mut ModemCore, pkt: &[u8], n: u64) {
    for _ in 0..64 {
        if m.mac().status().queue_len >= 64 {
            return;
        }
        if m.enqueue_ip(pkt).is_err() {
            let _ = m.mac_mut().set_routes(n, &[(NodeId(8), NodeId(8))]);
        }
    }
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("1.4", 6u8, 1u8),
        ("1.4", 6, 3),
        ("3", 15, 3),
        ("5", 25, 3),
        ("10", 50, 3),
        ("15", 75, 3),
        ("20", 100, 3),
    ];
    for (mhz, rb, tm) in cases {
        let plan = AddressPlan::default();
        let mut m = ModemCore::new(
            &control(0, mhz, rb, tm),
            NodeId(9),
            plan.clone(),
            0,
            0.0,
            None,
        )
        .unwrap();
        m.mac_mut()
            .set_routes(0, &[(NodeId(8), NodeId(8))])
            .unwrap();
        let mut s =
            ModemCore::new(&control(1, mhz, rb, tm), NodeId(8), plan, 0, 0.0, None).unwrap();
        let pkt = packet(1400);
        let mut buf: Vec<Complex32> = Vec::new();
        let mod_name = if tm == 1 { "qpsk" } else { "64qam" };
        let name = format!("{mhz}MHz_{mod_name}");
        // TX: a D subframe (subframe 0 of a frame) filled with 1400-byte packets.
        let mut n = 0u64;
        c.bench_function(&format!("tx_subframe/{name}"), |b| {
            b.iter(|| {
                fill(&mut m, &pkt, n);
                let _ = m.on_tx(n, &mut buf).unwrap();
                n += 10;
            })
        });
        // RX: decode one fully loaded D subframe and unpack its packets.
        fill(&mut m, &pkt, n);
        let mut air = Vec::new();
        m.on_tx(n, &mut air).unwrap();
        let rx_n = n;
        c.bench_function(&format!("rx_subframe/{name}"), |b| {
            b.iter_batched(
                || air.clone(),
                |mut x| s.on_rx(rx_n, &mut x),
                BatchSize::SmallInput,
            )
        });
        assert_eq!(
            s.counters.decode_fail, 0,
            "{name}: decode failed in the bench"
        );
        // The same with HARQ (Control `HARQ` = 1): the control message is decoded first and
        // the TB combined into a soft buffer (here always a first transmission).
        if tm == 1 || mhz == "3" || mhz == "20" {
            let mut ch = control(0, mhz, rb, tm);
            ch.harq = true;
            let mut mh =
                ModemCore::new(&ch, NodeId(9), AddressPlan::default(), 0, 0.0, None).unwrap();
            mh.enable_harq(HarqConfig::for_tx_lead(8), 0x41).unwrap();
            mh.mac_mut()
                .set_routes(0, &[(NodeId(8), NodeId(8))])
                .unwrap();
            let mut cs = control(1, mhz, rb, tm);
            cs.harq = true;
            let mut sh =
                ModemCore::new(&cs, NodeId(8), AddressPlan::default(), 0, 0.0, None).unwrap();
            sh.enable_harq(HarqConfig::for_tx_lead(8), 0x52).unwrap();
            fill(&mut mh, &pkt, 0);
            let mut air = Vec::new();
            mh.on_tx(0, &mut air).unwrap();
            c.bench_function(&format!("rx_subframe_harq/{name}"), |b| {
                b.iter_batched(
                    || air.clone(),
                    |mut x| sh.on_rx(0, &mut x),
                    BatchSize::SmallInput,
                )
            });
            assert_eq!(sh.counters.decode_fail, 0, "{name}: HARQ decode failed");
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
