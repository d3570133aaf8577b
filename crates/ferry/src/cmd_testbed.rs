//! `ferry testbed up|down|status|exec`: the thesis topology as network namespaces.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ferry_testbed::{netns, Topology, UpOutcome, DEFAULT_PREFIX};

/// Arguments of `ferry testbed`.
#[derive(Args)]
#[command(after_help = "\
Hosts (namespaces <prefix>-NAME): server1, server2 (the baseband pool), server3 (far end),
server4 (relay receiver), radio (the radio room running `ferry air`), and <prefix>-sw holding
the two bridges: `fh` (fronthaul, the thesis' gigabit switch, each server's eth3) and `mgmt`
(management LAN for agents and radio link control).

Fronthaul addresses: pool radio 192.168.10.2; server1/server2 eth3 192.168.10.11/.12
(permanent) and parked at 192.168.20.1/.2 until DS moves 192.168.10.1 onto one of them;
server3 192.168.13.1 (its radio .13.2); server4 192.168.14.1 (its radio .14.2).
Management: 10.99.0.1-4 for server1-4, 10.99.0.10 for the radio room.

Examples:
  sudo ferry testbed up
  sudo ferry testbed status --json
  sudo ferry testbed exec server3 -- ping -c 3 192.168.13.2
  sudo ferry testbed down")]
pub struct TestbedArgs {
    /// Namespace prefix; lets a second testbed (e.g. tests) run beside the demo.
    #[arg(long, global = true, default_value = DEFAULT_PREFIX)]
    prefix: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Build the testbed (idempotent: a healthy one is left alone, a broken one rebuilt).
    Up,
    /// Remove every namespace of the testbed and stop what runs inside (works after a crash).
    Down,
    /// Show namespaces, interfaces, addresses and processes.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a program inside a host's namespace (no shell involved).
    Exec {
        /// Host: server1, server2, server3, server4 or radio.
        host: String,
        /// Program and its arguments.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

/// Runs `ferry testbed`.
pub fn run(args: TestbedArgs) -> anyhow::Result<()> {
    let topo = Topology::thesis(&args.prefix)?;
    match args.action {
        Action::Up => {
            let outcome = netns::up(&topo)?;
            let what = match outcome {
                UpOutcome::Created => "created",
                UpOutcome::Rebuilt => "rebuilt (leftovers of an earlier run were removed)",
                UpOutcome::AlreadyUp => "already up, nothing changed",
            };
            println!("testbed '{}' {what}", topo.prefix);
            print_state(&netns::check(&topo));
        }
        Action::Down => {
            let removed = netns::down(&topo.prefix)?;
            if removed.is_empty() {
                println!("testbed '{}' was not up", topo.prefix);
            } else {
                println!(
                    "removed {} namespaces: {}",
                    removed.len(),
                    removed.join(" ")
                );
            }
        }
        Action::Status { json } => {
            netns::require_root().or_else(|e| {
                // Reading /run/netns works unprivileged, but `ip -n` does not.
                eprintln!("note: {e}; showing what can be seen");
                Ok::<_, anyhow::Error>(())
            })?;
            let st = netns::check(&topo);
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print_state(&st);
            }
        }
        Action::Exec { host, argv } => {
            let Some(h) = topo.host(&host) else {
                bail!("unknown host {host:?}: use server1, server2, server3, server4 or radio");
            };
            netns::require_root()?;
            let status = netns::command_in(&h.ns, &argv[0])
                .args(&argv[1..])
                .status()
                .with_context(|| format!("running {:?} in {}", argv[0], h.ns))?;
            std::process::exit(status.code().unwrap_or(1));
        }
    }
    Ok(())
}

fn print_state(st: &netns::TestbedState) {
    if st.absent() {
        println!("testbed '{}' is down", st.prefix);
        return;
    }
    println!(
        "switch namespace: {}",
        if st.switch_present {
            "present"
        } else {
            "MISSING"
        }
    );
    for h in &st.hosts {
        let procs = if h.pids.is_empty() {
            String::new()
        } else {
            format!("  ({} processes)", h.pids.len())
        };
        println!("{:<8} {:<20}{}", h.name, h.ns, procs);
        for i in h.ifaces.iter().filter(|i| i.name != "lo") {
            println!(
                "         {:<6} {:<8} {}",
                i.name,
                i.state,
                i.addrs.join(" ")
            );
        }
        for m in &h.missing {
            println!("         MISSING: {m}");
        }
    }
    for s in &st.strays {
        println!("stray namespace: {s} (remove with `ferry testbed down`)");
    }
    if st.healthy() {
        println!("healthy");
    }
}
