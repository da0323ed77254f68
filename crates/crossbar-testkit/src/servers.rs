//! Real servers the shared-state suites start for themselves: a private `redis-server` on a
//! Unix socket, and a private PostgreSQL cluster a test may stop and start again. Each answers
//! `None` (with a notice) when its binaries are missing, unless CI requires it
//! (`CROSSBAR_REQUIRE_REDIS`, `CROSSBAR_REQUIRE_POSTGRES`), then it panics.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` with no persistence on `<dir>/redis.sock`, killed (SIGKILL) on drop.
pub struct Redis {
    child: Option<Child>,
    dir: PathBuf,
}

impl Redis {
    /// Starts one in `dir` (which the caller keeps); a socket left there by a killed one is
    /// replaced, so the same URL serves again after [`Redis::kill`].
    pub fn start(dir: &Path) -> Option<Self> {
        let socket = dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var_os("CROSSBAR_REQUIRE_REDIS").is_none(),
                    "CROSSBAR_REQUIRE_REDIS is set but redis-server cannot start: {error}"
                );
                eprintln!("skipped: redis-server is not installed ({error})");
                return None;
            }
        };
        for _ in 0..200 {
            if socket.exists() {
                return Some(Self {
                    child: Some(child),
                    dir: dir.to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not open {}", socket.display());
    }

    /// `unix://<dir>/redis.sock`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.dir.join("redis.sock").display())
    }

    /// Kills it at once, as a crash would: nothing it held survives (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private PostgreSQL cluster in `<dir>/pg`, on a free loopback port, stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

/// PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user.
fn as_owner(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Creates and starts a cluster; `dir` must be reachable by the `postgres` user.
    pub fn start(dir: &Path) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|entries| {
                let mut versions: Vec<PathBuf> =
                    entries.flatten().map(|e| e.path().join("bin")).collect();
                versions.sort();
                versions.pop()
            })
            .filter(|bin| bin.join("pg_ctl").exists());
        let Some(bin) = bin else {
            assert!(
                std::env::var_os("CROSSBAR_REQUIRE_POSTGRES").is_none(),
                "CROSSBAR_REQUIRE_POSTGRES is set but PostgreSQL's server binaries are missing"
            );
            eprintln!("skipped: PostgreSQL's server binaries are not installed");
            return None;
        };
        let dir = dir.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").arg("postgres").arg(&dir).status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let status = as_owner(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let pg = Self { bin, dir, port };
        pg.up();
        Some(pg)
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// Starts the server (again), waiting until it takes connections.
    pub fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        assert!(
            self.pg_ctl(&["-w", "-o", &options, "start"]),
            "pg_ctl start"
        );
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn down(&self) {
        assert!(self.pg_ctl(&["-w", "-m", "fast", "stop"]), "pg_ctl stop");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}
