//! Scoped admin tokens: `admin` (everything), `team-admin` (one team's keys, usage, requests
//! and audit entries) and `viewer` (reads everything, changes nothing). Like keys, a token's
//! secret is shown once and stored only as its SHA-256. `admin.token` in the configuration
//! stays the root admin, and is the only one that may reload the configuration.

use crossbar_core::{Error, Result};
use crossbar_store::{AdminTokenRecord, Store, now_ms};
use rand::Rng;
use serde::Deserialize;
use serde_json::Value;

use super::hash_secret;

/// Every scoped token's secret starts so: only such secrets are looked up as admin tokens.
pub const PREFIX: &str = "cbadm-";

/// What `admin-tokens create` (CLI or admin API) asks for.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: Option<String>,
    /// `admin`, `team-admin` or `viewer`.
    pub role: String,
    /// The team (id or name) of a `team-admin`; refused for the other roles.
    pub team: Option<String>,
}

/// A token as people see it: never its secret nor its hash.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct TokenView {
    pub id: String,
    pub name: Option<String>,
    /// The secret's first characters, so a user can tell tokens apart.
    pub prefix: String,
    /// `admin`, `team-admin` or `viewer`.
    pub role: String,
    /// A `team-admin`'s team id.
    pub team: Option<String>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl From<&AdminTokenRecord> for TokenView {
    fn from(token: &AdminTokenRecord) -> Self {
        Self {
            id: token.id.clone(),
            name: token.name.clone(),
            prefix: token.prefix.clone(),
            role: token.role.clone(),
            team: token.team_id.clone(),
            created_ms: token.created_ms,
            revoked_ms: token.revoked_ms,
        }
    }
}

/// [`TokenView`] as JSON (the CLI's output, the audit log's objects).
pub fn token_json(token: &AdminTokenRecord) -> Value {
    serde_json::to_value(TokenView::from(token)).unwrap_or(Value::Null)
}

/// Creates a token; returns its secret (shown once, never stored) and its record.
pub async fn create(store: &dyn Store, new: NewToken) -> Result<(String, AdminTokenRecord)> {
    let Some(org) = store.org() else {
        return Err(Error::invalid_request("Admin tokens need a SQL store."));
    };
    if !["admin", "team-admin", "viewer"].contains(&new.role.as_str()) {
        return Err(Error::invalid_field(
            "role",
            "`role` is `admin`, `team-admin` or `viewer`.",
        ));
    }
    if new
        .name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty() || n.len() > 128)
    {
        return Err(Error::invalid_field(
            "name",
            "`name` must be 1 to 128 characters.",
        ));
    }
    let team_id = match (new.role.as_str(), new.team.as_deref()) {
        ("team-admin", Some(team)) => Some(super::teams::find(store, team).await?.id),
        ("team-admin", None) => {
            return Err(Error::invalid_field(
                "team",
                "A `team-admin` token needs `team`.",
            ));
        }
        (_, Some(_)) => {
            return Err(Error::invalid_field(
                "team",
                "Only a `team-admin` token has a team.",
            ));
        }
        (_, None) => None,
    };
    let (secret, id) = {
        let mut rng = rand::rng();
        (
            format!("{PREFIX}{}", hex::encode(rng.random::<[u8; 24]>())),
            format!("atk_{}", hex::encode(rng.random::<[u8; 8]>())),
        )
    };
    let record = AdminTokenRecord {
        id,
        name: new.name,
        hash: hash_secret(&secret),
        prefix: secret.chars().take(PREFIX.len() + 4).collect(),
        role: new.role,
        team_id,
        created_ms: now_ms(),
        revoked_ms: None,
    };
    org.create_admin_token(&record)
        .await
        .map_err(|e| Error::internal(format!("Could not save the token: {e}")))?;
    Ok((secret, record))
}

/// Revokes a live token by id or name; returns it before and after.
pub async fn revoke(
    store: &dyn Store,
    id_or_name: &str,
) -> Result<(AdminTokenRecord, AdminTokenRecord)> {
    let Some(org) = store.org() else {
        return Err(Error::invalid_request("Admin tokens need a SQL store."));
    };
    let unavailable = |e: crossbar_store::StoreError| {
        Error::internal(format!("The key store is unavailable: {e}"))
    };
    let before = org
        .list_admin_tokens()
        .await
        .map_err(unavailable)?
        .into_iter()
        .find(|t| {
            t.revoked_ms.is_none() && (t.id == id_or_name || t.name.as_deref() == Some(id_or_name))
        })
        .ok_or_else(|| Error::not_found(format!("No live admin token `{id_or_name}`.")))?;
    let at = now_ms();
    org.revoke_admin_token(&before.id, at)
        .await
        .map_err(unavailable)?;
    let mut after = before.clone();
    after.revoked_ms = Some(at);
    Ok((before, after))
}
