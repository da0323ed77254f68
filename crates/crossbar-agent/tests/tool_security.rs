//! What a hostile model (or a hostile page it read) can make the agent's built-in tools do:
//! the file tools must never read or write outside the workspace, whatever symlinks, `..` or
//! races it sets up; `http_fetch` must not reach private addresses by default.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbar_agent::Tool;
use crossbar_agent::spec::HttpFetchSpec;
use crossbar_agent::tools::builtin::{HttpFetch, ReadFile, WriteFile};
use serde_json::json;

/// A workspace and, beside it, a folder the agent must never touch.
struct Sandbox {
    _dir: tempfile::TempDir,
    workspace: PathBuf,
    outside: PathBuf,
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    Sandbox {
        _dir: dir,
        workspace,
        outside,
    }
}

/// The names in a folder, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn write(workspace: &Path, path: &str, content: &str) -> Result<String, String> {
    let tool = WriteFile {
        workspace: workspace.to_owned(),
    };
    tool.call(json!({"path": path, "content": content})).await
}

async fn read(workspace: &Path, path: &str) -> Result<String, String> {
    let tool = ReadFile {
        workspace: workspace.to_owned(),
    };
    tool.call(json!({"path": path})).await
}

#[cfg(unix)]
#[tokio::test]
async fn a_dangling_symlink_cannot_lead_a_write_out_of_the_workspace() {
    let s = sandbox();
    // Before the fix `exists()` was false for it, so the check passed and the write followed it.
    std::os::unix::fs::symlink(s.outside.join("planted.txt"), s.workspace.join("notes.txt"))
        .unwrap();
    std::os::unix::fs::symlink("../outside/relative.txt", s.workspace.join("rel.txt")).unwrap();

    assert_eq!(
        write(&s.workspace, "notes.txt", "pwned").await,
        Err("`notes.txt` leads outside the workspace".to_owned())
    );
    assert_eq!(
        write(&s.workspace, "rel.txt", "pwned").await,
        Err("`rel.txt` leads outside the workspace".to_owned())
    );
    assert_eq!(listing(&s.outside), Vec::<String>::new());
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_folder_pointing_out_is_refused_for_reads_and_writes() {
    let s = sandbox();
    std::fs::write(s.outside.join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(&s.outside, s.workspace.join("link")).unwrap();
    // A dangling folder link: its target does not exist yet.
    std::os::unix::fs::symlink(s.outside.join("new"), s.workspace.join("dangling")).unwrap();

    assert_eq!(
        read(&s.workspace, "link/secret.txt").await,
        Err("`link/secret.txt` leads outside the workspace".to_owned())
    );
    assert_eq!(
        write(&s.workspace, "link/x.txt", "pwned").await,
        Err("`link/x.txt` leads outside the workspace".to_owned())
    );
    assert_eq!(
        write(&s.workspace, "link/deeper/x.txt", "pwned").await,
        Err("`link/deeper/x.txt` leads outside the workspace".to_owned())
    );
    assert_eq!(
        write(&s.workspace, "dangling/x.txt", "pwned").await,
        Err("`dangling/x.txt` leads outside the workspace".to_owned())
    );
    assert_eq!(listing(&s.outside), vec!["secret.txt".to_owned()]);
    assert_eq!(
        std::fs::read_to_string(s.outside.join("secret.txt")).unwrap(),
        "top secret"
    );
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_are_refused() {
    let s = sandbox();
    std::fs::write(s.outside.join("secret.txt"), "top secret").unwrap();
    for path in ["../outside/x.txt", "a/../../outside/x.txt", "a/.."] {
        assert_eq!(
            write(&s.workspace, path, "pwned").await,
            Err(format!(
                "`{path}` must be a relative path inside the workspace, without `..`"
            ))
        );
    }
    let absolute = s.outside.join("secret.txt").display().to_string();
    assert_eq!(
        read(&s.workspace, &absolute).await,
        Err(format!(
            "`{absolute}` must be a relative path inside the workspace, without `..`"
        ))
    );
    assert_eq!(
        read(&s.workspace, "../outside/secret.txt").await,
        Err(
            "`../outside/secret.txt` must be a relative path inside the workspace, without `..`"
                .to_owned()
        )
    );
    assert_eq!(listing(&s.outside), vec!["secret.txt".to_owned()]);
    assert_eq!(listing(&s.workspace), Vec::<String>::new());
}

#[tokio::test]
async fn nested_writes_and_reads_inside_the_workspace_still_work() {
    let s = sandbox();
    let content = "line one\nligne deux: é\n";
    assert_eq!(
        write(&s.workspace, "a/b/c/notes.txt", content).await,
        Ok(format!("wrote {} bytes to a/b/c/notes.txt", content.len()))
    );
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("a/b/c/notes.txt")).unwrap(),
        content
    );
    assert_eq!(
        read(&s.workspace, "./a/b/c/notes.txt").await,
        Ok(content.to_owned())
    );
    // Overwriting replaces the content whole.
    assert_eq!(
        write(&s.workspace, "a/b/c/notes.txt", "short").await,
        Ok("wrote 5 bytes to a/b/c/notes.txt".to_owned())
    );
    assert_eq!(
        read(&s.workspace, "a/b/c/notes.txt").await,
        Ok("short".to_owned())
    );
    assert_eq!(
        read(&s.workspace, "a/missing.txt")
            .await
            .map_err(|e| e.starts_with("cannot read `a/missing.txt`: ")),
        Err(true)
    );
    assert_eq!(listing(&s.outside), Vec::<String>::new());
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_that_stays_inside_the_workspace_is_followed() {
    let s = sandbox();
    std::fs::create_dir_all(s.workspace.join("real")).unwrap();
    std::os::unix::fs::symlink("real", s.workspace.join("alias")).unwrap();
    assert_eq!(
        write(&s.workspace, "alias/x.txt", "inside").await,
        Ok("wrote 6 bytes to alias/x.txt".to_owned())
    );
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("real/x.txt")).unwrap(),
        "inside"
    );
    assert_eq!(listing(&s.outside), Vec::<String>::new());
}

/// The check-then-use race: while the tool writes `d/x.txt` again and again, another thread
/// keeps replacing the folder `d` by a symlink to a folder outside and back. Whatever the
/// interleaving, no file may ever appear outside.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_folder_for_a_symlink_during_writes_never_escapes() {
    let s = sandbox();
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let flipper = {
        let (stop, flips) = (Arc::clone(&stop), Arc::clone(&flips));
        let (d, outside) = (s.workspace.join("d"), s.outside.clone());
        std::thread::spawn(move || {
            let mut to_link = false;
            while !stop.load(Ordering::Relaxed) {
                match std::fs::symlink_metadata(&d) {
                    Ok(m) if m.file_type().is_symlink() => {
                        let _ = std::fs::remove_file(&d);
                    }
                    Ok(_) => {
                        let _ = std::fs::remove_dir_all(&d);
                    }
                    Err(_) => {}
                }
                let _ = if to_link {
                    std::os::unix::fs::symlink(&outside, &d)
                } else {
                    std::fs::create_dir(&d)
                };
                to_link = !to_link;
                flips.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut written, mut refused, mut attempts) = (0u64, 0u64, 0u64);
    // Until both outcomes were seen many times (so the race really ran), within a bound.
    while attempts < 200_000 && (attempts < 20_000 || written < 50 || refused < 50) {
        attempts += 1;
        match write(&s.workspace, "d/x.txt", "race").await {
            Ok(_) => written += 1,
            Err(_) => refused += 1,
        }
        if attempts % 64 == 0 {
            assert_eq!(
                listing(&s.outside),
                Vec::<String>::new(),
                "a write escaped after {attempts} attempts"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    eprintln!(
        "{attempts} writes ({written} written, {refused} refused) during {} flips",
        flips.load(Ordering::Relaxed)
    );
    assert_eq!(listing(&s.outside), Vec::<String>::new());
    assert!(
        written >= 50 && refused >= 50,
        "the race did not run: {written} written, {refused} refused"
    );
}

fn fetch_tool() -> HttpFetch {
    HttpFetch {
        settings: HttpFetchSpec {
            allow: Vec::new(),
            allow_private: false,
            max_bytes: 1024,
        },
    }
}

/// With no allow-list, `http_fetch` still refuses private, loopback, link-local and other
/// special-purpose addresses, before connecting anywhere.
#[tokio::test]
async fn http_fetch_without_an_allowlist_refuses_private_addresses() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let tool = fetch_tool();
    let cases = [
        (format!("http://127.0.0.1:{port}/"), "127.0.0.1"),
        ("http://10.0.0.1/".to_owned(), "10.0.0.1"),
        ("http://192.168.1.1:8080/admin".to_owned(), "192.168.1.1"),
        ("http://172.16.0.1/".to_owned(), "172.16.0.1"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254",
        ),
        ("http://100.64.0.1/".to_owned(), "100.64.0.1"),
        (format!("http://[::1]:{port}/"), "[::1]"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "[::ffff:7f00:1]",
        ),
        ("http://[fd00::1]/".to_owned(), "[fd00::1]"),
        ("http://[fe80::1]/".to_owned(), "[fe80::1]"),
        (format!("http://localhost:{port}/"), "localhost"),
        // The IANA special-purpose ranges the guard missed (item 11), none globally reachable.
        ("http://0.1.2.3/".to_owned(), "0.1.2.3"),
        ("http://192.0.0.8/".to_owned(), "192.0.0.8"),
        ("http://198.18.0.1/".to_owned(), "198.18.0.1"),
        ("http://240.0.0.1/".to_owned(), "240.0.0.1"),
        (format!("http://[::127.0.0.1]:{port}/"), "[::7f00:1]"),
        (
            format!("http://[64:ff9b::127.0.0.1]:{port}/"),
            "[64:ff9b::7f00:1]",
        ),
        ("http://[fec0::1]/".to_owned(), "[fec0::1]"),
        (format!("http://0x7f.1:{port}/"), "127.0.0.1"),
    ];
    for (url, host) in cases {
        assert_eq!(
            tool.call(json!({"url": url})).await,
            Err(format!(
                "{host} is a private, loopback or link-local address, which this agent may not reach"
            )),
            "{url}"
        );
    }
    // Nothing connected to the loopback listener: the refusal came before any connection.
    assert_eq!(
        listener.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock)
    );
}
