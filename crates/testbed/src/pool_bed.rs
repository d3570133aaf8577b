//! The pool testbed's processes (`ferry demo pool` and the root tests of the pool): per
//! cell k a pool-side radio `cellk` and a far-side radio `fark` in `ferry air`, a far-end
//! modem, and on every pool server an agent `serverN-cellk` supervising cell k's modem there
//! (an agent supervises one modem task). Built on [`Bed`] and [`crate::Topology::pool`].

use crate::session::{Bed, SessionError, RADIO_CTL};

/// Cell k's two TUN addresses, both in the modems' 192.168.40.0/24 node plan (the MAC's
/// node ID is the last octet): the far end .(16+4k+1)/30, the pool side .(16+4k+2). The far
/// end holds every cell's TUN, so each cell gets its own /30 there.
pub fn far_ip(k: u8) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(192, 168, 40, 17 + 4 * k)
}
/// Cell k's pool-side TUN address.
pub fn pool_ip(k: u8) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(192, 168, 40, 18 + 4 * k)
}

/// `ferry air` with `cellK` (pool side) and `farK` (far side) per cell, each pair linked as
/// the thesis' pool–far link, every other pair blocked.
pub fn start_air(bed: &mut Bed, cells: u8) -> Result<(), SessionError> {
    let o = std::process::Command::new(&bed.ferry)
        .args(["air", "--print-default-config"])
        .output()
        .map_err(|e| SessionError::Failed(format!("ferry air --print-default-config: {e}")))?;
    let mut cfg: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| SessionError::Failed(format!("air default config: {e}")))?;
    let radios = cfg["radios"].as_array().cloned().unwrap_or_default();
    let template = radios
        .iter()
        .find(|r| r["name"] == "pool")
        .cloned()
        .ok_or_else(|| SessionError::Failed("the air's default config has no pool radio".into()))?;
    let link = cfg["links"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|l| l["a"] == "pool" && l["b"] == "far")
                .cloned()
        })
        .ok_or_else(|| {
            SessionError::Failed("the air's default config has no pool–far link".into())
        })?;
    let (mut rs, mut ls) = (Vec::new(), Vec::new());
    for k in 1..=cells {
        for (side, fh) in [
            ("cell", format!("192.168.10.2:{}", 49160 + u16::from(k))),
            ("far", format!("192.168.13.2:{}", 49170 + u16::from(k))),
        ] {
            let mut r = template.clone();
            r["name"] = format!("{side}{k}").into();
            r["fronthaul"] = fh.into();
            r["init_ms"] = 0.into();
            r["legacy_host"] = serde_json::Value::Null;
            r["description"] = format!("{side} radio of cell {k}").into();
            rs.push(r);
        }
        let mut l = link.clone();
        l["a"] = format!("cell{k}").into();
        l["b"] = format!("far{k}").into();
        ls.push(l);
    }
    cfg["radios"] = rs.into();
    cfg["links"] = ls.into();
    cfg["control"] = RADIO_CTL.into();
    let path = bed.dir.join("air.json");
    std::fs::write(&path, cfg.to_string())
        .map_err(|e| SessionError::Failed(format!("writing air.json: {e}")))?;
    let mut c = bed.ferry_in("radio");
    c.arg("air")
        .arg("--config")
        .arg(&path)
        .arg("--key")
        .arg(bed.key());
    bed.spawn("air", c)
}

/// Cell k's far-end modem (slave) in `farend` on radio `fark`.
pub fn start_far(bed: &mut Bed, k: u8) -> Result<(), SessionError> {
    let mut c = bed.ferry_in("farend");
    c.args([
        "modem",
        "--workmode",
        "1",
        "--radio",
        &format!("far{k}"),
        "--radio-control",
        RADIO_CTL,
        "--bind",
        &format!("192.168.13.1:{}", 49200 + u16::from(k)),
        "--tun",
        &format!("far{k}"),
        "--tun-addr",
        &format!("{}/30", far_ip(k)),
    ])
    .arg("--control-socket")
    .arg(bed.dir.join(format!("far{k}.sock")))
    .arg("--key")
    .arg(bed.key());
    bed.spawn(&format!("far-modem{k}"), c)
}

/// The agent of cell `k` on server `n`: its own port, TUN, radio, fronthaul and forward
/// ports; the modem it starts is cell k's.
pub fn start_agent(bed: &mut Bed, n: u8, k: u8) -> Result<(), SessionError> {
    let fh = format!("192.168.10.{}", 10 + n);
    let mut c = bed.ferry_in(&format!("server{n}"));
    c.args([
        "agent",
        "--bind",
        &format!("tcp://10.99.0.{n}:{}", 5600 + u16::from(k)),
        "--name",
        &format!("server{n}-cell{k}"),
    ])
    .arg("--key")
    .arg(bed.key())
    .arg("--radio-key")
    .arg(bed.key())
    .args([
        "--parked",
        &format!("192.168.20.{n}"),
        "--radio",
        "controlled",
        "--radio-control",
        RADIO_CTL,
        "--radio-name",
        &format!("cell{k}"),
        "--usrp-in-modem",
        "--tun",
        &format!("c{k}"),
        // The cell's /30 (its far end is the other address): the connected route to the far
        // end goes through this TUN from the moment its address is set, whatever other
        // cells' TUNs this server holds, and before a move's T.
        "--tun-prefix",
        "30",
        "--modem",
    ])
    .arg(&bed.ferry)
    .args(
        [
            "modem".to_string(),
            "--workmode=0".into(),
            format!("--radio=cell{k}"),
            format!("--radio-control={RADIO_CTL}"),
            format!("--tun=c{k}"),
            format!("--bind={fh}:{}", 49200 + u16::from(k)),
            format!("--forward-bind={fh}:{}", 7000 + u16::from(k)),
        ]
        .into_iter()
        .map(|a| format!("--modem-arg={a}")),
    )
    .arg("--modem-socket")
    .arg(bed.dir.join(format!("s{n}c{k}.sock")));
    bed.spawn(&format!("agent-server{n}-cell{k}"), c)
}

/// `ferry pool register --slot` of cell k on server n.
pub fn slot_arg(n: u8, k: u8) -> String {
    let fh = format!("192.168.10.{}", 10 + n);
    format!(
        "cell{k}=server{n}-cell{k}@tcp://10.99.0.{n}:{},{fh}:{},{fh}:{}",
        5600 + u16::from(k),
        49200 + u16::from(k),
        7000 + u16::from(k)
    )
}

/// `ferry ctl send` to cell k's agent on server n.
pub fn send(bed: &Bed, n: u8, k: u8, cmd: &str, json: &str) -> Result<(), SessionError> {
    let o = bed
        .ferry_in(&format!("server{n}"))
        .arg("ctl")
        .arg("--key")
        .arg(bed.key())
        .args([
            "send",
            cmd,
            json,
            "--to",
            &format!(
                "server{n}-cell{k}=tcp://10.99.0.{n}:{}",
                5600 + u16::from(k)
            ),
        ])
        .output()
        .map_err(|e| SessionError::Failed(format!("ferry ctl send {cmd}: {e}")))?;
    if !o.status.success() {
        return Err(SessionError::Failed(format!(
            "{cmd} to cell{k}'s agent on server{n}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    Ok(())
}
