//! `ferry`: the single binary. Each subcommand lives in its own module.

use clap::{Parser, Subcommand};

mod cmd_agent;
mod cmd_air;
mod cmd_bench;
mod cmd_ctl;
mod cmd_demo;
mod cmd_demo_pool;
mod cmd_modem;
mod cmd_phy;
mod cmd_pool;
mod cmd_probe;
mod cmd_radiohead;
mod cmd_testbed;
mod cmd_web;
mod phy_plot;
mod pool_load;

/// Live migration of a real-time LTE-numerology radio task between baseband-pool servers.
#[derive(Parser)]
#[command(name = "ferry", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The real-time D2D / relay modem: PHY + MAC over a radio link, TUN, control socket.
    Modem(cmd_modem::ModemArgs),
    /// Physical-layer tools: numerology tables, loopback BLER, cell-search timing.
    Phy(cmd_phy::PhyArgs),
    /// The per-server agent (thesis destination controller) on ZeroMQ.
    Agent(cmd_agent::AgentArgs),
    /// The operator console and scriptable client of the agents (DS KL M MB DSR KR).
    Ctl(cmd_ctl::CtlArgs),
    /// The 1 ms UDP sequence probe: `send` from the far end, `echo` on pool servers.
    Probe(cmd_probe::ProbeArgs),
    /// The thesis testbed as network namespaces: up, down, status, exec (needs root).
    Testbed(cmd_testbed::TestbedArgs),
    /// Emulated radio room: N210-class radios on one air channel and sample clock.
    Air(cmd_air::AirArgs),
    /// Operate radios through link control: discover, status, link, unlink, shadow, switch-at.
    Radio(cmd_air::RadioArgs),
    /// One radio served like `ferry air`'s, with real hardware behind it: a USRP through UHD
    /// (build with --features uhd) or a cabled-loopback model.
    Radiohead(cmd_radiohead::RadioHeadArgs),
    /// The thesis experiment end to end: migrations with real ping and the UDP sequence probe,
    /// beside table 3-4 (needs root); `demo relay` for chapter 4.
    Demo(cmd_demo::DemoArgs),
    /// Benchmarks in the testbed: `bench migrate --runs N --method legacy|mbb|both`.
    Bench(cmd_bench::BenchArgs),
    /// The live web view of a running testbed (read-only; loopback by default).
    Web(cmd_web::WebArgs),
    /// The baseband pool: `pool simulate` plays the scheduler over a tidal day at scale;
    /// `pool run` is the controller on etcd; status, drain, policy for the operator.
    Pool(cmd_pool::PoolArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Modem(args) => cmd_modem::run(args),
        Command::Phy(args) => cmd_phy::run(args),
        Command::Agent(args) => cmd_agent::run(args),
        Command::Ctl(args) => cmd_ctl::run(args),
        Command::Testbed(args) => cmd_testbed::run(args),
        Command::Probe(args) => cmd_probe::run(args),
        Command::Air(args) => cmd_air::run_air(args),
        Command::Radio(args) => cmd_air::run_radio(args),
        Command::Radiohead(args) => cmd_radiohead::run(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Pool(args) => cmd_pool::run(args),
        Command::Bench(args) => cmd_bench::run(args),
        Command::Web(args) => cmd_web::run(args),
    }
}
