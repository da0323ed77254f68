//! Hot reload: on SIGHUP, on `POST /admin/reload` and when the configuration file changes, the
//! file is parsed and validated completely and its router built (starting the simulators it
//! needs); only then is the new app swapped in, as one pointer under a lock. A request takes
//! the app current when it arrives and finishes on it, so in-flight requests end on the old
//! configuration. The new router takes over the statistics and breakers of the deployments
//! both have ([`Router::carry_from`]). An invalid file changes nothing: it is logged, counted
//! (`crossbar_config_reloads_total{result="invalid"}`) and the admin API answers with the error.
//!
//! Reloads run one at a time on one task, whatever asked for them. The store, Redis, the
//! trace exporter and the listener's limits are opened once: a change to them is reported as
//! needing a restart and the running values stay (see [`RESTART_ONLY`]).
//!
//! The app is behind a `std` `RwLock` rather than `arc-swap`: a read is one uncontended lock
//! and an `Arc` clone per request, and the crate needs no new dependency.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router as HttpRouter;
use axum::extract::Request;
use crossbar_core::Error;
use crossbar_core::config::Config;
use crossbar_core::router::Router;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt as _;

use crate::bootstrap::{Gateway, Sims, reloaded_state, sim_settings, start_sims};
use crate::metering::{Background, Metering};
use crate::state::AppState;

/// Settings read once at start: what they were then stays until a restart.
pub const RESTART_ONLY: &[&str] = &[
    "server.listen",
    "server.shutdown_grace_s",
    "server.header_read_timeout_s",
    "server.body_read_timeout_s",
    "server.max_connections",
    "store",
    "redis",
    "telemetry",
    "agents",
];

/// How often the file is read to see whether it changed. A change is applied once the file
/// reads the same on two polls in a row, so a file caught half-written is never loaded.
const POLL: Duration = Duration::from_secs(1);

/// Reload requests waiting for the reloading task, at most.
const QUEUE: usize = 16;

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `POST /admin/reload`.
    Admin,
    /// The file changed.
    Watch,
}

impl Trigger {
    /// Who the audit log names for a reload this trigger caused.
    fn who(self) -> crate::audit::Who {
        let (actor, source) = match self {
            Self::Signal => ("signal", "SIGHUP"),
            Self::Admin => ("admin", "POST /admin/reload"),
            Self::Watch => ("config-watch", "file"),
        };
        crate::audit::Who {
            actor,
            source: source.to_owned(),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "signal",
            Self::Admin => "admin",
            Self::Watch => "watch",
        }
    }
}

/// The last file that was refused, and why.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Rejection {
    /// sha256 of the refused file, absent when it could not be read.
    pub sha256: Option<String>,
    pub error: String,
    pub at_ms: i64,
    pub trigger: Trigger,
}

/// The active configuration, as `GET /v1/crossbar/config` shows it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Version {
    /// The file it was read from (or how it was found, without one).
    pub origin: String,
    /// sha256 of the file's text; absent without a file.
    pub sha256: Option<String>,
    /// When it was loaded (Unix milliseconds).
    pub loaded_at_ms: i64,
    /// Configurations swapped in since start.
    pub reloads: u64,
    /// Files refused since start.
    pub rejected: u64,
    /// What loaded the active configuration (absent for the one loaded at start).
    pub trigger: Option<Trigger>,
    /// Whether the file is watched for changes.
    pub watching: bool,
    /// Settings the file changed that keep their start-up value until a restart.
    pub needs_restart: Vec<String>,
    /// The last refused file, if any since start.
    pub last_error: Option<Rejection>,
}

/// What a reload did.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Reloaded {
    /// `false` when the file was the active one already: nothing was swapped.
    pub changed: bool,
    /// Deployments whose statistics and breaker carried over, by id.
    pub carried: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Settings changed in the file that need a restart to apply.
    pub needs_restart: Vec<String>,
    pub config: Version,
}

type Reply = oneshot::Sender<Result<Reloaded, Error>>;

/// Asks for reloads and reads the active version; held by the app state and the signal task.
#[derive(Clone)]
pub struct Handle {
    requests: mpsc::Sender<(Trigger, Reply)>,
    version: Arc<RwLock<Version>>,
}

impl Handle {
    /// The active configuration's version.
    pub fn version(&self) -> Version {
        read(&self.version).clone()
    }

    /// Reloads the file and waits for the outcome; an error says why nothing changed.
    pub async fn reload(&self, trigger: Trigger) -> Result<Reloaded, Error> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send((trigger, reply))
            .await
            .map_err(|_| Error::internal("The configuration reloader has stopped."))?;
        outcome
            .await
            .map_err(|_| Error::internal("The configuration reloader has stopped."))?
    }
}

/// A gateway whose configuration can be reloaded while it serves.
pub struct Reloadable {
    handle: Handle,
    app: Arc<RwLock<HttpRouter>>,
    metering: Arc<Metering>,
    _tasks: Vec<Background>,
}

impl Reloadable {
    /// Takes over `gateway`, built from `config`, read from `file` (its path and text; `None`
    /// when the configuration came from no file, and then nothing can be reloaded). Starts the
    /// reloading task, the file watcher and, on Unix, the SIGHUP handler.
    pub fn start(
        mut gateway: Gateway,
        config: &Config,
        file: Option<(PathBuf, String)>,
    ) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::channel(QUEUE);
        let version = Arc::new(RwLock::new(Version {
            origin: config.origin.clone(),
            sha256: file.as_ref().map(|(_, text)| sha256(text)),
            loaded_at_ms: crossbar_store::now_ms(),
            reloads: 0,
            rejected: 0,
            trigger: None,
            watching: file.is_some(),
            needs_restart: Vec::new(),
            last_error: None,
        }));
        let handle = Handle {
            requests,
            version: Arc::clone(&version),
        };
        gateway.state.reload = Some(handle.clone());
        let app = Arc::new(RwLock::new(crate::app::app(gateway.state.clone())));
        let metering = Arc::clone(&gateway.state.metering);
        let mut sims: Sims = HashMap::new();
        for provider in &config.providers {
            let name = provider.name.get_ref();
            if let (Some(settings), Some(sim)) = (sim_settings(provider), gateway.sims.remove(name))
            {
                sims.insert(name.clone(), (settings, sim));
            }
        }
        let mut tasks = Vec::new();
        let path = file.as_ref().map(|(path, _)| path.clone());
        let reloader = Reloader {
            path: path.clone(),
            started: file
                .as_ref()
                .map(|(_, text)| restart_only(text))
                .unwrap_or_default(),
            grace: Duration::from_secs(config.server.shutdown_grace_s()),
            redis_interval: config.redis.sync_interval(),
            state: gateway.state.clone(),
            health_sync: gateway.health_sync.take(),
            sims,
            app: Arc::clone(&app),
            version,
            _gateway: gateway,
        };
        tasks.push(Background(tokio::spawn(reloader.run(queue))));
        if let Some(path) = path {
            tasks.push(Background(tokio::spawn(watch(path, handle.clone()))));
        }
        #[cfg(unix)]
        tasks.push(Background(tokio::spawn(on_hangup(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
            handle.clone(),
        ))));
        Ok(Self {
            handle,
            app,
            metering,
            _tasks: tasks,
        })
    }

    /// The app to serve: each request runs on the app current when it arrives.
    pub fn app(&self) -> HttpRouter {
        let current = Arc::clone(&self.app);
        HttpRouter::new().fallback_service(tower::service_fn(move |request: Request| {
            let app = read(&current).clone();
            app.oneshot(request)
        }))
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Writes every queued usage record: call after the server's drain, before exit.
    pub async fn flush(&self) {
        self.metering.flush().await;
    }
}

/// The task that owns the running gateway's parts and swaps configurations.
struct Reloader {
    path: Option<PathBuf>,
    /// The restart-only settings as the process started with them.
    started: HashMap<&'static str, Option<toml::Value>>,
    /// How long simulators a reload retires keep answering the old router's calls.
    grace: Duration,
    redis_interval: Duration,
    state: AppState,
    health_sync: Option<Background>,
    sims: Sims,
    app: Arc<RwLock<HttpRouter>>,
    version: Arc<RwLock<Version>>,
    /// Keeps the store, its writer and retention alive.
    _gateway: Gateway,
}

impl Reloader {
    async fn run(mut self, mut queue: mpsc::Receiver<(Trigger, Reply)>) {
        while let Some((trigger, reply)) = queue.recv().await {
            let outcome = self.reload(trigger).await;
            let _ = reply.send(outcome);
        }
    }

    async fn reload(&mut self, trigger: Trigger) -> Result<Reloaded, Error> {
        let Some(path) = self.path.clone() else {
            return Err(Error::invalid_request(
                "There is no configuration file to reload: the gateway started without one.",
            )
            .with_code("no_config_file"));
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                return Err(self.refuse(trigger, None, format!("{}: {error}", path.display())));
            }
        };
        let sha = sha256(&text);
        if read(&self.version).sha256.as_deref() == Some(sha.as_str()) {
            metrics::counter!("crossbar_config_reloads_total", "result" => "unchanged")
                .increment(1);
            return Ok(Reloaded {
                changed: false,
                carried: Vec::new(),
                added: Vec::new(),
                removed: Vec::new(),
                needs_restart: Vec::new(),
                config: read(&self.version).clone(),
            });
        }
        let config = Config::from_toml(&text, &path.display().to_string())
            .map_err(|e| self.refuse(trigger, Some(&sha), e.0))?;
        let (started, endpoints) = start_sims(&config, &self.sims)
            .await
            .map_err(|e| self.refuse(trigger, Some(&sha), e.0))?;
        let router = Router::from_config(&config, &endpoints)
            .map_err(|e| self.refuse(trigger, Some(&sha), e.0))?;
        // Valid: from here on nothing fails.
        let router = Arc::new(router);
        if let Some(shared) = &self.state.shared {
            router.share_state(Arc::clone(shared) as _);
        }
        let old = Arc::clone(&self.state.router);
        let carried = router.carry_from(&old);
        let ids = |r: &Router| r.deployments().map(|d| d.id()).collect::<Vec<_>>();
        let (before, after) = (ids(&old), ids(&router));
        let added: Vec<String> = after
            .iter()
            .filter(|id| !before.contains(id))
            .cloned()
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|id| !after.contains(id))
            .cloned()
            .collect();
        let needs_restart = self.needs_restart(&text);
        let previous_sha = read(&self.version).sha256.clone();
        self.state = reloaded_state(&self.state, &config, Arc::clone(&router));
        let app = crate::app::app(self.state.clone());
        *self.app.write().unwrap_or_else(PoisonError::into_inner) = app;
        // Only once the swap is done: health published from the router now serving.
        if let Some(shared) = &self.state.shared {
            self.health_sync =
                Some(shared.spawn_health_sync(Arc::clone(&router), self.redis_interval));
        }
        self.keep_sims(&config, started);
        let version = {
            let mut version = self.version.write().unwrap_or_else(PoisonError::into_inner);
            version.origin = config.origin.clone();
            version.sha256 = Some(sha);
            version.loaded_at_ms = crossbar_store::now_ms();
            version.reloads += 1;
            version.trigger = Some(trigger);
            version.needs_restart = needs_restart.clone();
            version.clone()
        };
        metrics::counter!("crossbar_config_reloads_total", "result" => "ok").increment(1);
        crate::audit::record(
            &self.state,
            trigger.who(),
            "config.reload",
            &version.origin,
            Some(serde_json::json!({ "sha256": previous_sha })),
            Some(serde_json::json!({
                "sha256": version.sha256,
                "added": added,
                "removed": removed,
                "needs_restart": needs_restart,
            })),
        )
        .await;
        tracing::info!(
            trigger = trigger.as_str(),
            sha256 = version.sha256.as_deref().unwrap_or_default(),
            carried = carried.len(),
            added = ?added,
            removed = ?removed,
            "configuration reloaded"
        );
        if !needs_restart.is_empty() {
            tracing::warn!(
                settings = ?needs_restart,
                "configuration reloaded, but these settings keep their start-up values until a restart"
            );
        }
        Ok(Reloaded {
            changed: true,
            carried,
            added,
            removed,
            needs_restart,
            config: version,
        })
    }

    /// Records, logs and counts a refused file; the error the admin API answers with.
    fn refuse(&self, trigger: Trigger, sha: Option<&str>, error: String) -> Error {
        metrics::counter!("crossbar_config_reloads_total", "result" => "invalid").increment(1);
        tracing::error!(
            trigger = trigger.as_str(),
            %error,
            "configuration not reloaded: the running one stays"
        );
        let mut version = self.version.write().unwrap_or_else(PoisonError::into_inner);
        version.rejected += 1;
        version.last_error = Some(Rejection {
            sha256: sha.map(str::to_owned),
            error: error.clone(),
            at_ms: crossbar_store::now_ms(),
            trigger,
        });
        Error::invalid_request(format!(
            "The configuration was not reloaded (the running one stays): {error}"
        ))
        .with_code("invalid_config")
    }

    /// The restart-only settings `text` gives other values than the process started with.
    fn needs_restart(&self, text: &str) -> Vec<String> {
        let now = restart_only(text);
        RESTART_ONLY
            .iter()
            .filter(|key| now.get(*key) != self.started.get(*key))
            .map(|key| (*key).to_owned())
            .collect()
    }

    /// Keeps the simulators `config` still uses (with `started` for the new ones); the others
    /// answer the old router's calls for the grace period, then stop.
    fn keep_sims(&mut self, config: &Config, started: Sims) {
        let mut kept: Sims = started;
        for provider in &config.providers {
            let name = provider.name.get_ref();
            if kept.contains_key(name) {
                continue;
            }
            if let Some(settings) = sim_settings(provider)
                && self
                    .sims
                    .get(name)
                    .is_some_and(|(running, _)| *running == settings)
                && let Some(sim) = self.sims.remove(name)
            {
                kept.insert(name.clone(), sim);
            }
        }
        let retired = std::mem::replace(&mut self.sims, kept);
        if !retired.is_empty() {
            let grace = self.grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                drop(retired);
            });
        }
    }
}

/// Reloads when the file's text changes and then stays the same for one poll.
async fn watch(path: PathBuf, handle: Handle) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<String> = None;
    loop {
        tick.tick().await;
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            // Being replaced, or gone: the running configuration stays; look again later.
            previous = None;
            continue;
        };
        let sha = sha256(&text);
        let stable = previous.as_deref() == Some(sha.as_str());
        previous = Some(sha.clone());
        if !stable {
            continue;
        }
        let version = handle.version();
        let refused = version
            .last_error
            .as_ref()
            .and_then(|e| e.sha256.as_deref());
        if version.sha256.as_deref() == Some(sha.as_str()) || refused == Some(sha.as_str()) {
            continue;
        }
        // The outcome is logged and counted by the reloader.
        let _ = handle.reload(Trigger::Watch).await;
    }
}

#[cfg(unix)]
async fn on_hangup(mut signals: tokio::signal::unix::Signal, handle: Handle) {
    while signals.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        let _ = handle.reload(Trigger::Signal).await;
    }
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The restart-only settings of a configuration's text, as written (before `${ENV}`).
fn restart_only(text: &str) -> HashMap<&'static str, Option<toml::Value>> {
    let table: toml::Table = text.parse().unwrap_or_default();
    RESTART_ONLY
        .iter()
        .map(|key| {
            let mut value = Some(toml::Value::Table(table.clone()));
            for part in key.split('.') {
                value = value.and_then(|v| v.get(part).cloned());
            }
            (*key, value)
        })
        .collect()
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(deployments: &[&str], sim: &str) -> String {
        let mut text = String::from("[store]\nenabled = false\n");
        for name in ["a", "b", "c"] {
            text.push_str(&format!(
                "[[providers]]\nname = \"{name}\"\nkind = \"sim\"\ndialect = \"openai\"\nsim = {{ {sim} }}\n"
            ));
        }
        let entries: Vec<String> = deployments
            .iter()
            .map(|p| format!("{{ provider = \"{p}\", target = \"gpt-4o\" }}"))
            .collect();
        text.push_str(&format!(
            "[[models]]\nname = \"m\"\ndeployments = [{}]\n",
            entries.join(", ")
        ));
        text
    }

    #[tokio::test]
    async fn a_reload_swaps_what_changed_and_an_invalid_file_nothing() {
        let dir = std::env::temp_dir().join(format!("crossbar-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crossbar.toml");
        // A store, so the reload is audited.
        let db = dir.join("audit.db");
        let _ = std::fs::remove_file(&db);
        let with_store = |text: String| {
            text.replace(
                "[store]\nenabled = false\n",
                &format!("[store]\nurl = \"{}\"\n", db.display()),
            )
        };
        let first = with_store(config(&["a", "b"], "ttft_ms = 1"));
        std::fs::write(&path, &first).unwrap();
        let loaded = Config::from_toml(&first, "crossbar.toml").unwrap();
        let gateway = Gateway::build(&loaded).await.unwrap();
        let b_url = gateway.sims["b"].base_url();
        let reloadable =
            Reloadable::start(gateway, &loaded, Some((path.clone(), first.clone()))).unwrap();
        let handle = reloadable.handle();
        let start = handle.version();
        assert_eq!(start.sha256.as_deref(), Some(sha256(&first).as_str()));
        assert_eq!((start.reloads, start.rejected, start.trigger), (0, 0, None));

        let same = handle.reload(Trigger::Admin).await.unwrap();
        assert!(!same.changed);
        assert_eq!(same.config.reloads, 0);

        // `b` leaves, `c` arrives, `a`'s simulator changes its settings.
        let second = with_store(config(&["c", "a"], "ttft_ms = 2"));
        std::fs::write(&path, &second).unwrap();
        let done = handle.reload(Trigger::Signal).await.unwrap();
        assert!(done.changed);
        assert_eq!(done.carried, ["m@a"]);
        assert_eq!(done.added, ["m@c"]);
        assert_eq!(done.removed, ["m@b"]);
        assert!(done.needs_restart.is_empty());
        assert_eq!(
            done.config.sha256.as_deref(),
            Some(sha256(&second).as_str())
        );
        assert_eq!(done.config.reloads, 1);
        assert_eq!(done.config.trigger, Some(Trigger::Signal));
        // One audit entry: who (the signal), what (the file's hashes, the deployments).
        let store = crossbar_store::SqlStore::open(&db.display().to_string())
            .await
            .unwrap();
        let audit =
            crossbar_store::AuditStore::list_audit(&store, &crossbar_store::AuditQuery::newest(10))
                .await
                .unwrap();
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!(
            (
                audit[0].actor.as_str(),
                audit[0].action.as_str(),
                audit[0].source.as_str()
            ),
            ("signal", "config.reload", "SIGHUP")
        );
        assert_eq!(audit[0].target, done.config.origin);
        assert_eq!(
            audit[0].before,
            Some(serde_json::json!({ "sha256": sha256(&first) }))
        );
        assert_eq!(
            audit[0].after,
            Some(serde_json::json!({
                "sha256": sha256(&second),
                "added": ["m@c"],
                "removed": ["m@b"],
                "needs_restart": [],
            }))
        );

        // Retired simulators answer the old router's calls for the grace period.
        let retired = reqwest::get(format!("{b_url}/models")).await;
        assert!(retired.is_ok(), "{retired:?}");

        // An invalid file: the error names it, nothing changes.
        std::fs::write(&path, "[[models]]\nname = 3\n").unwrap();
        let refused = handle.reload(Trigger::Admin).await.unwrap_err();
        assert_eq!(refused.code.as_deref(), Some("invalid_config"));
        assert!(
            refused
                .message
                .starts_with("The configuration was not reloaded (the running one stays): "),
            "{}",
            refused.message
        );
        let after = handle.version();
        assert_eq!(after.sha256, done.config.sha256);
        assert_eq!((after.reloads, after.rejected), (1, 1));
        let rejection = after.last_error.unwrap();
        assert_eq!(rejection.trigger, Trigger::Admin);
        assert_eq!(
            rejection.sha256.as_deref(),
            Some(sha256("[[models]]\nname = 3\n").as_str())
        );
        assert!(refused.message.ends_with(&rejection.error));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn restart_only_settings_are_compared_as_written() {
        let before = restart_only(
            "[server]\nlisten = \"127.0.0.1:4000\"\napi_keys = [\"a\"]\n[store]\nurl = \"sqlite://a.db\"\n",
        );
        let after = restart_only(
            "[server]\nlisten = \"127.0.0.1:4001\"\napi_keys = [\"b\"]\n[store]\nurl = \"sqlite://a.db\"\n[redis]\nurl = \"redis://x\"\n",
        );
        let changed: Vec<&str> = RESTART_ONLY
            .iter()
            .copied()
            .filter(|key| before.get(key) != after.get(key))
            .collect();
        assert_eq!(changed, ["server.listen", "redis"]);
    }
}
