//! What the store suites share: a fresh SQLite file or PostgreSQL database per test, and the
//! macro that runs every test body once per engine.
#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use std::sync::atomic::{AtomicU32, Ordering};

use crossbar_store::SqlStore;
use sqlx::Connection;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `{prefix}_{pid}_{n}`: a name no other test (or test process) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh path for a SQLite file in the temp dir.
pub fn sqlite_path(prefix: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.db", unique(prefix)))
}

/// A store on a fresh SQLite file.
pub async fn sqlite(prefix: &str) -> SqlStore {
    SqlStore::open(sqlite_path(prefix).to_str().unwrap())
        .await
        .unwrap()
}

/// A fresh database on the test server, or `None` (with a notice) when none is configured.
pub async fn postgres(prefix: &str) -> Option<SqlStore> {
    let Ok(admin_url) = std::env::var("CROSSBAR_TEST_POSTGRES_URL") else {
        eprintln!("CROSSBAR_TEST_POSTGRES_URL not set: skipping the PostgreSQL run");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = unique(prefix);
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Some(SqlStore::open(&format!("{base}/{name}")).await.unwrap())
}

/// Every test body, run once per engine: the including file defines `sqlite()` and
/// `postgres()` (its own name prefixes) and an `async fn NAME(store: SqlStore)` per name.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite_suite {
            $(#[tokio::test] async fn $name() { super::$name(super::sqlite().await).await; })*
        }
        mod postgres_suite {
            $(#[tokio::test] async fn $name() {
                if let Some(store) = super::postgres().await { super::$name(store).await; }
            })*
        }
    };
}
pub(crate) use suite;
