//! `[store] url = "sqlite://crossbar.db"` (the documented default written out) must open like the
//! implicit default: the file is created when missing, a relative path is taken from the working
//! directory, and an absolute one (`sqlite:///abs/path.db`) as is. Before, an explicit URL
//! failed with "unable to open database file" on a fresh directory.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use std::path::{Component, Path, PathBuf};

use crossbar_store::{KeyRecord, SqlStore, Store, now_ms};

/// A fresh directory under cargo's per-target temporary directory.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sqlite_url_{name}_{}_{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `to` relative to the working directory (`..` as needed), so the URL is a relative one.
fn relative_to_cwd(to: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
    let to = to.canonicalize().unwrap();
    let common = cwd
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut relative = PathBuf::new();
    for _ in cwd.components().skip(common) {
        relative.push(Component::ParentDir);
    }
    for part in to.components().skip(common) {
        relative.push(part);
    }
    relative
}

fn key(id: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        name: Some("n".to_owned()),
        hash: format!("hash-{id}"),
        prefix: "cb-abcd".to_owned(),
        created_ms: now_ms(),
        ..KeyRecord::default()
    }
}

/// Opens `url` on a file that does not exist yet, writes a key, reopens and reads it back.
async fn creates_and_reopens(url: &str, file: &Path) {
    assert!(!file.exists(), "{}", file.display());
    let store = SqlStore::open(url).await.unwrap();
    assert!(file.exists(), "{url} did not create {}", file.display());
    store.create_key(&key("k1")).await.unwrap();
    store.close().await;
    let store = SqlStore::open(url).await.unwrap();
    let keys = store.list_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        ["k1"]
    );
    store.close().await;
}

#[tokio::test]
async fn explicit_relative_sqlite_url_creates_the_file() {
    let dir = fresh_dir("relative");
    let relative = relative_to_cwd(&dir).join("crossbar.db");
    assert!(relative.is_relative());
    let url = format!("sqlite://{}", relative.display());
    creates_and_reopens(&url, &dir.join("crossbar.db")).await;
    // `sqlite:` without slashes names the same relative file.
    let url = format!("sqlite:{}", relative.with_file_name("other.db").display());
    creates_and_reopens(&url, &dir.join("other.db")).await;
}

#[tokio::test]
async fn explicit_absolute_sqlite_url_creates_the_file() {
    let dir = fresh_dir("absolute");
    let file = dir.join("crossbar.db");
    let url = format!("sqlite://{}", file.display());
    assert!(url.starts_with("sqlite:///"), "{url}");
    creates_and_reopens(&url, &file).await;
    // Other query parameters are kept, and the file is still created.
    let file = dir.join("cached.db");
    creates_and_reopens(&format!("sqlite://{}?cache=shared", file.display()), &file).await;
}

#[tokio::test]
async fn an_explicit_mode_is_respected_and_bad_urls_are_refused() {
    let dir = fresh_dir("mode");
    let file = dir.join("ro.db");
    let err = SqlStore::open(&format!("sqlite://{}?mode=ro", file.display()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unable to open database file"), "{err}");
    assert!(!file.exists());
    let err = SqlStore::open(&format!("sqlite://{}?bogus=1", file.display()))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "store: error with configuration: unknown query parameter `bogus` while parsing connection URL"
    );
}
