//! The audit log on SQLite and (when `CROSSBAR_TEST_POSTGRES_URL` names a server) PostgreSQL:
//! entries come back exactly as written, newest first, filtered and paged; retention removes
//! only old ones.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use common::suite;
use crossbar_store::{AuditEntry, AuditQuery, AuditStore as _, SqlStore};
use serde_json::json;

async fn sqlite() -> SqlStore {
    common::sqlite("crossbar_audit_test").await
}

async fn postgres() -> Option<SqlStore> {
    common::postgres("crossbar_audit").await
}

fn entry(at_ms: i64, action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms,
        actor: "admin".to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        before: None,
        after: Some(json!({ "id": target, "name": "ci", "models": ["gpt-4o*"] })),
        source: "127.0.0.1".to_owned(),
        team_id: None,
    }
}

async fn entries_round_trip_newest_first(store: SqlStore) {
    let created = entry(1_000, "key.create", "key_a");
    let mut revoked = entry(2_000, "key.revoke", "key_a");
    revoked.before = created.after.clone();
    revoked.after = Some(json!({ "id": "key_a", "revoked_ms": 2_000 }));
    let reload = AuditEntry {
        actor: "config-watch".to_owned(),
        before: Some(json!({ "sha256": "aa" })),
        after: Some(json!({ "sha256": "bb", "removed": ["m@p"] })),
        source: "file".to_owned(),
        ..entry(3_000, "config.reload", "/etc/crossbar/crossbar.toml")
    };
    let mut ids = Vec::new();
    for e in [&created, &revoked, &reload] {
        ids.push(store.append_audit(e).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let all = store.list_audit(&AuditQuery::newest(10)).await.unwrap();
    let expected: Vec<AuditEntry> = [(&reload, ids[2]), (&revoked, ids[1]), (&created, ids[0])]
        .into_iter()
        .map(|(e, id)| AuditEntry { id, ..e.clone() })
        .collect();
    assert_eq!(all, expected);

    let key_a = store
        .list_audit(&AuditQuery {
            target: Some("key_a".to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        key_a.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );

    let revokes = store
        .list_audit(&AuditQuery {
            action: Some("key.revoke".to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(revokes, [expected[1].clone()]);

    // Paging backwards from the newest: one page of 2, then the rest.
    let page = store.list_audit(&AuditQuery::newest(2)).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let next = store
        .list_audit(&AuditQuery {
            before_id: Some(ids[1]),
            limit: 2,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(next.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[0]]);
}

async fn retention_removes_only_old_entries(store: SqlStore) {
    for at in [100, 200, 300, 400, 500] {
        store
            .append_audit(&entry(at, "key.create", &format!("k{at}")))
            .await
            .unwrap();
    }
    // Batches of 2 until nothing older than 350 is left.
    assert_eq!(store.delete_audit_before(350, 2).await.unwrap(), 2);
    assert_eq!(store.delete_audit_before(350, 2).await.unwrap(), 1);
    assert_eq!(store.delete_audit_before(350, 2).await.unwrap(), 0);
    let left = store.list_audit(&AuditQuery::newest(10)).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        ["k500", "k400"]
    );
}

suite!(
    entries_round_trip_newest_first,
    retention_removes_only_old_entries
);
