//! Which catalog deployments the environment's credentials reach, and why the others are not
//! reachable: what `crossbar serve` offers with no configuration file, and what `crossbar
//! models` prints.
//!
//! Credentials, by door:
//! - OpenAI: `OPENAI_API_KEY` (`OPENAI_BASE_URL` moves it); Azure OpenAI: `AZURE_OPENAI_API_KEY`
//!   and `AZURE_OPENAI_ENDPOINT`.
//! - Anthropic: `ANTHROPIC_API_KEY`; Claude in Microsoft Foundry: `ANTHROPIC_FOUNDRY_API_KEY` and
//!   `ANTHROPIC_FOUNDRY_RESOURCE`.
//! - AWS (Bedrock, Mantle, Runtime): `AWS_BEARER_TOKEN_BEDROCK` (a Bedrock API key), else
//!   `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, web identity or container
//!   credentials (signed with SigV4 through the standard AWS chain); the region is
//!   `AWS_REGION` (or `AWS_DEFAULT_REGION`), else the deployment's first.
//! - Google Cloud (Vertex AI): `GOOGLE_OAUTH_ACCESS_TOKEN` (a static token), else
//!   `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's application-default credentials file, with
//!   `GOOGLE_CLOUD_PROJECT`; the location is `GOOGLE_CLOUD_LOCATION`, else the deployment's
//!   first. Gemini API: `GEMINI_API_KEY` or `GOOGLE_API_KEY`.
//!
//! `CROSSBAR_ENDPOINT_<KIND>` (`CROSSBAR_ENDPOINT_BEDROCK_MANTLE_RESPONSES`) replaces a door's
//! endpoint as its `endpoint` setting would, so tests point discovered providers at simulators.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::{Table, Value};

use super::{Catalog, CatalogDeployment, kind_str};
use crate::config::ProviderKind;

/// Reads one environment variable; empty counts as unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, empty values unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The provider a reachable deployment is served by.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderPlan {
    pub name: String,
    pub kind: ProviderKind,
    pub cloud: &'static str,
    pub region: Option<String>,
    /// The `[[providers]]` table (secrets as `${VAR}`, expanded when the config loads).
    settings: Table,
}

/// One catalog deployment and whether the environment reaches it.
#[derive(Clone, Debug)]
pub struct Offer<'c> {
    pub deployment: &'c CatalogDeployment,
    /// The provider serving it, or why none can.
    pub outcome: Result<ProviderPlan, String>,
}

/// What a door needs from the environment, once found.
struct Credential {
    cloud: &'static str,
    /// The region the environment asks for, and the variable that says so.
    wanted: Option<(String, &'static str)>,
    /// The region of a deployment that lists none.
    default_region: Option<&'static str>,
    /// The settings key the region goes in, besides the `region` label.
    region_key: Option<&'static str>,
    settings: Table,
}

fn first(env: Env<'_>, names: &[&'static str]) -> Option<(String, &'static str)> {
    names
        .iter()
        .find_map(|name| env(name).map(|value| (value, *name)))
}

fn secret(name: &str) -> Value {
    Value::String(format!("${{{name}}}"))
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

const AWS_CHAIN: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// The credential a door of `kind` finds in the environment, or what is missing.
fn credential(kind: ProviderKind, env: Env<'_>) -> Result<Credential, String> {
    let mut settings = Table::new();
    let plain = |cloud, default_region, settings| Credential {
        cloud,
        wanted: None,
        default_region,
        region_key: None,
        settings,
    };
    match kind {
        ProviderKind::Openai => {
            env("OPENAI_API_KEY").ok_or("no OPENAI_API_KEY")?;
            settings.insert("api_key".into(), secret("OPENAI_API_KEY"));
            settings.insert(
                "endpoint".into(),
                text("${OPENAI_BASE_URL:-https://api.openai.com/v1}"),
            );
            Ok(plain("openai", Some("global"), settings))
        }
        ProviderKind::AzureOpenai => {
            env("AZURE_OPENAI_API_KEY").ok_or("no AZURE_OPENAI_API_KEY")?;
            env("AZURE_OPENAI_ENDPOINT").ok_or("no AZURE_OPENAI_ENDPOINT")?;
            settings.insert("api_key".into(), secret("AZURE_OPENAI_API_KEY"));
            settings.insert("endpoint".into(), secret("AZURE_OPENAI_ENDPOINT"));
            settings.insert("api_version".into(), text("2024-10-21"));
            Ok(plain("azure", None, settings))
        }
        ProviderKind::Anthropic => {
            env("ANTHROPIC_API_KEY").ok_or("no ANTHROPIC_API_KEY")?;
            settings.insert("api_key".into(), secret("ANTHROPIC_API_KEY"));
            Ok(plain("anthropic", Some("global"), settings))
        }
        ProviderKind::FoundryAnthropic => {
            env("ANTHROPIC_FOUNDRY_API_KEY").ok_or("no ANTHROPIC_FOUNDRY_API_KEY")?;
            let resource =
                env("ANTHROPIC_FOUNDRY_RESOURCE").ok_or("no ANTHROPIC_FOUNDRY_RESOURCE")?;
            settings.insert("api_key".into(), secret("ANTHROPIC_FOUNDRY_API_KEY"));
            settings.insert(
                "endpoint".into(),
                text(&format!("https://{resource}.services.ai.azure.com")),
            );
            Ok(plain("azure", None, settings))
        }
        ProviderKind::Bedrock
        | ProviderKind::BedrockMantleResponses
        | ProviderKind::BedrockMantleChat
        | ProviderKind::BedrockMantleAnthropic
        | ProviderKind::BedrockRuntimeChat => {
            if env("AWS_BEARER_TOKEN_BEDROCK").is_some() {
                settings.insert("api_key".into(), secret("AWS_BEARER_TOKEN_BEDROCK"));
            } else if first(env, AWS_CHAIN).is_none() {
                return Err(
                    "no AWS credentials (AWS_BEARER_TOKEN_BEDROCK, AWS_ACCESS_KEY_ID or AWS_PROFILE)"
                        .to_owned(),
                );
            }
            Ok(Credential {
                cloud: "aws",
                wanted: first(env, &["AWS_REGION", "AWS_DEFAULT_REGION"]),
                default_region: None,
                region_key: Some("region"),
                settings,
            })
        }
        ProviderKind::Vertex
        | ProviderKind::VertexAnthropic
        | ProviderKind::VertexOpenaiResponses
        | ProviderKind::VertexOpenaiChat => {
            if env("GOOGLE_OAUTH_ACCESS_TOKEN").is_some() {
                settings.insert("api_key".into(), secret("GOOGLE_OAUTH_ACCESS_TOKEN"));
            } else if env("GOOGLE_APPLICATION_CREDENTIALS").is_none() && !adc_file(env) {
                return Err(
                    "no Google credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default login or GOOGLE_OAUTH_ACCESS_TOKEN)"
                        .to_owned(),
                );
            }
            let (project, _) = first(
                env,
                &[
                    "GOOGLE_CLOUD_PROJECT",
                    "GCLOUD_PROJECT",
                    "CLOUDSDK_CORE_PROJECT",
                ],
            )
            .ok_or("no Google Cloud project (GOOGLE_CLOUD_PROJECT)")?;
            settings.insert("project".into(), Value::String(project));
            Ok(Credential {
                cloud: "gcp",
                wanted: first(env, &["GOOGLE_CLOUD_LOCATION", "GOOGLE_CLOUD_REGION"]),
                default_region: None,
                region_key: Some("location"),
                settings,
            })
        }
        ProviderKind::Gemini => {
            let (_, name) = first(env, &["GEMINI_API_KEY", "GOOGLE_API_KEY"])
                .ok_or("no GEMINI_API_KEY or GOOGLE_API_KEY")?;
            settings.insert("api_key".into(), secret(name));
            Ok(plain("google", Some("global"), settings))
        }
        ProviderKind::OpenaiCompatible | ProviderKind::Sim => {
            Err("not discovered from the environment".to_owned())
        }
    }
}

/// Whether gcloud's application-default credentials file exists.
fn adc_file(env: Env<'_>) -> bool {
    let dir = env("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".config/gcloud")));
    dir.is_some_and(|d| d.join("application_default_credentials.json").is_file())
}

/// `CROSSBAR_ENDPOINT_BEDROCK_MANTLE_RESPONSES` for `bedrock-mantle-responses`.
pub fn endpoint_variable(kind: ProviderKind) -> String {
    format!(
        "CROSSBAR_ENDPOINT_{}",
        kind_str(kind).to_ascii_uppercase().replace('-', "_")
    )
}

/// Whether the environment reaches `deployment`, and through which provider.
fn plan(deployment: &CatalogDeployment, env: Env<'_>) -> Result<ProviderPlan, String> {
    let credential = credential(deployment.kind, env)?;
    let region = if deployment.regions.is_empty() {
        credential.default_region.map(str::to_owned)
    } else {
        match &credential.wanted {
            Some((wanted, _)) if deployment.regions.contains(wanted) => Some(wanted.clone()),
            Some((wanted, variable)) => {
                return Err(format!(
                    "not served in {variable}={wanted} (served in {})",
                    deployment.regions.join(", ")
                ));
            }
            None => deployment.regions.first().cloned(),
        }
    };
    let mut settings = credential.settings;
    let kind = kind_str(deployment.kind);
    let name = match (&region, deployment.regions.is_empty()) {
        (Some(region), false) => format!("{kind}-{region}"),
        _ => kind.clone(),
    };
    settings.insert("name".into(), text(&name));
    settings.insert("kind".into(), text(&kind));
    settings.insert("cloud".into(), text(credential.cloud));
    if let Some(region) = &region {
        settings.insert("region".into(), text(region));
        if let Some(key) = credential.region_key {
            settings.insert(key.into(), text(region));
        }
    }
    if let Some(endpoint) = env(&endpoint_variable(deployment.kind)) {
        settings.insert("endpoint".into(), Value::String(endpoint));
    }
    Ok(ProviderPlan {
        name,
        kind: deployment.kind,
        cloud: credential.cloud,
        region,
        settings,
    })
}

/// Every catalog deployment with the provider that reaches it, or why none does.
pub fn reach<'c>(catalog: &'c Catalog, env: Env<'_>) -> Vec<Offer<'c>> {
    catalog
        .deployments
        .iter()
        .map(|deployment| Offer {
            deployment,
            outcome: plan(deployment, env),
        })
        .collect()
}

/// The configuration serving every reachable deployment: one provider per door and region,
/// one `[[models]]` entry per logical model with a deployment on each door that reaches it,
/// with the catalog's price and limits. `None` when nothing is reachable.
pub fn config_source(offers: &[Offer<'_>]) -> Option<String> {
    let mut providers: BTreeMap<String, Table> = BTreeMap::new();
    let mut models: Vec<(String, Vec<Value>)> = Vec::new();
    for offer in offers {
        let Ok(provider) = &offer.outcome else {
            continue;
        };
        providers
            .entry(provider.name.clone())
            .or_insert_with(|| provider.settings.clone());
        let d = offer.deployment;
        let mut entry = Table::new();
        entry.insert("provider".into(), text(&provider.name));
        entry.insert("target".into(), text(&d.target));
        entry.insert("price".into(), Value::try_from(d.price).ok()?);
        entry.insert(
            "capabilities".into(),
            Value::Array(
                d.limits
                    .capabilities
                    .iter()
                    .map(|c| text(c.as_str()))
                    .collect(),
            ),
        );
        if let Some(context) = d.limits.context {
            entry.insert("context".into(), Value::Integer(to_int(context)));
        }
        if let Some(max_output) = d.limits.max_output {
            entry.insert("max_output".into(), Value::Integer(to_int(max_output)));
        }
        match models.iter_mut().find(|(name, _)| *name == d.model) {
            Some((_, deployments)) => deployments.push(Value::Table(entry)),
            None => models.push((d.model.clone(), vec![Value::Table(entry)])),
        }
    }
    if providers.is_empty() {
        return None;
    }
    let mut root = Table::new();
    root.insert(
        "providers".into(),
        Value::Array(providers.into_values().map(Value::Table).collect()),
    );
    root.insert(
        "models".into(),
        Value::Array(
            models
                .into_iter()
                .map(|(name, deployments)| {
                    let mut model = Table::new();
                    model.insert("name".into(), Value::String(name));
                    model.insert("deployments".into(), Value::Array(deployments));
                    Value::Table(model)
                })
                .collect(),
        ),
    );
    toml::to_string(&root).ok()
}

fn to_int(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::catalog::BUILTIN;
    use crate::config::Config;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    /// The outcome for one deployment, as (provider name or reason).
    fn outcome(offers: &[Offer<'_>], kind: ProviderKind, target: &str) -> Result<String, String> {
        offers
            .iter()
            .find(|o| o.deployment.kind == kind && o.deployment.target == target)
            .unwrap()
            .outcome
            .clone()
            .map(|p| p.name)
    }

    #[test]
    fn aws_and_google_credentials_reach_their_doors_and_say_why_not_elsewhere() {
        let catalog = Catalog::parse(BUILTIN, "builtin").unwrap();
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIDFAKE"),
            ("AWS_SECRET_ACCESS_KEY", "fake"),
            ("AWS_REGION", "us-west-2"),
            ("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.fake"),
            ("GOOGLE_CLOUD_PROJECT", "proj"),
            ("HOME", "/nonexistent"),
        ]);
        let offers = reach(&catalog, &env);
        assert_eq!(
            outcome(
                &offers,
                ProviderKind::BedrockMantleResponses,
                "openai.gpt-5.4"
            ),
            Ok("bedrock-mantle-responses-us-west-2".to_owned())
        );
        assert_eq!(
            outcome(
                &offers,
                ProviderKind::BedrockMantleResponses,
                "openai.gpt-5.5"
            ),
            Err("not served in AWS_REGION=us-west-2 (served in us-east-2)".to_owned())
        );
        assert_eq!(
            outcome(&offers, ProviderKind::VertexOpenaiResponses, "gpt-5.4"),
            Ok("vertex-openai-responses-global".to_owned())
        );
        assert_eq!(
            outcome(&offers, ProviderKind::Openai, "gpt-5.4"),
            Err("no OPENAI_API_KEY".to_owned())
        );
        assert_eq!(
            outcome(&offers, ProviderKind::FoundryAnthropic, "claude-haiku-4-5"),
            Err("no ANTHROPIC_FOUNDRY_API_KEY".to_owned())
        );
        let no_project = env_of(&[("GOOGLE_OAUTH_ACCESS_TOKEN", "t"), ("HOME", "/nonexistent")]);
        assert_eq!(
            outcome(
                &reach(&catalog, &no_project),
                ProviderKind::Vertex,
                "gemini-2.5-pro"
            ),
            Err("no Google Cloud project (GOOGLE_CLOUD_PROJECT)".to_owned())
        );
    }

    #[test]
    fn the_discovered_configuration_serves_one_model_on_both_clouds_at_catalog_prices() {
        let catalog = Catalog::parse(BUILTIN, "builtin").unwrap();
        let env = env_of(&[
            ("AWS_BEARER_TOKEN_BEDROCK", "bedrock-key"),
            ("AWS_REGION", "us-east-2"),
            ("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.fake"),
            ("GOOGLE_CLOUD_PROJECT", "proj"),
            (
                "CROSSBAR_ENDPOINT_BEDROCK_MANTLE_RESPONSES",
                "http://127.0.0.1:9",
            ),
            ("HOME", "/nonexistent"),
        ]);
        let offers = reach(&catalog, &env);
        let source = config_source(&offers).unwrap();
        // Secrets stay references, expanded only when the configuration loads.
        assert!(source.contains("api_key = \"${AWS_BEARER_TOKEN_BEDROCK}\""));
        assert!(!source.contains("bedrock-key"));
        let config = Config::from_toml(
            &source
                .replace("${AWS_BEARER_TOKEN_BEDROCK}", "k")
                .replace("${GOOGLE_OAUTH_ACCESS_TOKEN}", "t"),
            "discovered",
        )
        .unwrap();
        let model = config
            .models
            .iter()
            .find(|m| m.name.get_ref() == "gpt-5.4")
            .unwrap();
        let deployments: Vec<(&str, &str, f64)> = model
            .deployments
            .iter()
            .map(|d| {
                (
                    d.provider.get_ref().as_str(),
                    d.target.as_str(),
                    d.price.input,
                )
            })
            .collect();
        assert_eq!(
            deployments,
            [
                ("bedrock-mantle-responses-us-east-2", "openai.gpt-5.4", 2.75),
                ("vertex-openai-responses-global", "gpt-5.4", 2.50),
            ]
        );
        assert_eq!(model.deployments[0].context, Some(272_000));
        let mantle = config
            .providers
            .iter()
            .find(|p| p.name.get_ref() == "bedrock-mantle-responses-us-east-2")
            .unwrap();
        assert_eq!(
            mantle.endpoint.as_ref().map(|e| e.get_ref().as_str()),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(mantle.region.as_deref(), Some("us-east-2"));
        assert_eq!(mantle.cloud.as_deref(), Some("aws"));
        let vertex = config
            .providers
            .iter()
            .find(|p| p.name.get_ref() == "vertex-openai-responses-global")
            .unwrap();
        assert_eq!(vertex.project.as_deref(), Some("proj"));
        assert_eq!(vertex.location.as_deref(), Some("global"));
        assert!(config_source(&reach(&catalog, &env_of(&[]))).is_none());
    }
}
