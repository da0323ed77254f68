//! `[teams.NAME]` and `[keys.NAME]` of the configuration: a caller's own guardrails and payload
//! logs over its route's, looked up by the names of the caller's virtual key and its team.

use std::collections::BTreeMap;
use std::sync::Arc;

use crossbar_core::config::{CallerPolicy, Config};
use crossbar_core::router::Policies;

/// The callers' policies of one configuration (rebuilt on reload, with the router).
#[derive(Debug, Default)]
pub struct Callers {
    teams: BTreeMap<String, CallerPolicy>,
    keys: BTreeMap<String, CallerPolicy>,
}

impl Callers {
    pub fn from_config(config: &Config) -> Self {
        Self {
            teams: config.teams.clone(),
            keys: config.keys.clone(),
        }
    }

    /// `policies` (the route's) for a caller whose key is named `key` in team `team`: the
    /// guardrails of the key, else of its team, else the route's; payload logs when any of
    /// route, team and key asks for them.
    pub fn apply(&self, policies: &mut Policies, key: Option<&str>, team: Option<&str>) {
        let team = team.and_then(|name| self.teams.get(name));
        let key = key.and_then(|name| self.keys.get(name));
        for policy in [team, key].into_iter().flatten() {
            if let Some(rules) = &policy.guardrails {
                policies.guardrails = Arc::new(rules.clone());
            }
            policies.payload_log |= policy.payload_log;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.teams.is_empty() && self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbar_core::guardrails::{Action, Detector, Rules};

    fn rules(detector: Detector, action: Action) -> Rules {
        Rules {
            webhook: None,
            detectors: BTreeMap::from([(detector, action)]),
        }
    }

    /// The key's rules over the team's over the route's; payload logs from any of them.
    #[test]
    fn a_key_overrides_its_team_which_overrides_the_route() {
        let callers = Callers {
            teams: BTreeMap::from([(
                "research".to_owned(),
                CallerPolicy {
                    guardrails: Some(rules(Detector::Email, Action::Block)),
                    payload_log: false,
                },
            )]),
            keys: BTreeMap::from([(
                "ci".to_owned(),
                CallerPolicy {
                    guardrails: Some(rules(Detector::Phone, Action::Mask)),
                    payload_log: true,
                },
            )]),
        };
        let route = Policies {
            route: "default".to_owned(),
            model: "m".to_owned(),
            hosted_tools: Default::default(),
            unknown_fields: Default::default(),
            guardrails: Arc::new(rules(Detector::Email, Action::Mask)),
            cache: None,
            payload_log: false,
            shadow: None,
        };
        let seen = |key: Option<&str>, team: Option<&str>| {
            let mut policies = route.clone();
            callers.apply(&mut policies, key, team);
            (policies.guardrails.detectors.clone(), policies.payload_log)
        };
        let email = |a| BTreeMap::from([(Detector::Email, a)]);
        assert_eq!(seen(None, None), (email(Action::Mask), false));
        assert_eq!(
            seen(Some("other"), Some("sales")),
            (email(Action::Mask), false)
        );
        assert_eq!(
            seen(Some("other"), Some("research")),
            (email(Action::Block), false)
        );
        assert_eq!(
            seen(Some("ci"), Some("research")),
            (BTreeMap::from([(Detector::Phone, Action::Mask)]), true)
        );
    }
}
