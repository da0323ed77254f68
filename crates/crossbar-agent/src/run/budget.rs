//! Budget accounting: a run's model calls, tokens, picodollars and wall time against the
//! spec's `max_steps` and `[budget]`, checked before every call with what the call may need.
//! Pure: the loop ([`super::drive`]) passes what it used and reserved, and acts on the answer.

use crossbar_core::chat::ChatRequest;
use crossbar_core::pricing;

use super::RunStatus;
use crate::spec::AgentSpec;

/// Why a run must stop instead of making its next call.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Stop {
    pub status: RunStatus,
    pub reason: String,
}

/// What a run has used of its budgets so far.
#[derive(Clone, Copy, Debug)]
pub(super) struct Used {
    /// Picodollars.
    pub pusd: u64,
    pub tokens: u64,
    pub steps: u32,
    pub elapsed_ms: u64,
}

/// The call a reservation is for, as a stop reason names it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Call {
    /// The next step's model call.
    Step,
    /// The `[context]` summarizer's call.
    Summary,
}

impl Call {
    fn needs(self) -> &'static str {
        match self {
            Self::Step => "the next call may need",
            Self::Summary => "summarizing the context may need",
        }
    }

    fn costs(self) -> &'static str {
        match self {
            Self::Step => "the next call may cost",
            Self::Summary => "summarizing the context may cost",
        }
    }
}

/// Roughly four characters a token: the same estimate the gateway uses for providers that
/// report nothing, good enough to reserve budget before a call.
pub(super) fn estimate_prompt_tokens(request: &ChatRequest) -> u64 {
    let mut chars = 0usize;
    for message in &request.messages {
        chars += message.text_content().len() + 16;
        for call in &message.tool_calls {
            chars += call.name.len() + call.arguments.len();
        }
    }
    for tool in &request.tools {
        chars += tool.name.len()
            + tool.description.as_ref().map_or(0, String::len)
            + tool.parameters.as_ref().map_or(0, |p| p.to_string().len());
    }
    u64::try_from(chars / 4).unwrap_or(u64::MAX)
}

/// Whether another step may start at all: `max_steps` calls made, or the wall time used up,
/// stop the run whatever the call would cost.
pub(super) fn step_stop(spec: &AgentSpec, used: Used) -> Option<Stop> {
    if used.steps >= spec.max_steps {
        return Some(Stop {
            status: RunStatus::MaxSteps,
            reason: format!("reached max_steps ({})", spec.max_steps),
        });
    }
    let wall = spec.budget.wall_time_s?;
    (used.elapsed_ms >= wall.saturating_mul(1000)).then(|| Stop {
        status: RunStatus::BudgetExhausted,
        reason: format!("wall-time budget of {wall} s used up"),
    })
}

/// Whether `needed` more tokens (the prompt estimate plus the output allowed) would take
/// `used_tokens` past the token budget.
pub(super) fn token_stop(
    spec: &AgentSpec,
    used_tokens: u64,
    needed: u64,
    call: Call,
) -> Option<Stop> {
    let limit = spec.budget.tokens?;
    (used_tokens.saturating_add(needed) > limit).then(|| Stop {
        status: RunStatus::BudgetExhausted,
        reason: format!(
            "token budget: {used_tokens} used, {} {needed} of the {limit} allowed",
            call.needs()
        ),
    })
}

/// Whether `reserved_pusd` more would take `spent_pusd` past the USD budget.
pub(super) fn usd_stop(
    spec: &AgentSpec,
    spent_pusd: u64,
    reserved_pusd: u64,
    call: Call,
) -> Option<Stop> {
    let usd = spec.budget.usd?;
    over_budget(usd, spent_pusd, reserved_pusd).then(|| Stop {
        status: RunStatus::BudgetExhausted,
        reason: format!(
            "USD budget: ${:.6} spent, {} ${:.6} of the ${usd} allowed",
            pricing::pico_to_usd(spent_pusd),
            call.costs(),
            pricing::pico_to_usd(reserved_pusd)
        ),
    })
}

/// What `on_budget_low` asks of the next step.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Low {
    /// No rule, nothing low, already switched, or already on the cheaper model: go on.
    Go,
    /// Switch every role to `to` for the rest of the run (journaled with `reason`).
    Switch { to: String, reason: String },
    /// No `switch_to`: the run stops.
    Stop(Stop),
}

/// `on_budget_low` before a step about to call `model` with `reserved_pusd` reserved. The rule
/// acts once: after a switch (`switched`), budgets running low change nothing more.
pub(super) fn on_budget_low(
    spec: &AgentSpec,
    model: &str,
    switched: bool,
    used: Used,
    reserved_pusd: u64,
) -> Low {
    let Some(rule) = &spec.budget.on_budget_low else {
        return Low::Go;
    };
    if switched {
        return Low::Go;
    }
    let low = low_budgets(spec, rule.remaining, used, reserved_pusd);
    if low.is_empty() {
        return Low::Go;
    }
    let which = format!(
        "{} (below {:.0}% left)",
        low.join("; "),
        rule.remaining * 100.0
    );
    match &rule.switch_to {
        Some(cheaper) if cheaper != model => Low::Switch {
            to: cheaper.clone(),
            reason: which,
        },
        Some(_) => Low::Go,
        None => Low::Stop(Stop {
            status: RunStatus::BudgetLow,
            reason: format!("on_budget_low: {which}"),
        }),
    }
}

/// `on_budget_low`: each budget set (USD, tokens, `max_steps`, wall time) with less than
/// `remaining` of it left, said for the journal; empty when none is low. USD also counts as
/// low when what is left would not cover `reserved_pusd`, the next call's reservation.
pub(super) fn low_budgets(
    spec: &AgentSpec,
    remaining: f64,
    used: Used,
    reserved_pusd: u64,
) -> Vec<String> {
    let share = |left: f64, total: f64| total > 0.0 && left / total < remaining;
    let budget = &spec.budget;
    let mut low = Vec::new();
    if let Some(usd) = budget.usd {
        let total = pricing::usd_to_pico(usd);
        // Signed: the last call may have overspent.
        let left = i128::from(total) - i128::from(used.pusd);
        let left_usd = signed_usd(left);
        if share(left as f64, total as f64) {
            low.push(format!("USD: ${left_usd:.6} of ${usd} left"));
        } else if left < i128::from(reserved_pusd) {
            low.push(format!(
                "USD: ${left_usd:.6} of ${usd} left, less than the ${:.6} the next call may cost",
                pricing::pico_to_usd(reserved_pusd)
            ));
        }
    }
    if let Some(tokens) = budget.tokens {
        let left = tokens.saturating_sub(used.tokens);
        if share(left as f64, tokens as f64) {
            low.push(format!("tokens: {left} of {tokens} left"));
        }
    }
    let steps = spec.max_steps;
    let left = steps.saturating_sub(used.steps);
    if share(f64::from(left), f64::from(steps)) {
        low.push(format!("steps: {left} of max_steps {steps} left"));
    }
    if let Some(wall) = budget.wall_time_s {
        let total = wall.saturating_mul(1000);
        let left = total.saturating_sub(used.elapsed_ms);
        if share(left as f64, total as f64) {
            low.push(format!(
                "wall time: {:.1} s of {wall} s left",
                left as f64 / 1000.0
            ));
        }
    }
    low
}

/// Signed picodollars in dollars, for messages.
fn signed_usd(pusd: i128) -> f64 {
    let usd = pricing::pico_to_usd(u64::try_from(pusd.unsigned_abs()).unwrap_or(u64::MAX));
    if pusd < 0 { -usd } else { usd }
}

/// Whether `reserved_pusd` more would take `spent_pusd` past a USD budget.
fn over_budget(usd: f64, spent_pusd: u64, reserved_pusd: u64) -> bool {
    spent_pusd.saturating_add(reserved_pusd) > pricing::usd_to_pico(usd)
}

#[cfg(test)]
mod tests {
    use crossbar_core::chat::{Message, Role, Tool, ToolCall};

    use super::*;

    /// Ten steps, and every other budget set: $1, 1000 tokens, 100 s.
    fn spec(remaining: f64) -> AgentSpec {
        let text = format!(
            "name = \"a\"\ninstructions = \"Help.\"\nmax_steps = 10\n[models]\ndefault = \"m\"\n\
             [budget]\nusd = 1.0\ntokens = 1000\nwall_time_s = 100\n\
             on_budget_low = {{ remaining = {remaining} }}\n"
        );
        AgentSpec::from_toml(&text, "agent.toml").unwrap_or_else(|e| panic!("{}", e.0))
    }

    const CENT: u64 = 10_000_000_000;

    const FRESH: Used = Used {
        pusd: 0,
        tokens: 0,
        steps: 0,
        elapsed_ms: 0,
    };

    #[test]
    fn nothing_is_low_at_the_start_or_at_exactly_the_share() {
        let spec = spec(0.25);
        assert!(low_budgets(&spec, 0.25, FRESH, CENT).is_empty());
        let at_the_share = Used {
            pusd: 750_000_000_000,
            tokens: 750,
            steps: 7,
            elapsed_ms: 75_000,
        };
        // 30% of the steps left, 25% of the rest: not below.
        assert!(low_budgets(&spec, 0.25, at_the_share, CENT).is_empty());
    }

    #[test]
    fn each_budget_is_low_on_its_own() {
        let spec = spec(0.25);
        let cases = [
            (
                Used {
                    pusd: 800_000_000_000,
                    ..FRESH
                },
                "USD: $0.200000 of $1 left",
            ),
            (
                Used {
                    tokens: 800,
                    ..FRESH
                },
                "tokens: 200 of 1000 left",
            ),
            (Used { steps: 8, ..FRESH }, "steps: 2 of max_steps 10 left"),
            (
                Used {
                    elapsed_ms: 80_000,
                    ..FRESH
                },
                "wall time: 20.0 s of 100 s left",
            ),
        ];
        for (used, expected) in cases {
            assert_eq!(low_budgets(&spec, 0.25, used, CENT), [expected], "{used:?}");
        }
        let all = Used {
            pusd: 900_000_000_000,
            tokens: 900,
            steps: 9,
            elapsed_ms: 90_000,
        };
        assert_eq!(low_budgets(&spec, 0.25, all, CENT).len(), 4);
    }

    #[test]
    fn usd_is_low_when_the_next_reservation_would_not_fit() {
        let spec = spec(0.25);
        let used = Used {
            pusd: 500_000_000_000,
            ..FRESH
        };
        assert!(low_budgets(&spec, 0.25, used, 400_000_000_000).is_empty());
        assert_eq!(
            low_budgets(&spec, 0.25, used, 600_000_000_000),
            ["USD: $0.500000 of $1 left, less than the $0.600000 the next call may cost"]
        );
    }

    #[test]
    fn unset_budgets_are_never_low() {
        let text = "name = \"a\"\ninstructions = \"Help.\"\nmax_steps = 4\n[models]\ndefault = \"m\"\n\
                    [budget]\non_budget_low = { remaining = 0.5 }\n";
        let spec = AgentSpec::from_toml(text, "agent.toml").unwrap_or_else(|e| panic!("{}", e.0));
        let used = Used {
            pusd: 100 * pricing::PICO_PER_USD,
            tokens: u64::MAX,
            steps: 1,
            elapsed_ms: u64::MAX,
        };
        assert!(low_budgets(&spec, 0.5, used, pricing::PICO_PER_USD).is_empty());
        assert_eq!(
            low_budgets(&spec, 0.5, Used { steps: 3, ..used }, pricing::PICO_PER_USD),
            ["steps: 1 of max_steps 4 left"]
        );
    }

    /// Ten steps, $1, 1000 tokens, 100 s, and this `on_budget_low` rule.
    fn spec_with(rule: &str) -> AgentSpec {
        let text = format!(
            "name = \"a\"\ninstructions = \"Help.\"\nmax_steps = 10\n[models]\ndefault = \"m\"\n\
             [budget]\nusd = 1.0\ntokens = 1000\nwall_time_s = 100\n{rule}"
        );
        AgentSpec::from_toml(&text, "agent.toml").unwrap_or_else(|e| panic!("{}", e.0))
    }

    /// No budget but the default `max_steps`.
    fn unlimited() -> AgentSpec {
        let text = "name = \"a\"\ninstructions = \"Help.\"\n[models]\ndefault = \"m\"\n";
        AgentSpec::from_toml(text, "agent.toml").unwrap_or_else(|e| panic!("{}", e.0))
    }

    fn stop(status: RunStatus, reason: &str) -> Option<Stop> {
        Some(Stop {
            status,
            reason: reason.into(),
        })
    }

    /// Each message's text plus 16, each call's name and arguments, each tool's name,
    /// description and schema, in characters; a token is four of them, rounded down.
    #[test]
    fn prompt_tokens_are_four_characters_each() {
        let mut asked = Message::text(Role::Assistant, "");
        asked.tool_calls = vec![ToolCall {
            id: "c1".into(),
            name: "calculator".into(),
            arguments: r#"{"x":1}"#.into(),
        }];
        let mut request = ChatRequest::new(
            "m",
            vec![
                Message::text(Role::System, "Help."),
                Message::text(Role::User, "What is 2+2?"),
                asked,
            ],
        );
        // 5 + 16, 12 + 16, 0 + 16 + 10 + 7: 82 characters, 20 tokens.
        assert_eq!(estimate_prompt_tokens(&request), 20);
        request.tools = vec![Tool {
            name: "calculator".into(),
            description: Some("Adds.".into()),
            parameters: Some(serde_json::json!({"type": "object"})),
            strict: None,
        }];
        // + 10 + 5 + 17 (`{"type":"object"}`): 114 characters, 28 tokens.
        assert_eq!(estimate_prompt_tokens(&request), 28);
    }

    #[test]
    fn max_steps_then_wall_time_stop_a_step() {
        let spec = spec(0.25);
        assert_eq!(step_stop(&spec, FRESH), None);
        let nine = Used {
            steps: 9,
            elapsed_ms: 99_999,
            ..FRESH
        };
        assert_eq!(step_stop(&spec, nine), None);
        assert_eq!(
            step_stop(&spec, Used { steps: 10, ..nine }),
            stop(RunStatus::MaxSteps, "reached max_steps (10)")
        );
        assert_eq!(
            step_stop(
                &spec,
                Used {
                    elapsed_ms: 100_000,
                    ..nine
                }
            ),
            stop(
                RunStatus::BudgetExhausted,
                "wall-time budget of 100 s used up"
            )
        );
        assert_eq!(
            step_stop(
                &spec,
                Used {
                    steps: 10,
                    elapsed_ms: 100_000,
                    ..FRESH
                }
            ),
            stop(RunStatus::MaxSteps, "reached max_steps (10)")
        );
    }

    /// Up to the limit fits; one token past it stops, said for the call it was for.
    #[test]
    fn tokens_stop_one_past_the_limit() {
        let spec = spec(0.25);
        assert_eq!(token_stop(&spec, 500, 500, Call::Step), None);
        assert_eq!(
            token_stop(&spec, 500, 501, Call::Step),
            stop(
                RunStatus::BudgetExhausted,
                "token budget: 500 used, the next call may need 501 of the 1000 allowed"
            )
        );
        assert_eq!(
            token_stop(&spec, 999, 2, Call::Summary),
            stop(
                RunStatus::BudgetExhausted,
                "token budget: 999 used, summarizing the context may need 2 of the 1000 allowed"
            )
        );
        assert_eq!(
            token_stop(&spec, u64::MAX, u64::MAX, Call::Step).map(|s| s.status),
            Some(RunStatus::BudgetExhausted)
        );
        assert_eq!(token_stop(&unlimited(), u64::MAX, 1, Call::Step), None);
    }

    /// Exactly $1 fits a $1 budget; one picodollar more stops.
    #[test]
    fn usd_stops_one_picodollar_past_the_budget() {
        let spec = spec(0.25);
        let spent = 600_000_000_000;
        assert_eq!(usd_stop(&spec, spent, 400_000_000_000, Call::Step), None);
        assert_eq!(
            usd_stop(&spec, spent, 400_000_000_001, Call::Step),
            stop(
                RunStatus::BudgetExhausted,
                "USD budget: $0.600000 spent, the next call may cost $0.400000 of the $1 allowed"
            )
        );
        assert_eq!(
            usd_stop(&spec, pricing::PICO_PER_USD, 1, Call::Summary),
            stop(
                RunStatus::BudgetExhausted,
                "USD budget: $1.000000 spent, summarizing the context may cost $0.000000 of the $1 allowed"
            )
        );
        assert_eq!(usd_stop(&unlimited(), u64::MAX, u64::MAX, Call::Step), None);
    }

    /// With `switch_to`, a low budget switches once (not to the model already in use, not
    /// again after a switch); without it, the run stops as `budget_low`.
    #[test]
    fn on_budget_low_switches_once_or_stops() {
        let eight = Used { steps: 8, ..FRESH };
        let switching = spec_with("on_budget_low = { remaining = 0.25, switch_to = \"cheap\" }\n");
        assert_eq!(on_budget_low(&switching, "m", false, FRESH, CENT), Low::Go);
        assert_eq!(
            on_budget_low(&switching, "m", false, eight, CENT),
            Low::Switch {
                to: "cheap".into(),
                reason: "steps: 2 of max_steps 10 left (below 25% left)".into()
            }
        );
        assert_eq!(
            on_budget_low(&switching, "cheap", false, eight, CENT),
            Low::Go
        );
        assert_eq!(on_budget_low(&switching, "m", true, eight, CENT), Low::Go);
        let two = Used {
            tokens: 800,
            ..eight
        };
        assert_eq!(
            on_budget_low(&spec(0.25), "m", false, two, CENT),
            Low::Stop(Stop {
                status: RunStatus::BudgetLow,
                reason: "on_budget_low: tokens: 200 of 1000 left; steps: 2 of max_steps 10 left \
                         (below 25% left)"
                    .into()
            })
        );
        assert_eq!(
            on_budget_low(&spec_with(""), "m", false, two, CENT),
            Low::Go
        );
    }
}
