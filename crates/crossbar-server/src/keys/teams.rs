//! Teams: the level between the organization (the gateway itself: one organization per
//! deployment) and its virtual keys. A team's limits and budgets count all its keys together;
//! its model and route allow-lists bound its keys', which may narrow them, never widen them.
//! Managed through the admin API (`/admin/teams`) and `crossbar teams`.

use crossbar_core::pricing::{pico_to_usd, usd_to_pico};
use crossbar_core::{Error, Result};
use crossbar_store::{KeyLimits, OrgStore, Store, StoreError, TeamRecord, now_ms};
use rand::Rng;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// What `teams create` (CLI or admin API) asks for.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_usd_day: Option<f64>,
    pub budget_usd_month: Option<f64>,
    pub budget_usd_total: Option<f64>,
}

/// What `teams update` changes: absent fields stay, `null` clears a limit.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    pub routes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub rpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub tpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub budget_usd_day: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub budget_usd_month: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub budget_usd_total: Option<Option<f64>>,
}

/// A field that is present, `null` included (`Some(None)`); absent is `None` by default.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A team as people see it (the admin API, `crossbar teams`, the dashboard): budgets in USD.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    /// Logical models (globs) its keys may call; empty allows all.
    pub models: Vec<String>,
    /// Routes its keys may use; empty allows all.
    pub routes: Vec<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_usd_day: Option<f64>,
    pub budget_usd_month: Option<f64>,
    pub budget_usd_total: Option<f64>,
}

impl From<&TeamRecord> for TeamView {
    fn from(team: &TeamRecord) -> Self {
        let usd = |p: Option<u64>| p.map(pico_to_usd);
        Self {
            id: team.id.clone(),
            name: team.name.clone(),
            created_ms: team.created_ms,
            models: team.models.clone(),
            routes: team.routes.clone(),
            rpm: team.limits.rpm,
            tpm: team.limits.tpm,
            budget_usd_day: usd(team.limits.budget_day_pusd),
            budget_usd_month: usd(team.limits.budget_month_pusd),
            budget_usd_total: usd(team.limits.budget_total_pusd),
        }
    }
}

/// [`TeamView`] as JSON (the CLI's output, the audit log's objects).
pub fn team_json(team: &TeamRecord) -> Value {
    serde_json::to_value(TeamView::from(team)).unwrap_or(Value::Null)
}

fn org(store: &dyn Store) -> Result<&dyn OrgStore> {
    store
        .org()
        .ok_or_else(|| Error::invalid_request("Teams need a SQL store."))
}

fn unavailable(error: StoreError) -> Error {
    Error::internal(format!("The key store is unavailable: {error}"))
}

pub(crate) fn check_budget(value: Option<f64>, name: &str) -> Result<Option<u64>> {
    match value {
        Some(b) if !b.is_finite() || b < 0.0 => Err(Error::invalid_field(
            name,
            format!("`{name}` must be a non-negative number of USD."),
        )),
        other => Ok(other.map(usd_to_pico)),
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(Error::invalid_field(
            "name",
            "`name` must be 1 to 64 characters.",
        ));
    }
    Ok(())
}

/// The team with this id or name, if any.
pub async fn get(store: &dyn Store, id_or_name: &str) -> Result<Option<TeamRecord>> {
    org(store)?.team(id_or_name).await.map_err(unavailable)
}

/// The team a new key names: a 400 naming it when there is none.
pub(crate) async fn find(store: &dyn Store, id_or_name: &str) -> Result<TeamRecord> {
    get(store, id_or_name)
        .await?
        .ok_or_else(|| Error::invalid_field("team", format!("No team `{id_or_name}`.")))
}

/// A key's allow-lists must fit inside its team's: each model (a glob) the key lists must be
/// one a team glob matches, each route one the team allows.
pub(crate) fn check_narrows(team: &TeamRecord, models: &[String], routes: &[String]) -> Result<()> {
    let allowed = |list: &[String], entry: &str| {
        list.is_empty() || list.iter().any(|g| crossbar_core::router::glob(g, entry))
    };
    if let Some(model) = models.iter().find(|m| !allowed(&team.models, m)) {
        return Err(Error::invalid_field(
            "models",
            format!("Team `{}` does not allow model `{model}`.", team.name),
        ));
    }
    if let Some(route) = routes.iter().find(|r| !allowed(&team.routes, r)) {
        return Err(Error::invalid_field(
            "routes",
            format!("Team `{}` does not allow route `{route}`.", team.name),
        ));
    }
    Ok(())
}

/// Creates a team in `store`.
pub async fn create(store: &dyn Store, new: NewTeam) -> Result<TeamRecord> {
    check_name(&new.name)?;
    let org = org(store)?;
    if org.team(&new.name).await.map_err(unavailable)?.is_some() {
        return Err(Error::invalid_field(
            "name",
            format!("A team `{}` already exists.", new.name),
        ));
    }
    let id = format!("team_{}", hex::encode(rand::rng().random::<[u8; 8]>()));
    let team = TeamRecord {
        id,
        name: new.name,
        created_ms: now_ms(),
        models: new.models,
        routes: new.routes,
        limits: KeyLimits {
            rpm: new.rpm,
            tpm: new.tpm,
            budget_day_pusd: check_budget(new.budget_usd_day, "budget_usd_day")?,
            budget_month_pusd: check_budget(new.budget_usd_month, "budget_usd_month")?,
            budget_total_pusd: check_budget(new.budget_usd_total, "budget_usd_total")?,
        },
    };
    org.create_team(&team)
        .await
        .map_err(|e| Error::internal(format!("Could not save the team: {e}")))?;
    Ok(team)
}

/// Applies `patch` to the team; returns it before and after.
pub async fn update(
    store: &dyn Store,
    id_or_name: &str,
    patch: TeamPatch,
) -> Result<(TeamRecord, TeamRecord)> {
    let org = org(store)?;
    let Some(before) = org.team(id_or_name).await.map_err(unavailable)? else {
        return Err(Error::not_found(format!("No team `{id_or_name}`.")));
    };
    let mut after = before.clone();
    if let Some(name) = patch.name {
        check_name(&name)?;
        if name != before.name && org.team(&name).await.map_err(unavailable)?.is_some() {
            return Err(Error::invalid_field(
                "name",
                format!("A team `{name}` already exists."),
            ));
        }
        after.name = name;
    }
    if let Some(models) = patch.models {
        after.models = models;
    }
    if let Some(routes) = patch.routes {
        after.routes = routes;
    }
    if let Some(rpm) = patch.rpm {
        after.limits.rpm = rpm;
    }
    if let Some(tpm) = patch.tpm {
        after.limits.tpm = tpm;
    }
    if let Some(day) = patch.budget_usd_day {
        after.limits.budget_day_pusd = check_budget(day, "budget_usd_day")?;
    }
    if let Some(month) = patch.budget_usd_month {
        after.limits.budget_month_pusd = check_budget(month, "budget_usd_month")?;
    }
    if let Some(total) = patch.budget_usd_total {
        after.limits.budget_total_pusd = check_budget(total, "budget_usd_total")?;
    }
    org.update_team(&after).await.map_err(unavailable)?;
    Ok((before, after))
}

/// Deletes a team that has no live keys left; returns it as it was.
pub async fn delete(store: &dyn Store, id_or_name: &str) -> Result<TeamRecord> {
    let org = org(store)?;
    let Some(team) = org.team(id_or_name).await.map_err(unavailable)? else {
        return Err(Error::not_found(format!("No team `{id_or_name}`.")));
    };
    let live = store
        .list_keys()
        .await
        .map_err(unavailable)?
        .iter()
        .filter(|k| k.revoked_ms.is_none() && k.team_id.as_deref() == Some(&team.id))
        .count();
    if live > 0 {
        return Err(Error::invalid_request(format!(
            "Team `{}` still has {live} live key(s): revoke them first.",
            team.name
        ))
        .with_code("team_has_keys"));
    }
    org.delete_team(&team.id).await.map_err(unavailable)?;
    Ok(team)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(models: &[&str], routes: &[&str]) -> TeamRecord {
        TeamRecord {
            name: "research".to_owned(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            routes: routes.iter().map(|r| (*r).to_owned()).collect(),
            ..TeamRecord::default()
        }
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn a_key_narrows_its_teams_lists_and_never_widens_them() {
        let t = team(&["gpt-4o*"], &["fast"]);
        check_narrows(&t, &list(&["gpt-4o-mini"]), &list(&["fast"])).unwrap();
        check_narrows(&t, &[], &[]).unwrap();
        let err = check_narrows(&t, &list(&["gpt-4o", "claude-sonnet"]), &[]).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.message,
            "Team `research` does not allow model `claude-sonnet`."
        );
        assert_eq!(err.param.as_deref(), Some("models"));
        // A wider glob than the team's is not inside it.
        let err = check_narrows(&t, &list(&["gpt-*"]), &[]).unwrap_err();
        assert_eq!(err.message, "Team `research` does not allow model `gpt-*`.");
        let err = check_narrows(&t, &[], &list(&["slow"])).unwrap_err();
        assert_eq!(err.message, "Team `research` does not allow route `slow`.");
        // A team without lists allows anything.
        check_narrows(&team(&[], &[]), &list(&["x"]), &list(&["y"])).unwrap();
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let patch: TeamPatch =
            serde_json::from_str(r#"{"rpm": null, "budget_usd_day": 2.5}"#).unwrap();
        assert_eq!(patch.rpm, Some(None));
        assert_eq!(patch.tpm, None);
        assert_eq!(patch.budget_usd_day, Some(Some(2.5)));
        assert!(serde_json::from_str::<TeamPatch>(r#"{"bogus": 1}"#).is_err());
    }
}
