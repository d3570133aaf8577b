//! `ferry modem`: the real-time D2D / relay modem (PHY + MAC over a radio link, TUN bridge,
//! relay, local control socket for the agent).

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ferry_migrate::{Control, RouteList};
use ferry_modem::{Modem, ModemOptions, RadioSpec};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// How to start.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StartMode {
    /// control_flag 0: cell search (slave) and route discovery.
    Cold,
    /// control_flag 1: from the Control (incl. frame timing and CFO) and routes given.
    Warm,
    /// Wait for `start` / `shadow` on the control socket.
    Wait,
}

/// Arguments of `ferry modem`.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
ferry modem --workmode 0 --radio pool --radio-control tcp://10.99.0.10:5550 --tun-addr 192.168.40.9/24\n  \
ferry modem --workmode 1 --radio far --radio-control tcp://10.99.0.10:5550 --tun-addr 192.168.40.8/24\n  \
ferry modem --workmode auto --radio far --radio-control tcp://10.99.0.10:5550 --tun-addr 192.168.40.8/24\n  \
ferry modem --workmode 0 --duplex-mode 1 --earfcn 300 --radio pool   # FDD, band 1: TX 2140, RX 1950 MHz\n  \
ferry modem --control-file ctl.json --start warm --routes '[[8,8]]' --control-socket /run/ferry/modem.sock\n\
Control socket protocol: docs/MODEM-CONTROL.md")]
pub struct ModemArgs {
    /// Control (thesis table 3-3 JSON, thesis field names); flags below override fields.
    #[arg(long)]
    control_file: Option<PathBuf>,
    /// workmode: 0 master, 1 slave, 2 base station, 3 or `auto` (roles elected among
    /// terminals, TDD only; docs/MODEM.md "Master election").
    #[arg(long, value_parser = parse_workmode)]
    workmode: Option<u8>,
    /// phy_cell_ID (0..=503); group_ID and cell_ID follow from it.
    #[arg(long)]
    pci: Option<u16>,
    /// BW in MHz (1.4, 3, 5, 10, 15, 20); RBIdx follows.
    #[arg(long)]
    bw: Option<f64>,
    /// DLULAssign: TDD configuration 0..=6.
    #[arg(long)]
    dl_ul_assign: Option<u8>,
    /// type_mode: 1 QPSK, 2 16QAM, 3 64QAM.
    #[arg(long)]
    type_mode: Option<u8>,
    /// duplexMode: 0 TDD, 1 FDD (two carriers: DL and UL).
    #[arg(long)]
    duplex_mode: Option<u8>,
    /// Control `EARFCN`: downlink EARFCN (36.101); the uplink follows from the band's
    /// duplex spacing. The modem tunes its radio's TX/RX LOs to it. Default: FDD band 1
    /// EARFCN 300 (DL 2140 / UL 1950 MHz); TDD leaves the radio as initialised (1.9 GHz).
    #[arg(long)]
    earfcn: Option<u32>,
    /// Control `HARQ`: run HARQ on the link (stop-and-wait processes, ACK/NACK in a control
    /// message every subframe, soft combining of retransmissions; docs/MODEM.md "HARQ").
    /// Every node of the link must run it. Not with --workmode 2.
    #[arg(long, value_enum)]
    harq: Option<OnOff>,
    /// Control `numAntennaTX`: TX antenna ports of the link (1, or 2 with SFBC; every node
    /// of the link must use the same). Needs a radio with that many channels.
    #[arg(long)]
    antennas_tx: Option<u8>,
    /// Control `numAntennaRX`: this node's receive antennas (1, or 2 with MRC).
    #[arg(long)]
    antennas_rx: Option<u8>,
    /// Control `trans_mode`: 1 (one port) or 2 (transmit diversity, SFBC); 3–9 are
    /// refused. Default: 2 with --antennas-tx 2.
    #[arg(long)]
    trans_mode: Option<u8>,
    /// Start mode.
    #[arg(long, value_enum, default_value = "cold")]
    start: StartMode,
    /// Start as a shadow (decode only) instead of active (needs link control).
    #[arg(long)]
    shadow: bool,
    /// Routes for a warm start: JSON [[destID, nexthop], ...].
    #[arg(long)]
    routes: Option<String>,
    /// Link-control endpoint of `ferry air`.
    #[arg(long, default_value = "tcp://127.0.0.1:5550")]
    radio_control: String,
    /// Radio name (with link control).
    #[arg(long, default_value = "pool")]
    radio: String,
    /// Local fronthaul address to bind (port 0 = any).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Link-control key file of the air (mode 0600; the agent passes its --radio-key).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The air's identity (its `--identity`).
    #[arg(long, default_value = ferry_radio::DEFAULT_AIR_IDENTITY)]
    radio_identity: String,
    /// Legacy (address-bound) radio at this fronthaul address instead of link control.
    #[arg(long)]
    legacy_radio: Option<SocketAddr>,
    /// Legacy radio's number (stream id).
    #[arg(long, default_value_t = 0)]
    legacy_number: u16,
    /// TUN device name.
    #[arg(long, default_value = "ferry0")]
    tun: String,
    /// Run without a TUN (benchmarks).
    #[arg(long)]
    no_tun: bool,
    /// TUN address (192.168.40.9/24 pool side, 192.168.40.8/24 far end).
    #[arg(long, default_value = "192.168.40.9/24")]
    tun_addr: String,
    /// TUN MTU.
    #[arg(long, default_value_t = 1400)]
    mtu: u16,
    /// Control socket (Unix) for the agent.
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// Forward port (UDP) for packets handed over by a releasing source.
    #[arg(long)]
    forward_bind: Option<SocketAddr>,
    /// Accept forwarded packets only from these addresses (repeatable; default any address,
    /// but only packets sealed with the forward_token of a migration in progress).
    #[arg(long)]
    forward_allow: Vec<IpAddr>,
    /// MTU of the fronthaul LAN: TX packets carry as many samples as fit one unfragmented
    /// IPv4/UDP datagram (1500: 363 samples; 9000 for jumbo frames: 2238).
    #[arg(long, default_value_t = ferry_fronthaul::vrt::DEFAULT_MTU)]
    fronthaul_mtu: usize,
    /// Subframes (ms) TX is prepared ahead of radio time.
    #[arg(long, default_value_t = DEFAULT_TX_LEAD)]
    tx_lead: u64,
    /// Base-station grant delay (subframes, 1..=20): cell-wide, the same on every node, and
    /// larger than every slave's --tx-lead + 1.
    #[arg(long, default_value_t = 10)]
    grant_delay: u64,
    /// Route-discovery beacon period (ms).
    #[arg(long, default_value_t = 1000)]
    discovery_period_ms: u64,
    /// Half-frames (5 ms) the cold cell search accumulates.
    #[arg(long, default_value_t = 4)]
    search_half_frames: usize,
    /// Exit after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// MAC node id (default: last octet of the TUN address).
    #[arg(long)]
    node: Option<u8>,
    /// SCHED_FIFO priority of the real-time loop (0 = normal scheduler).
    #[arg(long, default_value_t = 10)]
    rt_priority: i32,
    /// After a release (make-before-break), how long this modem stays warm — receiving the
    /// radio's RX copy, sending filler — in case the radio falls back to it because the
    /// destination fell silent (docs/FAULTS.md).
    #[arg(long, default_value_t = 300)]
    release_grace_ms: u64,
    /// With --shadow: protect the task as a hot standby — send filler the radio queues but
    /// plays only if it fails the primary over to this host, and serve from the radio's
    /// failover notice on (docs/FAULTS.md). Needs --key (notices are authenticated).
    #[arg(long, requires = "shadow")]
    hot_standby: bool,
}

/// `--tx-lead`'s default (subframes).
pub(crate) const DEFAULT_TX_LEAD: u64 = 8;

/// The Control `ferry modem` runs without `--control-file` (before its flags apply).
pub(crate) fn default_control_json() -> serde_json::Value {
    json!({
        "workmode": 0, "phy_cell_ID": 1, "group_ID": 0, "cell_ID": 1, "CPtype": 0,
        "BW": 1.4, "RBIdx": 6, "duplexMode": 0, "numAntennaTX": 1, "numAntennaRX": 1,
        "DLULAssign": 1, "trans_mode": 1, "type_mode": 1, "RNTI": 265
    })
}

/// `--bw MHz` into a Control's `BW` and `RBIdx` (an unknown width gets `RBIdx` 0, which
/// validation refuses with its reason).
pub(crate) fn set_bw(v: &mut serde_json::Value, bw: f64) {
    v["BW"] = if (bw - 1.4).abs() < 1e-9 {
        1.4.into()
    } else {
        (bw as u64).into()
    };
    let rb = [
        (1.4, 6),
        (3.0, 15),
        (5.0, 25),
        (10.0, 50),
        (15.0, 75),
        (20.0, 100),
    ]
    .iter()
    .find(|(mhz, _)| (mhz - bw).abs() < 1e-9)
    .map_or(0, |&(_, rb)| rb);
    v["RBIdx"] = rb.into();
}

fn build_control(a: &ModemArgs) -> anyhow::Result<Control> {
    let mut v = match &a.control_file {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not JSON", p.display()))?
        }
        None => default_control_json(),
    };
    if let Some(w) = a.workmode {
        v["workmode"] = w.into();
    }
    if let Some(p) = a.pci {
        v["phy_cell_ID"] = p.into();
        v["group_ID"] = (p / 3).into();
        v["cell_ID"] = (p % 3).into();
    }
    if let Some(bw) = a.bw {
        set_bw(&mut v, bw);
    }
    if let Some(d) = a.dl_ul_assign {
        v["DLULAssign"] = d.into();
    }
    if let Some(t) = a.type_mode {
        v["type_mode"] = t.into();
    }
    if let Some(d) = a.duplex_mode {
        v["duplexMode"] = d.into();
    }
    if let Some(n) = a.earfcn {
        v["EARFCN"] = n.into();
    }
    if let Some(h) = a.harq {
        v["HARQ"] = u8::from(h == OnOff::On).into();
    }
    if let Some(n) = a.antennas_tx {
        v["numAntennaTX"] = n.into();
        if a.trans_mode.is_none() {
            v["trans_mode"] = (if n == 2 { 2 } else { 1 }).into();
        }
    }
    if let Some(n) = a.antennas_rx {
        v["numAntennaRX"] = n.into();
    }
    if let Some(m) = a.trans_mode {
        v["trans_mode"] = m.into();
    }
    // RNTI follows the MAC's node plan (0x0100 + node) unless the file set one.
    if a.control_file.is_none() {
        let node = a
            .node
            .unwrap_or_else(|| tun_ip(&a.tun_addr).map_or(9, |(ip, _)| ip.octets()[3]));
        v["RNTI"] = (0x0100 + u16::from(node)).into();
    }
    Control::from_value(&v).map_err(|e| anyhow::anyhow!("{e}"))
}

fn tun_ip(s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, p) = s.split_once('/').unwrap_or((s, "24"));
    let ip: Ipv4Addr = ip
        .parse()
        .with_context(|| format!("--tun-addr {s}: not an IPv4 address"))?;
    let p: u8 = p
        .parse()
        .with_context(|| format!("--tun-addr {s}: bad prefix"))?;
    if p > 32 {
        bail!("--tun-addr {s}: prefix above 32");
    }
    Ok((ip, p))
}

/// Runs `ferry modem`.
pub fn run(a: ModemArgs) -> anyhow::Result<()> {
    let control = build_control(&a)?;
    let routes = match &a.routes {
        Some(r) => {
            let v: serde_json::Value =
                serde_json::from_str(r).context("--routes: not JSON ([[destID, nexthop], ...])")?;
            Some(RouteList::from_value(&v).map_err(|e| anyhow::anyhow!("--routes: {e}"))?)
        }
        None => None,
    };
    let (tun_addr, tun_prefix) = tun_ip(&a.tun_addr)?;
    let radio = match a.legacy_radio {
        Some(r) => RadioSpec::Legacy {
            bind: a.bind,
            radio: r,
            number: a.legacy_number,
            sample_rate: control.bandwidth.sample_rate_hz() as u32,
        },
        None => RadioSpec::Link {
            control: a.radio_control.clone(),
            radio: a.radio.clone(),
            bind: a.bind,
            auth: crate::cmd_air::link_auth(a.key.as_ref(), &a.radio_identity)?,
        },
    };
    let opts = ModemOptions {
        control,
        start: match a.start {
            StartMode::Cold => Some(0),
            StartMode::Warm => Some(1),
            StartMode::Wait => None,
        },
        shadow: a.shadow,
        routes,
        radio,
        tun: (!a.no_tun).then(|| a.tun.clone()),
        tun_addr,
        tun_prefix,
        mtu: a.mtu,
        control_socket: a.control_socket.clone(),
        forward_bind: a.forward_bind,
        forward_allow: a.forward_allow.clone(),
        fronthaul_mtu: a.fronthaul_mtu,
        tx_lead: a.tx_lead.clamp(1, 19),
        discovery_period: a.discovery_period_ms.max(10),
        grant_delay: a.grant_delay,
        search_half_frames: a.search_half_frames.clamp(1, 40),
        duration: a.duration.map(Duration::from_secs_f64),
        node: a.node,
        realtime: (a.rt_priority > 0).then_some(a.rt_priority),
        release_grace: Duration::from_millis(a.release_grace_ms),
        hot_standby: a.hot_standby,
    };
    let mut m = Modem::new(opts).context("starting the modem")?;
    m.run().context("modem")?;
    let st = m.status();
    let (sync_ms, first_ms) = m.start_figures();
    let carrier = m
        .carrier()
        .map(|c| json!({"band": c.band, "earfcn": c.earfcn, "dl_hz": c.dl_hz, "ul_hz": c.ul_hz}));
    let summary = json!({
        "sync_ms": sync_ms, "first_delivery_ms": first_ms, "carrier": carrier, "status": st,
    });
    println!("{summary}");
    Ok(())
}

/// `--workmode`: a number (validated with the rest of the Control) or `auto` (3).
fn parse_workmode(s: &str) -> Result<u8, String> {
    match s {
        "auto" => Ok(3),
        n => n
            .parse()
            .map_err(|_| format!("{n:?}: workmode is 0, 1, 2, 3 or auto")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_workmode;

    #[test]
    fn workmode_takes_a_number_or_auto() {
        assert_eq!(parse_workmode("auto"), Ok(3));
        assert_eq!(parse_workmode("1"), Ok(1));
        // Range is the Control's to check (with every other field); text is refused here.
        assert_eq!(parse_workmode("7"), Ok(7));
        assert!(parse_workmode("master").is_err());
    }
}
