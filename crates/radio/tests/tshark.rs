//! Wireshark's own VRT dissector decodes Ferry's fronthaul: packets emitted by the air
//! engine are written to a pcap (Ethernet/IPv4/UDP framing built here) and read back with
//! `tshark -d udp.port==P,vrt`; stream IDs, timestamps and packet counts must match.
//! Skipped loudly when tshark is not installed.

use std::io::Write;
use std::process::Command;

use ferry_fronthaul::control::Request;
use ferry_fronthaul::vrt::{ContextRepr, DataRepr};
use ferry_radio::config::AirConfig;
use ferry_radio::engine::{AirEngine, TickOutput};

const PORT: u16 = 49156;

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One Ethernet frame carrying `payload` from 192.168.10.2:PORT to 192.168.10.1:PORT.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let total = 20 + 8 + payload.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&[192, 168, 10, 2, 192, 168, 10, 1]);
    let c = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let ulen = (8 + payload.len()) as u16;
    f.extend_from_slice(&PORT.to_be_bytes());
    f.extend_from_slice(&PORT.to_be_bytes());
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    f.extend_from_slice(payload);
    f
}

fn write_pcap(path: &std::path::Path, payloads: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (k, p) in payloads.iter().enumerate() {
        let f = frame(p);
        out.extend_from_slice(&(k as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    std::fs::File::create(path)
        .unwrap()
        .write_all(&out)
        .unwrap();
}

#[test]
fn tshark_vrt_dissector_reads_ferry_fronthaul() {
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("SKIPPED (needs tshark): tshark_vrt_dissector_reads_ferry_fronthaul");
        println!("SKIPPED (needs tshark): tshark_vrt_dissector_reads_ferry_fronthaul");
        return;
    }
    let mut cfg = AirConfig::default().with_init_ms(0);
    cfg.noise_floor_dbfs = Some(-40.0);
    let mut e = AirEngine::new(cfg, None).unwrap();
    // Radios 1 (far) and 2 (relayrx) stream to one host each; skip 3 s of air first so the
    // integer-seconds field is non-zero.
    for (radio, port) in [("far", 6001), ("relayrx", 6002)] {
        e.control(&Request::Link {
            radio: radio.into(),
            endpoint: format!("127.0.0.1:{port}").parse().unwrap(),
        });
    }
    e.skip(3000);
    let mut out = TickOutput::default();
    for _ in 0..3 {
        e.tick(&mut out);
    }
    let payloads: Vec<Vec<u8>> = out.packets.iter().map(|p| p.bytes.clone()).collect();
    // What we sent, as (type, sid, ts_int, ts_frac, count).
    let mut want = Vec::new();
    for p in &payloads {
        if let Ok(d) = DataRepr::parse_bytes(p) {
            want.push((
                1u8,
                d.stream_id.0,
                d.timestamp.secs,
                d.timestamp.frac,
                d.count,
            ));
        } else {
            let c = ContextRepr::parse_bytes(p).unwrap();
            want.push((
                4u8,
                c.stream_id.0,
                c.timestamp.secs,
                c.timestamp.frac,
                c.count,
            ));
        }
    }
    assert!(want.iter().any(|w| w.0 == 4) && want.iter().any(|w| w.0 == 1));
    let path = std::env::temp_dir().join(format!("ferry-vrt-{}.pcap", std::process::id()));
    write_pcap(&path, &payloads);
    let o = Command::new("tshark")
        .args(["-r"])
        .arg(&path)
        .args([
            "-d",
            &format!("udp.port=={PORT},vrt"),
            "-T",
            "fields",
            "-E",
            "separator=,",
        ])
        .args([
            "-e",
            "vrt.type",
            "-e",
            "vrt.sid",
            "-e",
            "vrt.ts_int",
            "-e",
            "vrt.ts_frac_sample",
            "-e",
            "vrt.seq",
            "-e",
            "vrt.tsi",
            "-e",
            "vrt.tsf",
        ])
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), want.len(), "tshark output:\n{text}");
    let num = |s: &str| -> u64 {
        let s = s.trim();
        s.strip_prefix("0x").map_or_else(
            || s.parse().unwrap(),
            |h| u64::from_str_radix(h, 16).unwrap(),
        )
    };
    for (line, w) in lines.iter().zip(&want) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 7, "{line}");
        assert_eq!(num(f[0]), u64::from(w.0), "type in {line}");
        assert_eq!(num(f[1]), u64::from(w.1), "stream id in {line}");
        assert_eq!(num(f[2]), u64::from(w.2), "integer timestamp in {line}");
        assert_eq!(num(f[3]), w.3, "fractional timestamp in {line}");
        assert_eq!(num(f[4]), u64::from(w.4), "packet count in {line}");
        assert_eq!((num(f[5]), num(f[6])), (3, 1), "TSI/TSF in {line}");
    }
    assert_eq!(
        want[want.len() - 1].2,
        3,
        "after 3 s of air the integer timestamp is 3"
    );
}
