//! The pollers: the real sources of the topology. One thread (inside the management
//! network's namespace when given) asks link control for every radio's `status` and each
//! agent for its `status` every [`POLL_EVERY`], and the serving server's agent for
//! `get_control` now and then, and hands the answers to the hub. Every call has a timeout;
//! nothing here is a second source of truth.

use crate::hub::{Hub, Input};
use ferry_ctl::AgentClient;
use ferry_fronthaul::control::{Reply, Request, StatusReport};
use ferry_migrate::auth::AuthKey;
use ferry_migrate::protocol::Request as AgentRequest;
use ferry_radio::client::ControlClient;
use ferry_radio::config::LinkAuth;
use ferry_testbed::live::LiveEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the sources are asked.
pub const POLL_EVERY: Duration = Duration::from_millis(1000);
/// Deadline of each call.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(400);

/// What to poll.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Network namespace to poll from (the demo's management network), if any.
    pub netns: Option<String>,
    /// Link-control endpoint of the radios.
    pub radio_control: Option<String>,
    /// Agents: server name and endpoint.
    pub agents: Vec<(String, String)>,
    /// The agents' key (their `status` is signed like every request); without it agents are
    /// not polled.
    pub key: Option<AuthKey>,
    /// Link-control key and radio-room identity (link control answers only signed
    /// requests).
    pub radio_auth: Option<LinkAuth>,
}

impl Targets {
    /// The targets a demo announces when its testbed is up (its key read from the file).
    pub fn of_testbed(event: &LiveEvent) -> Option<Targets> {
        let LiveEvent::Testbed {
            mgmt_netns,
            radio_control,
            agents,
            key_file,
            ..
        } = event
        else {
            return None;
        };
        let key = key_file.as_ref().and_then(|p| {
            std::fs::read(p)
                .ok()
                .and_then(|b| AuthKey::from_file_contents(&b).ok())
        });
        // The testbed's air signs with the agents' key under the default identity.
        let radio_auth = key.clone().map(|key| LinkAuth {
            key,
            identity: ferry_radio::config::DEFAULT_AIR_IDENTITY.into(),
        });
        Some(Targets {
            netns: Some(mgmt_netns.clone()),
            radio_control: Some(radio_control.clone()),
            agents: agents.clone(),
            key,
            radio_auth,
        })
    }
}

/// Link control's `status` of every radio. The one place the web view talks link control
/// (the radio's request envelope may change; keep it here).
pub fn radio_status(client: &ControlClient) -> Result<Vec<StatusReport>, String> {
    match client.request(&Request::Status { radio: None }) {
        Ok(Reply::Status { radios, .. }) => Ok(radios),
        Ok(other) => Err(format!("unexpected reply {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// An agent's answer to `request`: its `result` when ok, else why not.
fn agent_call(
    client: &mut AgentClient,
    request: &AgentRequest,
) -> Result<serde_json::Value, String> {
    match client.call(request) {
        Ok(r) if r.ok => Ok(r.result.unwrap_or(serde_json::Value::Null)),
        Ok(r) => Err(r.error.unwrap_or_else(|| "refused".into())),
        Err(e) => Err(e.to_string()),
    }
}

/// A running poller; drop stops it.
pub struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts polling `targets`, handing the answers to `hub`.
    pub fn start(targets: Targets, hub: Hub) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ferry-web-poll".into())
            .spawn(move || run(targets, &hub, &flag))
            .map_err(|e| tracing::error!("cannot start the web poller: {e}"))
            .ok();
        Poller { stop, thread }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(targets: Targets, hub: &Hub, stop: &AtomicBool) {
    if let Some(ns) = &targets.netns {
        // ZeroMQ's I/O threads are started by the contexts below, after this, so they
        // inherit the namespace.
        if let Err(e) = ferry_testbed::video::enter_netns(ns) {
            hub.send(Input::Radios(Err(format!(
                "cannot enter namespace {ns}: {e}"
            ))));
            return;
        }
    }
    let radio = targets.radio_control.as_ref().map(|e| {
        ControlClient::new(e.clone(), CALL_TIMEOUT)
            .with_auth(targets.radio_auth.clone())
            .with_name("web")
    });
    let mut agents: Vec<(String, AgentClient)> = match &targets.key {
        Some(key) => targets
            .agents
            .iter()
            .map(|(n, e)| {
                (
                    n.clone(),
                    AgentClient::named(n.clone(), e.clone(), key.clone(), CALL_TIMEOUT),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Some(c) = &radio {
            hub.send(Input::Radios(radio_status(c)));
        }
        let mut serving = None;
        for (name, client) in &mut agents {
            let status = agent_call(client, &AgentRequest::Observe);
            let mode = status
                .as_ref()
                .ok()
                .and_then(|v| v.pointer("/modem/mode"))
                .and_then(|m| m.as_str());
            // A modem without cutover state (legacy) serves when it runs.
            if matches!(mode, Some("active" | "release_armed"))
                || status
                    .as_ref()
                    .ok()
                    .is_some_and(|v| v["d2d"] == true && v["modem"].is_null())
            {
                serving.get_or_insert(name.clone());
            }
            hub.send(Input::Agent {
                server: name.clone(),
                status,
            });
        }
        // Control changes only with a new task: read it every 4th round.
        if round % 4 == 0 {
            if let Some((_, c)) = agents.iter_mut().find(|(n, _)| Some(n) == serving.as_ref()) {
                if let Ok(v) = agent_call(c, &AgentRequest::GetControl) {
                    hub.send(Input::Control(v));
                }
            }
        }
        round += 1;
        let mut slept = Duration::ZERO;
        while slept < POLL_EVERY && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            slept += Duration::from_millis(50);
        }
    }
}
