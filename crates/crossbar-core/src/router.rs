//! Picks the deployment that serves each call. This is the foundation's stand-in: a logical
//! model tries its deployments in config order, then those of the default route's fallbacks,
//! and moves on when an attempt fails retryably before any byte reached the client. Ranking,
//! breakers and hedging replace the body of [`Router::first_success`], not its callers.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::chat::{ChatRequest, ChatResponse};
use crate::client::{ChatStream, ModelClient};
use crate::config::{Config, ConfigError, Constraints, Price};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};
use crate::provider::Provider;

/// One logical model served by one provider.
#[derive(Debug)]
pub struct Deployment {
    pub model: String,
    pub target: String,
    pub price: Price,
    pub provider: Arc<Provider>,
}

impl Deployment {
    /// A stable name for logs and headers: `model@provider`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.model, self.provider.name)
    }
}

/// One upstream call made for a request.
#[derive(Debug)]
pub struct Attempt {
    pub deployment: Arc<Deployment>,
    pub elapsed: Duration,
    /// `None` when the attempt succeeded.
    pub error: Option<Error>,
}

/// A result with the deployment that produced it and every attempt made on the way.
#[derive(Debug)]
pub struct Routed<T> {
    pub value: T,
    pub deployment: Arc<Deployment>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug)]
pub struct Router {
    models: BTreeMap<String, Vec<Arc<Deployment>>>,
    fallbacks: Vec<String>,
    constraints: Constraints,
}

impl Router {
    /// Builds providers and the catalog. `endpoints` overrides provider endpoints by name
    /// (simulators started on ephemeral ports).
    pub fn from_config(
        config: &Config,
        endpoints: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut providers = HashMap::new();
        for provider in &config.providers {
            let name = provider.name.get_ref();
            let built = Provider::from_config(provider, endpoints.get(name).map(String::as_str))?;
            providers.insert(name.clone(), Arc::new(built));
        }
        let mut models = BTreeMap::new();
        for model in &config.models {
            let name = model.name.get_ref().clone();
            let deployments = model
                .deployments
                .iter()
                .map(|d| {
                    let provider =
                        providers
                            .get(d.provider.get_ref())
                            .cloned()
                            .ok_or_else(|| {
                                ConfigError(format!(
                                    "model `{name}`: unknown provider `{}`",
                                    d.provider.get_ref()
                                ))
                            })?;
                    Ok(Arc::new(Deployment {
                        model: name.clone(),
                        target: d.target.clone(),
                        price: d.price,
                        provider,
                    }))
                })
                .collect::<Result<Vec<_>, ConfigError>>()?;
            models.insert(name, deployments);
        }
        let default_route = config.routes.get("default");
        if let Some(route) = default_route
            && (route.hedge.is_some()
                || route
                    .objective
                    .is_some_and(|o| o != crate::config::Objective::Balanced))
        {
            tracing::warn!(
                "routes.default: objective and hedge take effect with the ranking router; deployments are tried in config order"
            );
        }
        Ok(Self {
            models,
            fallbacks: default_route
                .map(|r| r.fallbacks.iter().map(|f| f.get_ref().clone()).collect())
                .unwrap_or_default(),
            constraints: default_route
                .map(|r| r.constraints.clone())
                .unwrap_or_default(),
        })
    }

    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.models.values().flatten()
    }

    /// The deployments a request for `model` may use, in the order to try them.
    fn candidates(&self, model: &str) -> Result<Vec<Arc<Deployment>>> {
        let own = self
            .models
            .get(model)
            .ok_or_else(|| Error::model_not_found(model))?;
        let fallbacks = self
            .fallbacks
            .iter()
            .filter(|f| f.as_str() != model)
            .filter_map(|f| self.models.get(f))
            .flatten();
        let eligible: Vec<_> = own
            .iter()
            .chain(fallbacks)
            .filter(|d| allowed(&self.constraints, d))
            .cloned()
            .collect();
        if eligible.is_empty() {
            return Err(Error::not_found(format!(
                "No deployment of model `{model}` satisfies the route's constraints."
            ))
            .with_param("model")
            .with_code("no_eligible_deployment"));
        }
        Ok(eligible)
    }

    /// Tries candidates in order until one succeeds or fails in a way another cannot fix.
    async fn first_success<T, F, Fut>(&self, model: &str, mut call: F) -> Result<Routed<T>>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempts = Vec::new();
        let mut last_error = None;
        for deployment in self.candidates(model)? {
            let started = Instant::now();
            match call(deployment.clone()).await {
                Ok(value) => {
                    attempts.push(Attempt {
                        deployment: deployment.clone(),
                        elapsed: started.elapsed(),
                        error: None,
                    });
                    return Ok(Routed {
                        value,
                        deployment,
                        attempts,
                    });
                }
                Err(error) => {
                    tracing::info!(deployment = %deployment.id(), status = error.status(), retryable = error.retryable, "attempt failed: {}", error.message);
                    let retryable = error.retryable;
                    attempts.push(Attempt {
                        deployment,
                        elapsed: started.elapsed(),
                        error: Some(error.clone()),
                    });
                    last_error = Some(error);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::internal("no attempt was made")))
    }

    pub async fn chat(&self, request: &ChatRequest) -> Result<Routed<ChatResponse>> {
        self.first_success(&request.model, |d| async move {
            d.provider.chat(request, &d.target).await
        })
        .await
    }

    /// Starts a stream on the first deployment whose stream produces a first event, so a
    /// failure before any byte reaches the client moves on invisibly.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<Routed<ChatStream>> {
        self.first_success(&request.model, |d| async move {
            let mut stream = d.provider.chat_stream(request, &d.target).await?;
            match stream.next().await {
                Some(Ok(first)) => {
                    let rest: ChatStream =
                        Box::pin(futures::stream::once(async move { Ok(first) }).chain(stream));
                    Ok(rest)
                }
                Some(Err(error)) => Err(error),
                None => Err(Error::stream_interrupted(format!(
                    "Provider `{}` ended its stream before any event.",
                    d.provider.name
                ))),
            }
        })
        .await
    }

    pub async fn embed(&self, request: &EmbeddingRequest) -> Result<Routed<EmbeddingResponse>> {
        self.first_success(&request.model, |d| async move {
            d.provider.embed(request, &d.target).await
        })
        .await
    }
}

fn allowed(constraints: &Constraints, deployment: &Deployment) -> bool {
    let matches = |patterns: &[String], value: &str| {
        patterns.is_empty() || patterns.iter().any(|p| glob(p, value))
    };
    matches(&constraints.clouds, &deployment.provider.cloud)
        && matches(&constraints.regions, &deployment.provider.region)
        && matches(&constraints.providers, &deployment.provider.name)
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            let Some(tail) = value.strip_prefix(prefix) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

impl ModelClient for Router {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse>> {
        Box::pin(async move { Router::chat(self, &request).await.map(|r| r.value) })
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream>> {
        Box::pin(async move { Router::chat_stream(self, &request).await.map(|r| r.value) })
    }

    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingResponse>> {
        Box::pin(async move { Router::embed(self, &request).await.map(|r| r.value) })
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_regions() {
        assert!(glob("*", "eastus"));
        assert!(glob("eu-*", "eu-west-1"));
        assert!(!glob("eu-*", "us-east-1"));
        assert!(glob("*-east-*", "us-east-1"));
        assert!(glob("us-east-1", "us-east-1"));
        assert!(!glob("us-east-1", "us-east-2"));
    }
}
