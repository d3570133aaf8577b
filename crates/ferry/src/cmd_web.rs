//! `ferry web`: the live web view of a running testbed (read-only), polling link control
//! and, with the agents' key, the agents. `ferry demo --web` starts the same server fed by the
//! demo's live events as well.

use anyhow::{bail, Context};
use clap::Args;
use ferry_web::{Hub, Targets, View, WebServer};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `ferry web`.
#[derive(Args)]
#[command(after_help = "\
Open http://127.0.0.1:8080/ in a browser. The page updates live (server-sent events) and
offers no action. Every asset comes from the binary. Example, next to `ferry testbed up`:
  ferry web --netns ferry-server3 --radio-control tcp://10.99.0.10:5550 \\
    --key k.hex --agent server1=tcp://10.99.0.1:5555 --agent server2=tcp://10.99.0.2:5555
See docs/WEB.md.")]
pub struct WebArgs {
    /// Address to serve on (loopback by default; another needs --allow-remote).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Serve on a non-loopback address (the view is read-only, but shows the testbed).
    #[arg(long)]
    pub allow_remote: bool,
    /// Link-control endpoint of the radios to poll.
    #[arg(long)]
    pub radio_control: Option<String>,
    /// An agent to poll, NAME=ENDPOINT (repeatable; needs --key).
    #[arg(long = "agent", value_name = "NAME=ENDPOINT")]
    pub agents: Vec<String>,
    /// The agents' shared key file (the same as `ferry ctl --key`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The radio room's link-control key file (default: --key, as in the testbed); link
    /// control answers `status` only to signed requests.
    #[arg(long)]
    pub radio_key: Option<PathBuf>,
    /// The radio room's identity (`ferry air --identity`).
    #[arg(long, default_value = ferry_radio::config::DEFAULT_AIR_IDENTITY)]
    pub radio_identity: String,
    /// Network namespace to poll from (the testbed's management network is reached from
    /// any server's namespace, e.g. ferry-server3).
    #[arg(long)]
    pub netns: Option<String>,
    /// Live clients served at once.
    #[arg(long, default_value_t = ferry_web::MAX_LIVE_CLIENTS)]
    pub max_clients: usize,
}

/// Refuses a non-loopback address unless asked for.
pub fn check_addr(addr: SocketAddr, allow_remote: bool) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "{addr} is not a loopback address: the view shows the testbed to anyone who can reach it; \
             pass --allow-remote if that is what you want"
        );
    }
    Ok(())
}

/// Starts the view's server on `addr` for `hub`, printing where to open it.
pub fn serve(addr: SocketAddr, hub: Hub, max_clients: usize) -> anyhow::Result<WebServer> {
    let server = WebServer::start(addr, hub, max_clients).context("starting the web view")?;
    eprintln!("web view: http://{}/", server.addr());
    Ok(server)
}

/// Runs `ferry web`.
pub fn run(args: WebArgs) -> anyhow::Result<()> {
    check_addr(args.http, args.allow_remote)?;
    let mut agents = Vec::new();
    for a in &args.agents {
        let Some((n, e)) = a.split_once('=') else {
            bail!("--agent wants NAME=ENDPOINT, got {a:?}");
        };
        agents.push((n.to_string(), e.to_string()));
    }
    if !agents.is_empty() && args.key.is_none() {
        bail!("--agent needs --key (the agents answer only signed requests)");
    }
    let key = args
        .key
        .as_ref()
        .map(|p| crate::cmd_agent::load_key(p))
        .transpose()?;
    let mut view = View::thesis();
    view.sources = [
        args.radio_control
            .as_ref()
            .map(|e| format!("link control status at {e}")),
        (!agents.is_empty()).then(|| format!("agents' status ({} agents)", agents.len())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let targets = Targets {
        netns: args.netns.clone(),
        radio_control: args.radio_control.clone(),
        agents,
        key,
        radio_auth: crate::cmd_air::link_auth(
            args.radio_key.as_ref().or(args.key.as_ref()),
            &args.radio_identity,
        )?,
    };
    let hub = Hub::start(view, Some(targets));
    let server = serve(args.http, hub, args.max_clients)?;
    server.wait();
    Ok(())
}
