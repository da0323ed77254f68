//! Teams and admin tokens on SQLite and (when `CROSSBAR_TEST_POSTGRES_URL` names a server)
//! PostgreSQL: records come back exactly as written, by id or name; a team's spend sums its
//! records' costs by window; a key keeps its team; audit entries filter by team.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use common::suite;
use crossbar_store::{
    AdminTokenRecord, AuditEntry, AuditQuery, AuditStore as _, KeyLimits, KeyRecord, OrgStore as _,
    SqlStore, Store as _, TeamRecord, UsageRecord, UsageTags,
};

async fn sqlite() -> SqlStore {
    common::sqlite("crossbar_org_test").await
}

async fn postgres() -> Option<SqlStore> {
    common::postgres("crossbar_org").await
}

fn team(id: &str, name: &str) -> TeamRecord {
    TeamRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        created_ms: 1_700_000_000_000,
        models: vec!["gpt-4o*".to_owned()],
        routes: vec!["fast".to_owned()],
        limits: KeyLimits {
            rpm: Some(600),
            tpm: None,
            budget_day_pusd: Some(5_000_000_000_000),
            budget_month_pusd: None,
            budget_total_pusd: Some(u64::MAX >> 2),
        },
    }
}

async fn teams_round_trip_update_and_delete(store: SqlStore) {
    let research = team("team_1", "research");
    let web = TeamRecord {
        created_ms: 1_700_000_000_001,
        ..team("team_2", "web")
    };
    store.create_team(&research).await.unwrap();
    store.create_team(&web).await.unwrap();
    assert!(
        store.create_team(&team("team_3", "web")).await.is_err(),
        "names are unique"
    );
    assert_eq!(
        store.list_teams().await.unwrap(),
        [research.clone(), web.clone()]
    );
    assert_eq!(store.team("team_1").await.unwrap(), Some(research.clone()));
    assert_eq!(store.team("web").await.unwrap(), Some(web.clone()));
    assert_eq!(store.team("nope").await.unwrap(), None);

    let mut changed = research.clone();
    changed.name = "science".to_owned();
    changed.models = vec![];
    changed.limits.rpm = None;
    changed.limits.budget_month_pusd = Some(7);
    assert!(store.update_team(&changed).await.unwrap());
    assert_eq!(store.team("science").await.unwrap(), Some(changed));
    assert!(!store.update_team(&team("team_9", "x")).await.unwrap());
    assert!(store.delete_team("team_2").await.unwrap());
    assert!(!store.delete_team("team_2").await.unwrap());
    assert_eq!(store.list_teams().await.unwrap().len(), 1);
}

async fn a_teams_spend_sums_its_records_by_window(store: SqlStore) {
    let record = |id: &str, time_ms: i64, cost: u64, team: Option<&str>| UsageRecord {
        request_id: id.to_owned(),
        time_ms,
        cost_pusd: cost,
        key_id: Some("key_a".to_owned()),
        tags: UsageTags {
            team_id: team.map(str::to_owned),
            ..UsageTags::default()
        },
        ..UsageRecord::default()
    };
    store
        .insert_usage(&[
            record("r1", 1_000, 3, Some("team_1")),
            record("r2", 2_000, 5, Some("team_1")),
            record("r3", 2_500, 7, Some("team_2")),
            record("r4", 3_000, 11, None),
        ])
        .await
        .unwrap();
    assert_eq!(store.team_spend_since("team_1", 0).await.unwrap(), 8);
    assert_eq!(store.team_spend_since("team_1", 1_500).await.unwrap(), 5);
    assert_eq!(store.team_spend_since("team_2", 0).await.unwrap(), 7);
    assert_eq!(store.team_spend_since("team_9", 0).await.unwrap(), 0);
}

async fn a_key_keeps_its_team(store: SqlStore) {
    let key = KeyRecord {
        id: "key_1".to_owned(),
        hash: "h1".to_owned(),
        prefix: "cb-1".to_owned(),
        team_id: Some("team_1".to_owned()),
        ..KeyRecord::default()
    };
    store.create_key(&key).await.unwrap();
    assert_eq!(store.key_by_hash("h1").await.unwrap(), Some(key.clone()));
    assert_eq!(store.list_keys().await.unwrap(), [key]);
}

async fn admin_tokens_are_found_by_hash_and_revoked(store: SqlStore) {
    let lead = AdminTokenRecord {
        id: "atk_1".to_owned(),
        name: Some("lead".to_owned()),
        hash: "hash-1".to_owned(),
        prefix: "cbadm-ab12".to_owned(),
        role: "team-admin".to_owned(),
        team_id: Some("team_1".to_owned()),
        created_ms: 10,
        revoked_ms: None,
    };
    let viewer = AdminTokenRecord {
        id: "atk_2".to_owned(),
        name: None,
        hash: "hash-2".to_owned(),
        role: "viewer".to_owned(),
        team_id: None,
        created_ms: 20,
        ..lead.clone()
    };
    store.create_admin_token(&lead).await.unwrap();
    store.create_admin_token(&viewer).await.unwrap();
    assert_eq!(
        store.admin_token_by_hash("hash-2").await.unwrap(),
        Some(viewer.clone())
    );
    assert_eq!(store.admin_token_by_hash("nope").await.unwrap(), None);
    assert!(store.revoke_admin_token("lead", 99).await.unwrap());
    assert!(
        !store.revoke_admin_token("lead", 100).await.unwrap(),
        "already revoked"
    );
    let listed = store.list_admin_tokens().await.unwrap();
    assert_eq!(
        listed,
        [
            AdminTokenRecord {
                revoked_ms: Some(99),
                ..lead
            },
            viewer
        ]
    );
}

async fn audit_entries_filter_by_team(store: SqlStore) {
    let entry = |target: &str, team: Option<&str>| AuditEntry {
        id: 0,
        at_ms: 1,
        actor: "admin".to_owned(),
        action: "key.create".to_owned(),
        target: target.to_owned(),
        before: None,
        after: None,
        source: "cli".to_owned(),
        team_id: team.map(str::to_owned),
    };
    for e in [
        entry("key_a", Some("team_1")),
        entry("key_b", Some("team_2")),
        entry("key_c", None),
        entry("key_d", Some("team_1")),
    ] {
        store.append_audit(&e).await.unwrap();
    }
    let of_team = store
        .list_audit(&AuditQuery {
            team: Some("team_1".to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        of_team
            .iter()
            .map(|e| e.target.as_str())
            .collect::<Vec<_>>(),
        ["key_d", "key_a"]
    );
    assert_eq!(
        store
            .list_audit(&AuditQuery::newest(10))
            .await
            .unwrap()
            .len(),
        4
    );
}

suite!(
    teams_round_trip_update_and_delete,
    a_teams_spend_sums_its_records_by_window,
    a_key_keeps_its_team,
    admin_tokens_are_found_by_hash_and_revoked,
    audit_entries_filter_by_team,
);
