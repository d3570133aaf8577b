//! `ferry demo mimo` (needs root; skipped loudly otherwise): the pool and far radios as
//! two-channel B210s in the real air, the far radio's two receivers made noisy beyond the
//! single antenna's threshold (−27 dBFS per antenna: ≈ −3 dB SNR, where 1×1 loses about
//! every block). A 2×2 link (SFBC from two TX ports, MRC over two RX antennas, one VITA-49
//! stream per antenna) carries the pings from server3 to the task through real TUNs where the
//! same link with one antenna does not.

mod support;

use ferry_testbed::root_or_skip;
use std::process::Command;
use support::FERRY;

#[test]
fn two_antennas_carry_pings_where_one_does_not() {
    if !root_or_skip("two_antennas_carry_pings_where_one_does_not (network namespaces, TUN)") {
        return;
    }
    let prefix = format!("fdm{}", std::process::id() % 100_000);
    let out = std::env::temp_dir().join(format!("ferry-demo-mimo-{}", std::process::id()));
    let o = Command::new(FERRY)
        .args([
            "demo",
            "mimo",
            "--noise-dbfs=-27",
            "--antennas",
            "2x2,1x1",
            "--seconds",
            "6",
        ])
        .args(["--prefix", &prefix])
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ferry demo mimo");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo mimo failed:\n{stdout}\n{stderr}");
    support::assert_clean(&prefix, None);
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("mimo.json")).expect("mimo.json"))
            .expect("mimo.json is JSON");
    let (two, one) = (&rep["runs"][0], &rep["runs"][1]);
    let n = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(
        (two["antennas_tx"].as_u64(), two["antennas_rx"].as_u64()),
        (Some(2), Some(2))
    );
    // Two antennas: the link is up, nearly every block and ping passes.
    assert_eq!(two["link_up"], true, "{two}\n{stdout}");
    assert!(n(two, "far_decode_ok") > 1500, "{two}");
    assert!(two["bler"].as_f64().unwrap() < 0.05, "{two}");
    assert!(n(two, "sent") > 150, "{two}");
    assert!(
        n(two, "lost") * 20 <= n(two, "sent"),
        "{} of {} pings lost with 2x2:\n{stdout}",
        n(two, "lost"),
        n(two, "sent")
    );
    // One antenna at the same noise: the noise is really there (blocks fail, or the far end
    // never even holds the cell), and most pings are lost.
    let one_bad = one["link_up"] == false
        || one["bler"].as_f64().unwrap() > 0.3
        || n(one, "lost") * 2 > n(one, "sent");
    assert!(one_bad, "1x1 passes at -27 dBFS: {one}\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
