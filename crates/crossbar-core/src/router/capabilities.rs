//! What a request needs of a deployment (image, document or audio input, reasoning, tools, a
//! context window and an output allowance), and which deployments can give it: decided before
//! the first attempt from each deployment's `[[models]]` entry, else the catalog's, so a
//! request never learns from an upstream 400 that it went to the wrong door. A deployment whose
//! capabilities nobody states takes everything, as before the catalog existed.

use std::sync::Arc;

use crate::catalog::{Capabilities, Capability, CatalogDeployment};
use crate::chat::{ChatRequest, ContentPart};
use crate::config::DeploymentConfig;
use crate::error::{Error, Result};
use crate::router::Deployment;

/// What a deployment accepts; `None`: not known, so not enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepts {
    pub capabilities: Option<Capabilities>,
    /// Prompt tokens its context window holds.
    pub context: Option<u64>,
    /// The most output tokens a request may ask for.
    pub max_output: Option<u64>,
}

impl Accepts {
    /// The configuration entry's statements, each replacing the catalog's.
    pub fn resolve(config: &DeploymentConfig, catalog: Option<&CatalogDeployment>) -> Self {
        let limits = catalog.map(|c| c.limits);
        Self {
            capabilities: config
                .capabilities
                .or_else(|| limits.map(|l| l.capabilities)),
            context: config.context.or_else(|| limits.and_then(|l| l.context)),
            max_output: config
                .max_output
                .or_else(|| limits.and_then(|l| l.max_output)),
        }
    }

    fn has(&self, capability: Capability) -> bool {
        self.capabilities.is_none_or(|set| set.has(capability))
    }
}

/// What one request needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub capabilities: Capabilities,
    /// `max_tokens` as asked.
    pub max_output: Option<u64>,
}

/// The capability a content part needs, if any.
fn part_needs(part: &ContentPart) -> Option<Capability> {
    match part {
        ContentPart::Text { .. } => None,
        ContentPart::Image { .. } => Some(Capability::Vision),
        ContentPart::Document { .. } => Some(Capability::Documents),
        ContentPart::Audio { .. } => Some(Capability::Audio),
    }
}

/// What `request` needs of the deployment that serves it.
pub fn needs(request: &ChatRequest) -> Needs {
    let mut capabilities = request
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(part_needs)
        .fold(Capabilities::default(), Capabilities::with);
    if !request.tools.is_empty() {
        capabilities = capabilities.with(Capability::Tools);
    }
    let effort = request
        .reasoning_effort
        .as_deref()
        .is_some_and(|e| !e.eq_ignore_ascii_case("none"));
    if effort || request.reasoning_budget.is_some_and(|b| b > 0) {
        capabilities = capabilities.with(Capability::Reasoning);
    }
    Needs {
        capabilities,
        max_output: request.max_tokens.map(u64::from),
    }
}

/// Whether a deployment gives what a request needs, its prompt being `prompt_tokens` there.
fn fits(accepts: &Accepts, needs: &Needs, prompt_tokens: f64) -> bool {
    needs.capabilities.iter().all(|c| accepts.has(c))
        && accepts
            .context
            .is_none_or(|context| prompt_tokens <= context as f64)
        && match (needs.max_output, accepts.max_output) {
            (Some(asked), Some(most)) => asked <= most,
            _ => true,
        }
}

/// Keeps the deployments that give what the request needs; with none, the client's 400 naming
/// what no deployment of `model` has.
pub(super) fn admit<'r>(
    model: &str,
    deployments: Vec<(&'r Arc<Deployment>, f64)>,
    needs: &Needs,
) -> Result<Vec<(&'r Arc<Deployment>, f64)>> {
    let fitting = deployments
        .iter()
        .filter(|(d, prompt)| fits(&d.accepts, needs, *prompt))
        .count();
    if fitting == deployments.len() && fitting > 0 {
        return Ok(deployments);
    }
    if fitting > 0 {
        return Ok(deployments
            .into_iter()
            .filter(|(d, prompt)| fits(&d.accepts, needs, *prompt))
            .collect());
    }
    Err(refusal(model, &deployments, needs))
}

/// Why no deployment fits: the first need no deployment meets, else that no single one meets
/// them all.
fn refusal(model: &str, deployments: &[(&Arc<Deployment>, f64)], needs: &Needs) -> Error {
    for capability in needs.capabilities.iter() {
        if !deployments.iter().any(|(d, _)| d.accepts.has(capability)) {
            return Error::invalid_request(format!(
                "No deployment of model `{model}` accepts {}.",
                capability.describe()
            ))
            .with_param("model")
            .with_code("capability_unavailable");
        }
    }
    let largest_context = deployments
        .iter()
        .map(|(d, _)| d.accepts.context)
        .try_fold(0u64, |most, context| context.map(|c| most.max(c)));
    if let Some(largest) = largest_context
        && deployments
            .iter()
            .all(|(d, prompt)| d.accepts.context.is_some_and(|c| *prompt > c as f64))
    {
        let prompt = deployments
            .iter()
            .map(|(_, p)| *p)
            .fold(f64::INFINITY, f64::min);
        return Error::invalid_request(format!(
            "This request's prompt (about {} tokens) is longer than the context window of every deployment of model `{model}` (at most {largest} tokens).",
            prompt.ceil()
        ))
        .with_param("messages")
        .with_code("context_length_exceeded");
    }
    if let Some(asked) = needs.max_output {
        let most = deployments
            .iter()
            .map(|(d, _)| d.accepts.max_output)
            .try_fold(0u64, |most, m| m.map(|m| most.max(m)));
        if let Some(most) = most
            && asked > most
        {
            return Error::invalid_request(format!(
                "`max_tokens` is {asked}, more than any deployment of model `{model}` allows (at most {most})."
            ))
            .with_param("max_tokens")
            .with_code("capability_unavailable");
        }
    }
    let wanted: Vec<&str> = needs
        .capabilities
        .iter()
        .map(Capability::describe)
        .collect();
    Error::invalid_request(format!(
        "No single deployment of model `{model}` accepts everything this request needs ({}, its prompt length and `max_tokens`).",
        wanted.join(", ")
    ))
    .with_param("model")
    .with_code("capability_unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ImageSource, Message, Role, Tool};

    fn user(parts: Vec<ContentPart>) -> Message {
        Message::new(Role::User, parts)
    }

    #[test]
    fn a_request_needs_what_its_parts_tools_and_reasoning_ask() {
        let plain = ChatRequest::new("m", vec![user(vec![ContentPart::text("hi")])]);
        assert_eq!(needs(&plain), Needs::default());
        let image = ContentPart::Image {
            source: ImageSource::Url("https://example.com/cat.png".to_owned()),
            detail: None,
        };
        let document = ContentPart::Document {
            media_type: "application/pdf".to_owned(),
            data: "JVBERi0=".to_owned(),
            filename: None,
        };
        let mut rich = ChatRequest::new(
            "m",
            vec![user(vec![ContentPart::text("look"), image, document])],
        );
        rich.tools = vec![Tool {
            name: "f".to_owned(),
            description: None,
            parameters: None,
            strict: None,
        }];
        rich.reasoning_effort = Some("high".to_owned());
        rich.max_tokens = Some(500);
        assert_eq!(
            needs(&rich),
            Needs {
                capabilities: Capabilities::from([
                    Capability::Tools,
                    Capability::Vision,
                    Capability::Documents,
                    Capability::Reasoning
                ]),
                max_output: Some(500),
            }
        );
        let mut no_effort = ChatRequest::new(
            "m",
            vec![user(vec![ContentPart::Audio {
                format: "wav".to_owned(),
                data: "UklGRg==".to_owned(),
            }])],
        );
        no_effort.reasoning_effort = Some("none".to_owned());
        no_effort.reasoning_budget = Some(0);
        assert_eq!(
            needs(&no_effort).capabilities,
            Capabilities::from([Capability::Audio])
        );
    }

    #[test]
    fn fitting_checks_capabilities_context_and_output() {
        let accepts = Accepts {
            capabilities: Some(Capabilities::from([Capability::Tools, Capability::Vision])),
            context: Some(1000),
            max_output: Some(100),
        };
        let vision = Needs {
            capabilities: Capabilities::from([Capability::Vision]),
            max_output: Some(100),
        };
        assert!(fits(&accepts, &vision, 1000.0));
        assert!(!fits(&accepts, &vision, 1000.5));
        let more_output = Needs {
            max_output: Some(101),
            ..vision
        };
        assert!(!fits(&accepts, &more_output, 10.0));
        let audio = Needs {
            capabilities: Capabilities::from([Capability::Audio]),
            max_output: None,
        };
        assert!(!fits(&accepts, &audio, 10.0));
        // Nothing stated: everything fits.
        assert!(fits(&Accepts::default(), &audio, 1e9));
    }
}
