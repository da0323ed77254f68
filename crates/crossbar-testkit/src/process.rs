//! The real `crossbar` binary as a child process: started in a working directory, its first
//! stdout line read (`crossbar listening on URL` for `serve`), killed when dropped.
//!
//! The binary's path comes from the caller: `CARGO_BIN_EXE_crossbar` exists only while the
//! `crossbar` crate's own tests are compiled.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What `crossbar serve` prints first, before the URL it listens on.
const LISTENING: &str = "crossbar listening on ";

/// What `crossbar serve` discovers providers from when it has no configuration (see
/// `config/discover.rs`): none of it may reach a test, which expects the offline catalog.
const CLOUD_CREDENTIALS: &[&str] = &[
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_FOUNDRY_API_KEY",
    "ANTHROPIC_FOUNDRY_RESOURCE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_CLOUD_REGION",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GCLOUD_PROJECT",
    "CLOUDSDK_CONFIG",
    "CLOUDSDK_CORE_PROJECT",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
];

/// `bin` run in `dir` with nothing from the environment that would point it at a real provider,
/// another config, gateway, store or collector; stdin and stderr closed; killed when dropped.
pub fn command(bin: impl AsRef<Path>, dir: &Path) -> Command {
    let mut command = Command::new(bin.as_ref());
    command.current_dir(dir);
    for credential in CLOUD_CREDENTIALS {
        command.env_remove(credential);
    }
    command
        .env_remove("CROSSBAR_CONFIG")
        .env_remove("CROSSBAR_GATEWAY")
        .env_remove("CROSSBAR_GATEWAY_KEY")
        .env_remove("CROSSBAR_AGENT_STORE")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Where the process runs: a temporary directory it owns, or the caller's.
enum Workdir {
    Owned(tempfile::TempDir),
    Borrowed(PathBuf),
}

/// A running `crossbar` process and the first line it printed.
pub struct GatewayProcess {
    child: Child,
    line: String,
    dir: Workdir,
}

impl GatewayProcess {
    /// `bin ARGS` in a fresh temporary directory holding `files` (name, contents).
    pub async fn start(bin: impl AsRef<Path>, files: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let mut process = Self::spawn(command(bin, dir.path()).args(args)).await;
        process.dir = Workdir::Owned(dir);
        process
    }

    /// `bin ARGS` in `dir`, which the caller keeps.
    pub async fn start_in(bin: impl AsRef<Path>, dir: &Path, args: &[&str]) -> Self {
        Self::spawn(command(bin, dir).args(args)).await
    }

    /// Spawns a prepared command (see [`command`]) and reads its first stdout line.
    pub async fn spawn(command: &mut Command) -> Self {
        let dir = command
            .as_std()
            .get_current_dir()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next_line().await.unwrap().unwrap_or_default();
        Self {
            child,
            line: line.trim().to_owned(),
            dir: Workdir::Borrowed(dir),
        }
    }

    /// The first line the process printed, trimmed.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The URL of `crossbar listening on URL`; panics on any other first line.
    pub fn url(&self) -> &str {
        self.line
            .strip_prefix(LISTENING)
            .unwrap_or_else(|| panic!("unexpected first line: {}", self.line))
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        match &self.dir {
            Workdir::Owned(dir) => dir.path(),
            Workdir::Borrowed(dir) => dir,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Sends SIGTERM (shutdown with draining), as an orchestrator would.
    pub fn terminate(&self) {
        signal(self.id(), "-TERM");
    }

    /// Sends SIGKILL: the process dies without a chance to clean up.
    pub fn kill_hard(&self) {
        signal(self.id(), "-KILL");
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        self.child.wait().await.unwrap()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub async fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill().await
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to `pid` with kill(1); panics if that fails.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}: {status}");
}
