//! Weighted and canary routing: a fixed share of a route's conversations starts on a named
//! deployment or model, and the rest route as usual. Which side a conversation lands on comes
//! from a hash of the conversation (its cacheable prefix: instructions, tools and first
//! message, or the client's `prompt_cache_key`) and the caller's key, so every turn of one
//! conversation lands on the same side, on every replica of the same build.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::chat::ChatRequest;

/// Where a share of requests goes: a deployment (`model@provider`) or a logical model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Deployment(String),
    Model(String),
}

impl Target {
    /// From a config entry's `deployment` / `model` (validation made sure exactly one is set).
    pub fn from_config(deployment: Option<&String>, model: Option<&String>) -> Option<Self> {
        deployment
            .map(|d| Self::Deployment(d.clone()))
            .or_else(|| model.map(|m| Self::Model(m.clone())))
    }

    /// The logical model whose deployments the target needs among the candidates.
    pub fn model(&self) -> &str {
        match self {
            Self::Deployment(id) => id.split_once('@').map_or(id.as_str(), |(model, _)| model),
            Self::Model(model) => model,
        }
    }

    pub fn matches(&self, deployment: &super::Deployment) -> bool {
        match self {
            Self::Deployment(id) => id.split_once('@').is_some_and(|(model, provider)| {
                deployment.model == model && deployment.provider.name == provider
            }),
            Self::Model(model) => deployment.model == *model,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deployment(id) => write!(f, "{id}"),
            Self::Model(model) => write!(f, "{model}"),
        }
    }
}

/// A share of a route's conversations and where it starts.
#[derive(Clone, Debug)]
pub struct Split {
    pub target: Target,
    pub share: f64,
}

/// Where copies of a share of a route's requests go (see the server's shadow module).
#[derive(Clone, Debug)]
pub struct Shadow {
    pub target: Target,
    pub share: f64,
    /// Copies in flight at once; beyond it copies are dropped and counted.
    pub max_concurrency: usize,
    /// Leave for a copy in flight: `max_concurrency` of them.
    pub permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Shadow copies in flight at once when the route does not say.
pub const DEFAULT_SHADOW_CONCURRENCY: usize = 8;

/// The target whose band of `[0, 1)` holds `point`: the first entry takes `[0, share₁)`, the
/// next `[share₁, share₁ + share₂)`, and so on; past the last band, `None` (route as usual).
pub fn pick(splits: &[Split], point: f64) -> Option<&Target> {
    let mut upper = 0.0;
    for split in splits {
        upper += split.share;
        if point < upper {
            return Some(&split.target);
        }
    }
    None
}

/// The conversation's place in `[0, 1)`: the same for every turn of a conversation (the
/// prefix [`super::affinity::prefix_key`] hashes does not change as turns are added), spread
/// evenly across conversations. `caller` (the key's id) keeps two callers sending the same
/// first message apart. `salt` gives independent draws (the shadow's share draws apart from
/// the split's).
pub fn point(request: &ChatRequest, caller: Option<&str>, salt: &str) -> f64 {
    let mut hasher = DefaultHasher::new();
    salt.hash(&mut hasher);
    super::affinity::prefix_key(request, 0).hash(&mut hasher);
    caller.hash(&mut hasher);
    unit(hasher.finish())
}

/// A 64-bit hash as a float in `[0, 1)`, from its top 53 bits.
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, Role};

    fn splits() -> Vec<Split> {
        vec![
            Split {
                target: Target::Deployment("m@a".into()),
                share: 0.1,
            },
            Split {
                target: Target::Model("small".into()),
                share: 0.2,
            },
        ]
    }

    #[test]
    fn bands_follow_the_config_order() {
        let s = splits();
        assert_eq!(pick(&s, 0.0), Some(&Target::Deployment("m@a".into())));
        assert_eq!(pick(&s, 0.099), Some(&Target::Deployment("m@a".into())));
        assert_eq!(pick(&s, 0.1), Some(&Target::Model("small".into())));
        assert_eq!(pick(&s, 0.299), Some(&Target::Model("small".into())));
        assert_eq!(pick(&s, 0.31), None);
        assert_eq!(pick(&[], 0.0), None);
        assert_eq!(Target::Deployment("m@a".into()).model(), "m");
        assert_eq!(Target::Model("small".into()).model(), "small");
    }

    #[test]
    fn a_conversation_keeps_its_point_as_it_grows() {
        let first = ChatRequest::new("m", vec![Message::text(Role::User, "hello there")]);
        let mut later = first.clone();
        later.messages.push(Message::text(Role::Assistant, "hi"));
        later.messages.push(Message::text(Role::User, "and more"));
        let p = point(&first, Some("key-1"), "split");
        assert_eq!(p, point(&later, Some("key-1"), "split"));
        assert!((0.0..1.0).contains(&p));
        assert_ne!(p, point(&first, Some("key-2"), "split"));
        assert_ne!(p, point(&first, Some("key-1"), "shadow"));
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
