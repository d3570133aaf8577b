//! `ferry agent`: the per-server daemon (thesis 3.5) — settings from the command line, then
//! the service loop of `ferry_agent`. Also the host options shared with `ferry ctl`.

use anyhow::bail;
use clap::{Args, ValueEnum};
use ferry_agent::{Addressing, AgentSettings, HostConfig, ModemCommand, RadioAccess};
use ferry_migrate::auth::{AuthKey, DEFAULT_WINDOW_MS};
use ferry_migrate::AgentConfig;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RadioKind {
    /// Address-bound radio: streams to whoever holds the active eth3 address (thesis).
    Legacy,
    /// A radio moved by `ferry air` link control.
    Controlled,
    /// No radio; probes succeed (see --dry-no-radio).
    Dry,
}

/// Options describing this pool server (shared by `ferry agent` and `ferry ctl`).
#[derive(Args, Clone)]
pub struct HostArgs {
    /// Keep addresses in memory and use a dry radio: run anywhere, no root (tests, demos).
    #[arg(long)]
    pub dry: bool,
    /// With --dry: discovery finds no radio (exercises the thesis' probe failure).
    #[arg(long)]
    pub dry_no_radio: bool,
    /// Fronthaul interface (thesis: eth3).
    #[arg(long, default_value = "eth3")]
    pub eth3: String,
    /// TUN interface of the modem.
    #[arg(long, default_value = "tun0")]
    pub tun: String,
    /// Prefix length of the TUN's address (its connected route). 24: the thesis' one task
    /// per server; a server hosting several cells gives each its own subnet (the pool
    /// testbed: a /30 per cell, the far end holding the other address).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
    pub tun_prefix: u8,
    /// eth3 address the radio talks to.
    #[arg(long, default_value = "192.168.10.1")]
    pub active: Ipv4Addr,
    /// This server's parked eth3 address (testbed: server1 192.168.20.1, server2 .20.2).
    #[arg(long, default_value = "192.168.20.2")]
    pub parked: Ipv4Addr,
    /// How the radio is reached.
    #[arg(long, value_enum, default_value = "legacy")]
    pub radio: RadioKind,
    /// Legacy radio's fronthaul address.
    #[arg(long, default_value = "192.168.10.2:49156")]
    pub radio_addr: SocketAddr,
    /// Local fronthaul socket of the USRP object (controlled radios need a concrete address).
    #[arg(long, default_value = "0.0.0.0:49200")]
    pub fronthaul_bind: SocketAddr,
    /// Link-control endpoint of `ferry air` (controlled radios, and ctl's make-before-break).
    #[arg(long, default_value = "tcp://10.99.0.10:5550")]
    pub radio_control: String,
    /// Radio name at the link control.
    #[arg(long, default_value = "pool")]
    pub radio_name: String,
    /// Link-control key file of the air (mode 0600); also given to the modem it starts.
    #[arg(long)]
    pub radio_key: Option<PathBuf>,
    /// The air's identity (its `ferry air --identity`).
    #[arg(long, default_value = ferry_radio::DEFAULT_AIR_IDENTITY)]
    pub radio_identity: String,
    /// Sample rate of the legacy radio, Hz.
    #[arg(long, default_value_t = 1_920_000)]
    pub rate_hz: u32,
    /// The modem program (e.g. the ferry binary); started with an argument vector.
    #[arg(long)]
    pub modem: Option<PathBuf>,
    /// Arguments put before the agent's own (repeat; e.g. --modem-arg modem).
    #[arg(long = "modem-arg", allow_hyphen_values = true)]
    pub modem_args: Vec<String>,
    /// The modem's control socket.
    #[arg(long, default_value = "/run/ferry/modem.sock")]
    pub modem_socket: PathBuf,
    /// The modem holds the radio link itself (a real `ferry modem`): link_usrp waits for the
    /// modem to report the stream, instead of the agent binding the fronthaul socket.
    #[arg(long)]
    pub usrp_in_modem: bool,
    /// Give the modem its start state over the control socket (set_control, set_routes,
    /// shadow, start) instead of as arguments.
    #[arg(long)]
    pub modem_state_by_socket: bool,
    /// Collector period in ms (thesis: 10 s).
    #[arg(long, default_value_t = 10_000)]
    pub collector_ms: u64,
    /// Wait for one discovery answer, ms.
    #[arg(long, default_value_t = 250)]
    pub probe_ms: u64,
}

impl HostArgs {
    /// The host configuration.
    pub fn host_config(&self) -> anyhow::Result<HostConfig> {
        let mut h = HostConfig::dry();
        h.eth3 = self.eth3.clone();
        h.tun = self.tun.clone();
        h.tun_prefix = self.tun_prefix;
        h.active_addr = self.active;
        h.parked_addr = self.parked;
        h.probe_wait = Duration::from_millis(self.probe_ms);
        h.collector_period = Duration::from_millis(self.collector_ms.max(1));
        h.addressing = if self.dry {
            Addressing::Dry
        } else {
            Addressing::Netlink
        };
        h.radio = match (self.dry, self.radio) {
            (true, _) | (_, RadioKind::Dry) => RadioAccess::Dry {
                present: !self.dry_no_radio,
            },
            (false, RadioKind::Legacy) => RadioAccess::Legacy {
                radio: self.radio_addr,
                bind: self.fronthaul_bind,
                rate_hz: self.rate_hz,
            },
            (false, RadioKind::Controlled) => RadioAccess::Controlled {
                control: self.radio_control.clone(),
                radio: self.radio_name.clone(),
                bind: self.fronthaul_bind,
                auth: self.radio_auth()?,
            },
        };
        h.modem_fronthaul = modem_bind(&self.modem_args);
        h.usrp_in_modem = self.usrp_in_modem;
        h.modem = self.modem.as_ref().map(|p| ModemCommand {
            program: p.clone(),
            args: self.modem_args.clone(),
            socket: self.modem_socket.clone(),
            state_args: !self.modem_state_by_socket,
            radio_key: self.radio_key.clone(),
            radio_identity: self.radio_identity.clone(),
        });
        Ok(h)
    }

    /// The link-control key (refused if other users can read it) and the air's identity.
    pub fn radio_auth(&self) -> anyhow::Result<Option<ferry_radio::LinkAuth>> {
        crate::cmd_air::link_auth(self.radio_key.as_ref(), &self.radio_identity)
    }
}

/// Read and check the shared key file.
pub fn load_key(path: &std::path::Path) -> anyhow::Result<AuthKey> {
    Ok(ferry_auth::load_key_file(path)?)
}

/// Arguments of `ferry agent`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  ferry agent --key /etc/ferry/agent.key --bind tcp://10.99.0.2:5555 \
--parked 192.168.20.2 --modem /usr/bin/ferry --modem-arg modem\n  ferry agent --dry --key k.hex --bind tcp://127.0.0.1:5555   # anywhere, no root"
)]
pub struct AgentArgs {
    /// Shared key file (hex or raw, at least 16 bytes).
    #[arg(long)]
    key: PathBuf,
    /// This agent's identity: requests must name it as their recipient (`ferry ctl
    /// --peer NAME=ENDPOINT`), so a request to one agent cannot be replayed to another.
    #[arg(long, default_value = ferry_ctl::DEFAULT_AGENT_NAME)]
    name: String,
    /// ZeroMQ endpoint to bind (mgmt LAN).
    #[arg(long, default_value = "tcp://0.0.0.0:5555")]
    bind: String,
    /// Print the bound endpoint on stdout once serving (useful with port 0).
    #[arg(long)]
    print_endpoint: bool,
    /// Deadline of each local step, ms.
    #[arg(long, default_value_t = 15_000)]
    step_timeout_ms: u64,
    /// `set_tun_ip` accepts only addresses inside this subnet (and outside the host's
    /// management, fronthaul and parking subnets).
    #[arg(long, default_value = "192.168.40.0/24")]
    task_subnet: ferry_migrate::protocol::Ipv4Subnet,
    /// Lease on what an interrupted migration leaves, ms: a warm destination no controller
    /// armed, or a released source past its fallback grace no controller cleaned, is
    /// stopped (modem, TUN, the radio's RX copy) once no controller has spoken to this
    /// agent for this long (`ferry ctl` renews it every second while it holds a migration).
    /// 0 leaves leftovers to the operator.
    #[arg(long, default_value_t = ferry_migrate::lease::LEASE_MS)]
    lease_ms: u64,
    #[command(flatten)]
    host: HostArgs,
}

/// Runs `ferry agent`.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let key = load_key(&args.key)?;
    if args.host.modem.is_none() {
        tracing::warn!("no --modem given: start_d2d will fail");
    }
    let host = args.host.host_config()?;
    if !ferry_auth::valid_identity(&args.name) {
        bail!(
            "--name {:?}: 1-64 characters of [A-Za-z0-9._:@-]",
            args.name
        );
    }
    let mut agent = AgentConfig {
        active_addr: args.host.active,
        parked_addr: args.host.parked,
        ..AgentConfig::default()
    };
    agent.timeouts.local_ms = args.step_timeout_ms;
    agent.task_subnet = args.task_subnet;
    if args.host.active == args.host.parked {
        bail!("--active and --parked must differ");
    }
    let server = ferry_agent::AgentServer::bind(AgentSettings {
        name: args.name.clone(),
        endpoint: args.bind.clone(),
        key,
        window_ms: DEFAULT_WINDOW_MS,
        lease_ms: args.lease_ms,
        agent,
        host,
    })?;
    if args.print_endpoint {
        println!("{}", server.endpoint());
    }
    let stop = AtomicBool::new(false);
    let s = server.serve(&stop);
    tracing::info!(
        answered = s.answered,
        unauthorized = s.unauthorized,
        raised = s.raised,
        "agent exited"
    );
    Ok(())
}

/// The `--bind IP:PORT` among the modem's arguments (its fronthaul endpoint as the radio
/// sees it), when concrete: the agent reports it dead to the radio when the modem exits.
fn modem_bind(args: &[String]) -> Option<SocketAddr> {
    let v = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--bind=")
            .map(str::to_string)
            .or_else(|| (a == "--bind").then(|| args.get(i + 1).cloned()).flatten())
    })?;
    v.parse::<SocketAddr>()
        .ok()
        .filter(|a| !a.ip().is_unspecified())
}

#[cfg(test)]
mod modem_bind_tests {
    use super::modem_bind;

    #[test]
    fn the_modems_bind_is_found_in_either_form_and_must_be_concrete() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            modem_bind(&v(&["modem", "--bind=192.168.10.11:49200"])),
            Some("192.168.10.11:49200".parse().unwrap())
        );
        assert_eq!(
            modem_bind(&v(&["--radio=pool", "--bind", "10.0.0.1:5"])),
            Some("10.0.0.1:5".parse().unwrap())
        );
        assert_eq!(modem_bind(&v(&["--bind=0.0.0.0:49200"])), None);
        assert_eq!(modem_bind(&v(&["--bind"])), None);
        assert_eq!(modem_bind(&v(&["--forward-bind=1.2.3.4:7000"])), None);
    }
}
