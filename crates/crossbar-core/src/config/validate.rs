//! Checks run after parsing and expansion: names, references between sections and every
//! setting's range, each failure placed at `file:line: key`. What a provider kind requires comes
//! from the provider table (`crate::kinds`); each provider's raw settings become its kind's typed
//! ones here, once.

use std::collections::HashSet;

use toml::Spanned;

use super::{
    AwsAuth, AzureAuth, AzureSettings, BedrockSettings, Config, ConfigError, GoogleAuth,
    HedgeAfter, MAX_ALIAS_STARS, OpenAiOptions, ProviderConfig, ProviderKind, VertexSettings,
};
use crate::kinds::{Access, Builder, Kind, ProviderSettings};

/// What a simulated provider that names none gets: Azure OpenAI's `api_version` (a real one must
/// name it), Bedrock's region, Vertex AI's project and location.
const SIM_AZURE_API_VERSION: &str = "2024-10-21";
const SIM_REGION: &str = "us-east-1";
const SIM_PROJECT: &str = "crossbar-sim";
const SIM_LOCATION: &str = "us-central1";

impl Config {
    /// Checks everything and gives each provider its typed settings.
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        let settings = self.check()?;
        for (provider, settings) in self.providers.iter_mut().zip(settings) {
            provider.settings = Some(settings);
        }
        Ok(())
    }

    /// The checks, and each provider's typed settings.
    fn check(&self) -> Result<Vec<ProviderSettings>, ConfigError> {
        self.validate_store()?;
        let mut provider_names = HashSet::new();
        let mut settings = Vec::with_capacity(self.providers.len());
        for (i, provider) in self.providers.iter().enumerate() {
            let at = |key: &str| format!("providers[{i}].{key}");
            let name = provider.name.get_ref();
            if !valid_name(name) {
                return Err(self.error_at(
                    &provider.name,
                    &at("name"),
                    "must be non-empty letters, digits, '-', '_' or '.'",
                ));
            }
            if !provider_names.insert(name.as_str()) {
                return Err(self.error_at(
                    &provider.name,
                    &at("name"),
                    format!("duplicate provider name `{name}`"),
                ));
            }
            if let Some(endpoint) = &provider.endpoint
                && !(endpoint.get_ref().starts_with("http://")
                    || endpoint.get_ref().starts_with("https://"))
            {
                return Err(self.error_at(
                    endpoint,
                    &at("endpoint"),
                    "must be an http:// or https:// URL",
                ));
            }
            let needs = |what: &str| {
                self.error_at(
                    &provider.name,
                    &at(what),
                    format!("is required for kind {:?}", provider.kind),
                )
            };
            if let Some(setting) = crate::kinds::missing_setting(provider) {
                return Err(needs(setting.key()));
            }
            if provider.kind == ProviderKind::Sim {
                match &provider.dialect {
                    None => return Err(needs("dialect")),
                    Some(dialect) if crate::kinds::simulated(dialect.get_ref()).is_none() => {
                        return Err(self.error_at(
                            dialect,
                            &at("dialect"),
                            format!(
                                "unknown dialect `{}`, expected one of {:?}",
                                dialect.get_ref(),
                                crate::kinds::sim_dialects()
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
            if provider.kind != ProviderKind::Sim {
                if let Some(sim) = &provider.sim {
                    return Err(self.error_at(sim, &at("sim"), "is only allowed for kind \"sim\""));
                }
                if let Some(dialect) = &provider.dialect {
                    return Err(self.error_at(
                        dialect,
                        &at("dialect"),
                        "is only allowed for kind \"sim\" (the kind decides the dialect)",
                    ));
                }
            }
            let row = crate::kinds::of(provider)
                .map_err(|message| self.error_at(&provider.name, &at("api"), message))?;
            settings.push(self.settle(provider, row, &at)?);
        }
        let mut model_names = HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let name = model.name.get_ref();
            if name.is_empty() || !model_names.insert(name.as_str()) {
                return Err(self.error_at(
                    &model.name,
                    &format!("models[{i}].name"),
                    format!("empty or duplicate model name `{name}`"),
                ));
            }
            if model.deployments.is_empty() {
                return Err(self.error_at(
                    &model.name,
                    &format!("models[{i}].deployments"),
                    "needs at least one deployment",
                ));
            }
            for (j, deployment) in model.deployments.iter().enumerate() {
                let key = format!("models[{i}].deployments[{j}]");
                if !provider_names.contains(deployment.provider.get_ref().as_str()) {
                    return Err(self.error_at(
                        &deployment.provider,
                        &format!("{key}.provider"),
                        format!("unknown provider `{}`", deployment.provider.get_ref()),
                    ));
                }
                let price = deployment.price;
                let prices = [
                    Some(price.input),
                    Some(price.output),
                    price.cached_input,
                    price.cache_write,
                ];
                if prices
                    .into_iter()
                    .flatten()
                    .any(|p| !p.is_finite() || p < 0.0)
                {
                    return Err(self.error_at(
                        &deployment.provider,
                        &format!("{key}.price"),
                        "prices must be finite and non-negative",
                    ));
                }
            }
        }
        self.validate_routes(&model_names)?;
        self.validate_aliases(&model_names)?;
        Ok(settings)
    }

    /// A provider's settings as its kind (`row`) uses them; a simulated provider gets what it
    /// lacks made up. `at` names a key of this provider.
    fn settle(
        &self,
        provider: &ProviderConfig,
        row: &Kind,
        at: &dyn Fn(&str) -> String,
    ) -> Result<ProviderSettings, ConfigError> {
        let simulated = provider.kind == ProviderKind::Sim;
        let needs = |what: &str| {
            self.error_at(
                &provider.name,
                &at(what),
                format!("is required for kind {:?}", provider.kind),
            )
        };
        let options = OpenAiOptions {
            api: provider.api.unwrap_or_default(),
            max_tokens_field: provider.max_tokens_field,
        };
        let access = match row.build {
            Builder::Plain(build) => Access::Plain(build),
            Builder::Azure(build) => {
                let azure = AzureSettings {
                    api_version: (provider.api_version.as_deref())
                        .unwrap_or(SIM_AZURE_API_VERSION)
                        .to_owned(),
                    auth: provider.auth.unwrap_or(AzureAuth::ApiKey),
                };
                Access::Azure(azure, build)
            }
            Builder::Bedrock(build) => {
                let region = match provider.region.as_deref().filter(|r| !r.is_empty()) {
                    Some(region) => region,
                    None if simulated => SIM_REGION,
                    None => return Err(needs("region")),
                };
                // It goes into the host name and the signature's scope.
                if !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(self.error_at(
                        &provider.name,
                        &at("region"),
                        format!("region `{region}` is not an AWS region name"),
                    ));
                }
                let auth = match (&provider.api_key, &provider.aws) {
                    (Some(key), Some(_)) => {
                        return Err(self.error_at(
                            key,
                            &at("api_key"),
                            "give either api_key (a Bedrock API key) or aws credentials, not both",
                        ));
                    }
                    (Some(_), None) => AwsAuth::ApiKey,
                    (None, None) if simulated => AwsAuth::Simulated,
                    (None, aws) => AwsAuth::SigV4(aws.clone()),
                };
                let region = region.to_owned();
                Access::Bedrock(BedrockSettings { region, auth }, build)
            }
            Builder::Vertex(build) => {
                let made_up = |value: &str| simulated.then(|| value.to_owned());
                let project = (provider.project.clone())
                    .or_else(|| made_up(SIM_PROJECT))
                    .ok_or_else(|| needs("project"))?;
                let location = (provider.location.clone())
                    .or_else(|| simulated.then(|| provider.region.clone()).flatten())
                    .or_else(|| made_up(SIM_LOCATION))
                    .ok_or_else(|| needs("location"))?;
                let auth = match &provider.api_key {
                    Some(_) => GoogleAuth::Token,
                    None if simulated => GoogleAuth::Simulated,
                    None => GoogleAuth::Google {
                        credentials: provider.google_credentials.clone(),
                    },
                };
                Access::Vertex(
                    VertexSettings {
                        project,
                        location,
                        auth,
                    },
                    build,
                )
            }
        };
        Ok(ProviderSettings { access, options })
    }

    /// Aliases: each key a name or pattern that can apply, each target a model or a route
    /// that lists models.
    fn validate_aliases(&self, model_names: &HashSet<&str>) -> Result<(), ConfigError> {
        for (alias, target) in &self.aliases {
            let key = format!("aliases.\"{alias}\"");
            let name = target.get_ref().as_str();
            let problem = if alias.trim().is_empty() {
                Some("an alias must not be empty".to_owned())
            } else if alias.matches('*').count() > MAX_ALIAS_STARS {
                Some(format!("a pattern may hold at most {MAX_ALIAS_STARS} `*`"))
            } else if model_names.contains(alias.as_str()) {
                Some(format!(
                    "`{alias}` is a model's name, which always wins: this alias could never apply"
                ))
            } else if self.routes.contains_key(alias) {
                Some(format!(
                    "`{alias}` is a route's name, which always wins: this alias could never apply"
                ))
            } else if !(model_names.contains(name) || self.route_lists_models(name)) {
                Some(format!(
                    "unknown model `{name}` (an alias leads to a model or a route that lists models)"
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(self.error_at(target, &key, message));
            }
        }
        Ok(())
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let store = &self.store;
        if let Some(url) = &store.url {
            let text = url.get_ref().0.as_str();
            if text.is_empty() {
                return Err(self.error_at(url, "store.url", "must not be empty"));
            }
            if text.contains("://")
                && !["sqlite://", "postgres://", "postgresql://"]
                    .iter()
                    .any(|scheme| text.starts_with(scheme))
            {
                return Err(self.error_at(
                    url,
                    "store.url",
                    "must be sqlite://FILE, postgres://... or a file path",
                ));
            }
        }
        if let Some(url) = &self.redis.url {
            let text = url.get_ref().0.as_str();
            if !["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|scheme| text.starts_with(scheme))
            {
                return Err(self.error_at(
                    url,
                    "redis.url",
                    "must be redis://host:port, rediss://... or unix://PATH",
                ));
            }
        }
        for (value, key) in [
            (&store.queue_capacity, "store.queue_capacity"),
            (&store.batch_size, "store.batch_size"),
        ] {
            if let Some(v) = value
                && *v.get_ref() == 0
            {
                return Err(self.error_at(v, key, "must be at least 1"));
            }
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !["http://", "https://"]
                .iter()
                .any(|scheme| endpoint.get_ref().starts_with(scheme))
        {
            return Err(self.error_at(
                endpoint,
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        if let Some(token) = &self.admin.token
            && token.get_ref().0.len() < 16
        {
            return Err(self.error_at(token, "admin.token", "must be at least 16 characters"));
        }
        Ok(())
    }

    /// Routes: names, the models they use, and every setting's range.
    fn validate_routes(&self, model_names: &HashSet<&str>) -> Result<(), ConfigError> {
        for (route, spanned) in &self.routes {
            let config = spanned.get_ref();
            let key = |field: &str| format!("routes.{route}.{field}");
            if !valid_name(route) {
                return Err(self.error_at(
                    spanned,
                    &format!("routes.{route}"),
                    "a route name must be letters, digits, '-', '_' or '.'",
                ));
            }
            for model in &config.models {
                if !model_names.contains(model.get_ref().as_str()) {
                    return Err(self.error_at(
                        model,
                        &key("models"),
                        format!("unknown model `{}`", model.get_ref()),
                    ));
                }
            }
            if let Some(first) = config.models.first() {
                if route == "default" {
                    return Err(self.error_at(
                        first,
                        &key("models"),
                        "the default route applies to every model; list models in a named route",
                    ));
                }
                if model_names.contains(route.as_str()) {
                    return Err(self.error_at(
                        first,
                        &key("models"),
                        format!("a route named after model `{route}` is that model's policy and cannot list models"),
                    ));
                }
            }
            for fallback in config.fallbacks.iter().flatten() {
                if !model_names.contains(fallback.get_ref().as_str()) {
                    return Err(self.error_at(
                        fallback,
                        &key("fallbacks"),
                        format!("unknown model `{}`", fallback.get_ref()),
                    ));
                }
            }
            let share = |value: &Option<Spanned<f64>>, field: &str| match value {
                Some(v) if !(0.0..=1.0).contains(v.get_ref()) => {
                    Err(self.error_at(v, &key(field), "must be between 0 and 1"))
                }
                _ => Ok(()),
            };
            share(&config.cost_weight, "cost_weight")?;
            share(&config.explore, "explore")?;
            if let Some(attempts) = &config.attempts
                && !(1..=10).contains(attempts.get_ref())
            {
                return Err(self.error_at(attempts, &key("attempts"), "must be 1 to 10"));
            }
            if let Some(hedge) = &config.hedge {
                HedgeAfter::parse(hedge.after.get_ref())
                    .map_err(|e| self.error_at(&hedge.after, &key("hedge.after"), e))?;
                share(&hedge.budget, "hedge.budget")?;
            }
            self.validate_shares(spanned, route, model_names)?;
            if let Some(cache) = &config.cache {
                cache
                    .validate()
                    .map_err(|e| self.error_at(spanned, &key("cache"), e))?;
            }
            if let Some(backoff) = &config.backoff {
                let b = backoff.get_ref();
                if b.base_ms.unwrap_or(0) > b.max_ms.unwrap_or(u64::MAX) {
                    return Err(self.error_at(
                        backoff,
                        &key("backoff"),
                        "base_ms must not exceed max_ms",
                    ));
                }
            }
            if let Some(timeouts) = &config.timeouts
                && (timeouts.get_ref().ttft_ms == Some(0) || timeouts.get_ref().total_ms == Some(0))
            {
                return Err(self.error_at(
                    timeouts,
                    &key("timeouts"),
                    "deadlines must be positive",
                ));
            }
            if let Some(breaker) = &config.breaker {
                if route != "default" {
                    return Err(self.error_at(
                        breaker,
                        &key("breaker"),
                        "only allowed in routes.default: a breaker belongs to the deployment, whatever route uses it",
                    ));
                }
                let b = breaker.get_ref();
                let bad = if b.failures == Some(0) {
                    Some("failures must be at least 1")
                } else if b.ratio.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
                    Some("ratio must be above 0 and at most 1")
                } else if b.window_s == Some(0) || b.cooldown_s == Some(0) {
                    Some("window_s and cooldown_s must be positive")
                } else {
                    None
                };
                if let Some(message) = bad {
                    return Err(self.error_at(breaker, &key("breaker"), message));
                }
            }
        }
        Ok(())
    }

    /// A route's `split` and `shadow`: each names one known deployment (`model@provider`) or
    /// model, with a share in `(0, 1]`; the split's shares sum to at most 1.
    fn validate_shares(
        &self,
        spanned: &Spanned<super::RouteConfig>,
        route: &str,
        model_names: &HashSet<&str>,
    ) -> Result<(), ConfigError> {
        let config = spanned.get_ref();
        let deployments: HashSet<String> = self
            .models
            .iter()
            .flat_map(|m| {
                m.deployments
                    .iter()
                    .map(|d| format!("{}@{}", m.name.get_ref(), d.provider.get_ref()))
            })
            .collect();
        let target = |deployment: &Option<String>,
                      model: &Option<String>,
                      share: f64|
         -> Result<(), String> {
            match (deployment, model) {
                (Some(d), None) if !deployments.contains(d) => {
                    return Err(format!(
                        "unknown deployment `{d}` (write it `model@provider`)"
                    ));
                }
                (None, Some(m)) if !model_names.contains(m.as_str()) => {
                    return Err(format!("unknown model `{m}`"));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => return Err("name exactly one of `deployment` or `model`".to_owned()),
            }
            if !(share > 0.0 && share <= 1.0) {
                return Err("share must be above 0 and at most 1".to_owned());
            }
            Ok(())
        };
        let key = |field: &str| format!("routes.{route}.{field}");
        if let Some(split) = &config.split {
            let mut sum = 0.0;
            for entry in split.get_ref() {
                target(&entry.deployment, &entry.model, entry.share)
                    .map_err(|e| self.error_at(split, &key("split"), e))?;
                sum += entry.share;
            }
            if sum > 1.0 + 1e-9 {
                return Err(self.error_at(
                    split,
                    &key("split"),
                    format!("shares sum to {sum}, more than 1"),
                ));
            }
        }
        if let Some(shadow) = &config.shadow {
            let s = shadow.get_ref();
            target(&s.deployment, &s.model, s.share)
                .map_err(|e| self.error_at(shadow, &key("shadow"), e))?;
            if s.max_concurrency == Some(0) {
                return Err(self.error_at(
                    shadow,
                    &key("shadow"),
                    "max_concurrency must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// Whether `name` is a route a request may name as its model.
    fn route_lists_models(&self, name: &str) -> bool {
        self.routes
            .get(name)
            .is_some_and(|r| !r.get_ref().models.is_empty())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, HedgeAfter, HostedTools, Objective, UnknownFields};

    #[test]
    fn bad_values_are_located() {
        let source = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [\n  { provider = \"nope\", target = \"t\" },\n]\n";
        let err = Config::from_toml(source, "c.toml").unwrap_err().0;
        assert_eq!(
            err,
            "c.toml:9: models[0].deployments[0].provider: unknown provider `nope`"
        );
        let source = "[[providers]]\nname = \"a\"\nkind = \"warp\"\n";
        let err = Config::from_toml(source, "c.toml").unwrap_err().0;
        assert!(
            err.starts_with("c.toml:3: providers[0].kind: unknown variant, expected one of "),
            "{err}"
        );
        let source = "[[providers]]\nname = \"az\"\nkind = \"azure-openai\"\nendpoint = \"https://x\"\napi_key = \"k\"\n";
        let err = Config::from_toml(source, "c.toml").unwrap_err().0;
        assert_eq!(
            err,
            "c.toml:2: providers[0].api_version: is required for kind AzureOpenai"
        );
    }

    /// What a kind's builder could refuse is refused at load, placed at its key, with the
    /// builders' former messages.
    #[test]
    fn provider_settings_are_checked_once_at_load() {
        let err = |settings: &str| {
            let source = format!("[[providers]]\nname = \"p\"\n{settings}\n");
            Config::from_toml(&source, "t.toml").unwrap_err().0
        };
        assert_eq!(
            err("kind = \"sim\"\ndialect = \"bedrock-mantle-chat\"\nregion = \"US East\""),
            "t.toml:2: providers[0].region: region `US East` is not an AWS region name"
        );
        assert_eq!(
            err("kind = \"bedrock\"\nregion = \"us-west-2/../x\""),
            "t.toml:2: providers[0].region: region `us-west-2/../x` is not an AWS region name"
        );
        assert_eq!(
            err(
                "kind = \"sim\"\ndialect = \"bedrock-mantle-chat\"\napi_key = \"k\"\naws = { profile = \"p\" }"
            ),
            "t.toml:5: providers[0].api_key: give either api_key (a Bedrock API key) or aws credentials, not both"
        );
        assert_eq!(
            err("kind = \"bedrock\"\nregion = \"\""),
            "t.toml:2: providers[0].region: is required for kind Bedrock"
        );
        assert_eq!(
            err("kind = \"anthropic\"\napi_key = \"k\"\napi = \"responses\""),
            "t.toml:2: providers[0].api: `api = \"responses\"` applies to OpenAI and Azure OpenAI providers only"
        );
    }

    /// A simulated provider gets what its kind requires made up; a real one's is taken as is.
    #[test]
    fn simulated_providers_get_made_up_settings() {
        use crate::config::{AwsAuth, GoogleAuth, VertexSettings};
        use crate::kinds::Access;
        let access = |settings: &str| {
            let source = format!("[[providers]]\nname = \"p\"\n{settings}\n");
            let config = Config::from_toml(&source, "t.toml").unwrap();
            config.providers[0].settings.clone().unwrap().access
        };
        let Access::Vertex(vertex, _) = access("kind = \"sim\"\ndialect = \"vertex-openai-chat\"")
        else {
            panic!("not Vertex settings");
        };
        assert_eq!(
            vertex,
            VertexSettings {
                project: "crossbar-sim".to_owned(),
                location: "us-central1".to_owned(),
                auth: GoogleAuth::Simulated,
            }
        );
        let Access::Vertex(vertex, _) =
            access("kind = \"vertex\"\nproject = \"p1\"\nlocation = \"global\"")
        else {
            panic!("not Vertex settings");
        };
        assert_eq!(
            vertex,
            VertexSettings {
                project: "p1".to_owned(),
                location: "global".to_owned(),
                auth: GoogleAuth::Google { credentials: None },
            }
        );
        let Access::Bedrock(bedrock, _) = access("kind = \"sim\"\ndialect = \"bedrock\"") else {
            panic!("not Bedrock settings");
        };
        assert_eq!(bedrock.region, "us-east-1");
        assert!(matches!(bedrock.auth, AwsAuth::Simulated));
        let Access::Azure(azure, _) = access("kind = \"sim\"\ndialect = \"azure\"") else {
            panic!("not Azure settings");
        };
        assert_eq!(azure.api_version, "2024-10-21");
    }

    #[test]
    fn route_settings_are_validated_with_locations() {
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"t\" }]\n\n";
        let ok = format!(
            "{base}[routes.default]\nobjective = \"round-robin\"\nattempts = 4\nhedge = {{ after = \"p95\", budget = 0.2 }}\nbreaker = {{ failures = 3, cooldown_s = 10 }}\naffinity = {{ ttl_s = 60 }}\n\n[routes.fast]\nmodels = [\"m\"]\nobjective = \"latency\"\ntimeouts = {{ ttft_ms = 2000 }}\n"
        );
        let config = Config::from_toml(&ok, "r.toml").unwrap();
        assert_eq!(
            config.routes["default"].get_ref().objective,
            Some(Objective::RoundRobin)
        );
        let cases = [
            (
                "[routes.default]\nhedge = { after = \"soon\" }\n",
                "r.toml:11: routes.default.hedge.after: ",
            ),
            (
                "[routes.default]\nhedge = { after = \"p100\" }\n",
                "r.toml:11: routes.default.hedge.after: ",
            ),
            (
                "[routes.default]\n\nattempts = 0\n",
                "r.toml:12: routes.default.attempts: must be 1 to 10",
            ),
            (
                "[routes.default]\ncost_weight = 1.5\n",
                "r.toml:11: routes.default.cost_weight: must be between 0 and 1",
            ),
            (
                "[routes.default]\nfallbacks = [\"nope\"]\n",
                "r.toml:11: routes.default.fallbacks: unknown model `nope`",
            ),
            (
                "[routes.x]\nmodels = [\"m\", \"zz\"]\n",
                "r.toml:11: routes.x.models: unknown model `zz`",
            ),
            (
                "[routes.m]\nmodels = [\"m\"]\n",
                "r.toml:11: routes.m.models: a route named after model `m`",
            ),
            (
                "[routes.default]\nmodels = [\"m\"]\n",
                "r.toml:11: routes.default.models: ",
            ),
            (
                "[routes.x]\nbreaker = { failures = 2 }\n",
                "r.toml:11: routes.x.breaker: only allowed in routes.default",
            ),
            (
                "[routes.default]\nbreaker = { ratio = 0.0 }\n",
                "r.toml:11: routes.default.breaker: ratio",
            ),
            (
                "[routes.default]\ntimeouts = { ttft_ms = 0 }\n",
                "r.toml:11: routes.default.timeouts: deadlines must be positive",
            ),
            ("[routes.default]\nobjective = \"fastest\"\n", "r.toml"),
        ];
        for (route, expected) in cases {
            let err = Config::from_toml(&format!("{base}{route}"), "r.toml")
                .unwrap_err()
                .0;
            assert!(err.starts_with(expected), "{route}: {err}");
        }
        assert_eq!(
            HedgeAfter::parse("250ms"),
            Ok(HedgeAfter::Fixed(std::time::Duration::from_millis(250)))
        );
        assert_eq!(HedgeAfter::parse("p90"), Ok(HedgeAfter::Percentile(90)));
    }

    #[test]
    fn aliases_are_validated_with_locations() {
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"t\" }]\n\n[routes.fast]\nmodels = [\"m\"]\n\n[routes.policy]\nobjective = \"cost\"\n\n";
        let ok = format!(
            "{base}[aliases]\n\"claude-*\" = \"m\"\n\"my-fast\" = \"fast\"\n\"*-*-*-*\" = \"m\"\n"
        );
        let config = Config::from_toml(&ok, "a.toml").unwrap();
        assert_eq!(config.aliases["claude-*"].get_ref(), "m");
        assert_eq!(config.aliases["my-fast"].get_ref(), "fast");
        let cases = [
            (
                "\"x\" = \"nope\"",
                "a.toml:17: aliases.\"x\": unknown model `nope` (an alias leads to a model or a route that lists models)",
            ),
            (
                "\"x\" = \"policy\"",
                "a.toml:17: aliases.\"x\": unknown model `policy` (an alias leads to a model or a route that lists models)",
            ),
            (
                "\"m\" = \"fast\"",
                "a.toml:17: aliases.\"m\": `m` is a model's name, which always wins: this alias could never apply",
            ),
            (
                "\"fast\" = \"m\"",
                "a.toml:17: aliases.\"fast\": `fast` is a route's name, which always wins: this alias could never apply",
            ),
            (
                "\"*-*-*-*-*\" = \"m\"",
                "a.toml:17: aliases.\"*-*-*-*-*\": a pattern may hold at most 4 `*`",
            ),
            (
                "\"\" = \"m\"",
                "a.toml:17: aliases.\"\": an alias must not be empty",
            ),
        ];
        for (alias, expected) in cases {
            let err = Config::from_toml(&format!("{base}[aliases]\n{alias}\n"), "a.toml")
                .unwrap_err()
                .0;
            assert_eq!(err, expected, "{alias}");
        }
    }

    #[test]
    fn route_policies_parse_and_refuse_unknown_values() {
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"t\" }]\n\n";
        let config = Config::from_toml(
            &format!("{base}[routes.default]\nhosted_tools = \"drop\"\nunknown_fields = \"pass\"\n\n[routes.m]\nhosted_tools = \"refuse\"\n"),
            "p.toml",
        )
        .unwrap();
        let default = config.routes["default"].get_ref();
        assert_eq!(default.hosted_tools, Some(HostedTools::Drop));
        assert_eq!(default.unknown_fields, Some(UnknownFields::Pass));
        let m = config.routes["m"].get_ref();
        assert_eq!(m.hosted_tools, Some(HostedTools::Refuse));
        assert_eq!(m.unknown_fields, None);
        let err = Config::from_toml(
            &format!("{base}[routes.default]\nunknown_fields = \"ignore\"\n"),
            "p.toml",
        )
        .unwrap_err()
        .0;
        assert_eq!(
            err,
            "p.toml:11: routes.default.unknown_fields: unknown variant, expected `reject` or `pass`"
        );
    }
}
