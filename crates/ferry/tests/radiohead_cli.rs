//! `ferry radiohead` as a process: the loopback medium serves and reports; `--medium uhd`
//! reaches the hardware boundary with a clear error (no USRP here, or no UHD in the build).

use std::process::Command;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

#[test]
fn loopback_head_runs_paced_by_its_medium_and_reports() {
    let o = Command::new(FERRY)
        .args([
            "radiohead",
            "--open-control",
            "--medium",
            "loopback",
            "--control",
            "tcp://127.0.0.1:*",
            "--fronthaul",
            "127.0.0.1:0",
            "--duration",
            "0.5",
        ])
        .output()
        .expect("ferry radiohead");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("link control on tcp://127.0.0.1:"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    // 1 ms ticks at 1.92 Msps: the medium's clock gave about 500 of them in 0.5 s.
    let ticks = v["ticks"].as_u64().unwrap();
    assert!((50..=700).contains(&ticks), "{v}");
    assert_eq!(v["samples"].as_u64(), Some(ticks * 1920), "{v}");
    assert_eq!(v["clock_slips"].as_u64(), Some(0), "{v}");
}

#[test]
fn bad_options_and_missing_hardware_are_clear_errors() {
    let run = |args: &[&str]| {
        let o = Command::new(FERRY)
            .arg("radiohead")
            .arg("--open-control")
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("ferry radiohead");
        assert!(!o.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&["--loopback-gain-db", "6"]);
    assert!(e.contains("--loopback-gain-db"), "{e}");
    let e = run(&["--tx-advance-ms", "1000"]);
    assert!(e.contains("--tx-advance-ms"), "{e}");
    let e = run(&["--medium", "uhd", "--uhd-args", "addr=127.0.0.1"]);
    if cfg!(feature = "uhd") {
        assert!(e.contains("no USRP found"), "{e}");
    } else {
        assert!(e.contains("--features uhd"), "{e}");
    }
}

/// One radio of the default air as a `--config` file, with `rf` changed by `edit`.
fn radio_file(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let o = Command::new(FERRY)
        .args(["air", "--print-default-config"])
        .output()
        .expect("ferry air");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("default config");
    let mut radio = v["radios"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "pool"))
        .cloned()
        .expect("pool radio");
    edit(&mut radio["rf"]);
    let path = std::env::temp_dir().join(format!(
        "ferry-radiohead-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&path, radio.to_string()).expect("write config");
    path
}

/// Runs a private loopback head from the radio file `cfg` for `duration` seconds.
fn run_head(cfg: &std::path::Path, duration: &str) -> std::process::Output {
    Command::new(FERRY)
        .args(["radiohead", "--medium", "loopback", "--open-control"])
        .args([
            "--control",
            "tcp://127.0.0.1:*",
            "--fronthaul",
            "127.0.0.1:0",
        ])
        .args(["--duration", duration, "--config"])
        .arg(cfg)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("ferry radiohead")
}

#[test]
fn an_n210_head_runs_through_the_resampler_and_refuses_what_it_cannot_give() {
    // 100 MHz master clock: the N210 model at 100 MHz / 52 behind the 624/625 resampler.
    let cfg = radio_file("n210", |rf| {
        rf["master_clock_hz"] = serde_json::json!(100e6)
    });
    let o = run_head(&cfg, "0.5");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    assert!(v["ticks"].as_u64().unwrap() >= 50, "{v}");
    assert_eq!(v["clock_slips"].as_u64(), Some(0), "{v}");
    // 30.72 Msps cannot come from an N210 (beyond gigabit Ethernet): refused, with why.
    let cfg = radio_file("n210-20mhz", |rf| {
        rf["master_clock_hz"] = serde_json::json!(100e6);
        rf["rate_hz"] = serde_json::json!(30_720_000);
    });
    let o = run_head(&cfg, "0.2");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("B210/X310"), "{err}");
}
