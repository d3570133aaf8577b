//! The HTTP side: axum on a current-thread tokio runtime of its own thread. It serves the
//! page and its script and style from the binary (`include_str!`, no CDN), the current view
//! as JSON (`/state`) and the live view as server-sent events (`/events`). Read-only: it
//! offers no action. SSE clients are capped (over the cap: 503) and a client that falls
//! [`crate::hub::UPDATE_QUEUE`] views behind is dropped (its browser reconnects and starts
//! from the current view).

use crate::hub::Hub;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{broadcast, oneshot, OwnedSemaphorePermit, Semaphore};

/// Live (SSE) clients served at once by default.
pub const MAX_LIVE_CLIENTS: usize = 8;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Failures starting the server.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or its thread could not be started.
    #[error("cannot start the web server: {0}")]
    Start(String),
}

#[derive(Clone)]
struct AppState {
    hub: Hub,
    live_slots: Arc<Semaphore>,
}

/// The page's routes on `hub`, at most `max_live` SSE clients at once.
pub fn router(hub: Hub, max_live: usize) -> Router {
    let state = AppState {
        hub,
        live_slots: Arc::new(Semaphore::new(max_live)),
    };
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/state", get(state_json))
        .route("/events", get(events))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            // Everything comes from here; nothing may be fetched elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:",
            ),
        ],
        body,
    )
        .into_response()
}

async fn state_json(State(s): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        s.hub.snapshot().to_string(),
    )
        .into_response()
}

/// One SSE client's stream: the current view, then each published one, until it lags.
struct Live {
    first: Option<Arc<str>>,
    updates: broadcast::Receiver<Arc<str>>,
    _slot: OwnedSemaphorePermit,
}

async fn events(State(s): State<AppState>) -> Response {
    let Ok(slot) = Arc::clone(&s.live_slots).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live clients; try again later\n",
        )
            .into_response();
    };
    // Subscribe before reading the snapshot so no view falls between them.
    let updates = s.hub.subscribe();
    let live = Live {
        first: Some(s.hub.snapshot()),
        updates,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        let body = match live.first.take() {
            Some(b) => b,
            // Lagged: a slow client is dropped (it reconnects to the current view);
            // Closed: the hub is gone.
            None => live.updates.recv().await.ok()?,
        };
        let event = Event::default().event("state").data(&*body);
        Some((Ok::<Event, Infallible>(event), live))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A running web server; drop shuts it down.
pub struct WebServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WebServer {
    /// Binds `addr` and serves `hub`'s view from a thread of its own.
    pub fn start(addr: SocketAddr, hub: Hub, max_live: usize) -> Result<WebServer, WebError> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| WebError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| WebError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| WebError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| WebError::Start(e.to_string()))?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(hub, max_live);
        let thread = std::thread::Builder::new()
            .name("ferry-web-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("web server: {e}");
                            return;
                        }
                    };
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("web server: {e}");
                    }
                });
            })
            .map_err(|e| WebError::Start(e.to_string()))?;
        Ok(WebServer {
            addr: bound,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open SSE streams would hold a graceful shutdown forever: do not wait for it.
        drop(self.thread.take());
    }
}
