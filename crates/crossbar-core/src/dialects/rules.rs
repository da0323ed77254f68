//! Cross-provider translation rules, one place each, so every dialect applies them the same way.

use serde_json::{Map, Value};

use crate::chat::{ChatRequest, ContentPart, Message, Role, ToolChoice, WireDialect};
use crate::error::{Error, Result};

/// Maps a tool-call id onto a provider's allowed charset, deterministically: the assistant's
/// call and the tool result that answers it get the same id, so ids stay stable across turns.
/// Ids that already fit pass unchanged; others keep their allowed characters plus a short hash
/// of the original, so two ids differing only in disallowed characters cannot collide.
pub fn sanitize_tool_id(id: &str, allowed: impl Fn(u8) -> bool, max_len: usize) -> String {
    if !id.is_empty() && id.len() <= max_len && id.bytes().all(&allowed) {
        return id.to_owned();
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix = format!("_{:012x}", hash & 0xffff_ffff_ffff);
    let kept: String = id.bytes().filter(|b| allowed(*b)).map(char::from).collect();
    let room = max_len.saturating_sub(suffix.len());
    let mut out: String = kept.chars().take(room).collect();
    out.push_str(&suffix);
    out
}

/// Tool-call arguments are a JSON string in OpenAI's dialect and an object elsewhere. An empty
/// string is `{}`; anything that is not a JSON object is the caller's error, named by `param`.
pub fn parse_tool_arguments(arguments: &str, param: &str) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(Error::invalid_field(
            param,
            "Tool-call arguments must be a JSON object.",
        )),
        Err(e) => Err(Error::invalid_field(
            param,
            format!("Tool-call arguments are not valid JSON: {e}"),
        )),
    }
}

/// The thinking budget for an OpenAI-style effort level.
pub fn budget_for_effort(effort: &str) -> Option<u32> {
    match effort {
        "none" => None,
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        _ => Some(16_384),
    }
}

/// The effort level nearest a thinking budget.
pub fn effort_for_budget(budget: u32) -> &'static str {
    match budget {
        0..=2048 => "low",
        2049..=8192 => "medium",
        _ => "high",
    }
}

/// The request's thinking budget, from an explicit budget or an effort level.
pub fn reasoning_budget(request: &ChatRequest) -> Option<u32> {
    request.reasoning_budget.or_else(|| {
        request
            .reasoning_effort
            .as_deref()
            .and_then(budget_for_effort)
    })
}

/// How a Claude model takes reasoning, by generation: Claude Opus 4.7 and later think only
/// adaptively (`thinking.type: "enabled"` is a 400 there, as are sampling parameters), the 4.6
/// models take both, earlier ones only a token budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaudeThinking {
    BudgetOnly,
    Both,
    AdaptiveOnly,
}

/// The thinking modes of a Claude model id in any cloud's spelling (`claude-opus-4-7`,
/// `us.anthropic.claude-opus-4-7-v1:0`, `claude-sonnet-4@20250514`, `claude-3-7-sonnet-...`):
/// the version is the first number after `claude-` and the one right after it if it is short
/// (a long one is a date). An id that is not Claude's gets the conservative `BudgetOnly`.
pub fn claude_thinking(target: &str) -> ClaudeThinking {
    let Some(at) = target.find("claude-") else {
        return ClaudeThinking::BudgetOnly;
    };
    let mut opus = false;
    let mut version: Vec<u32> = Vec::new();
    for token in target[at + "claude-".len()..].split(['-', '@', '.', ':']) {
        match token {
            "opus" => opus = true,
            "sonnet" | "haiku" => {}
            _ if token.len() <= 2
                && !token.is_empty()
                && token.bytes().all(|b| b.is_ascii_digit())
                && version.len() < 2 =>
            {
                version.push(token.parse().unwrap_or(0));
            }
            // A date or a revision (`v1`) ends the version.
            _ if !version.is_empty() => break,
            _ => {}
        }
    }
    let major = version.first().copied().unwrap_or(0);
    let minor = version.get(1).copied().unwrap_or(0);
    match (major, minor) {
        (5.., _) => ClaudeThinking::AdaptiveOnly,
        (4, 7..) if opus => ClaudeThinking::AdaptiveOnly,
        (4, 6..) => ClaudeThinking::Both,
        _ => ClaudeThinking::BudgetOnly,
    }
}

/// Claude (Anthropic, Vertex, Bedrock) and the rest of Bedrock take a temperature between 0
/// and 1, OpenAI up to 2. A value above 1 has no equivalent there, and clamping would change
/// what the caller asked for, so the deployment refuses it (the router tries another).
pub fn temperature_within_one(temperature: Option<f64>, service: &str) -> Result<()> {
    match temperature {
        Some(t) if !(0.0..=1.0).contains(&t) => Err(Error::invalid_field(
            "temperature",
            format!("Invalid 'temperature': {t}. {service} accepts a temperature between 0 and 1."),
        )),
        _ => Ok(()),
    }
}

/// The smallest `top_p` Claude accepts while thinking.
pub const CLAUDE_THINKING_MIN_TOP_P: f64 = 0.95;

/// Claude's extended thinking refuses a forced tool choice, any temperature but 1, any
/// `top_k`, and a `top_p` below 0.95 (each a 400 from the API). Dropping the thinking or the
/// parameter would change the request's meaning, so the deployment refuses it instead.
pub fn claude_thinking_compatible(request: &ChatRequest) -> Result<()> {
    if reasoning_budget(request).is_none() {
        return Ok(());
    }
    let forced = !request.tools.is_empty()
        && matches!(
            request.tool_choice,
            Some(ToolChoice::Required | ToolChoice::Function(_))
        );
    if forced {
        return Err(Error::invalid_field(
            "tool_choice",
            "Claude cannot think while `tool_choice` forces a tool call: with reasoning on, use a tool_choice of `auto` or `none`, or turn reasoning off.",
        ));
    }
    let sampling = &request.sampling;
    temperature_one(sampling.temperature, || {
        "Claude takes no temperature other than 1 while reasoning is on; omit it or turn reasoning off.".to_owned()
    })?;
    if let Some(k) = sampling.top_k {
        return Err(Error::invalid_field(
            "top_k",
            format!(
                "Invalid 'top_k': {k}. Claude takes no top_k while reasoning is on; omit it or turn reasoning off."
            ),
        ));
    }
    if let Some(p) = sampling.top_p
        && p < CLAUDE_THINKING_MIN_TOP_P
    {
        return Err(Error::invalid_field(
            "top_p",
            format!(
                "Invalid 'top_p': {p}. Claude takes a top_p of at least 0.95 while reasoning is on; omit it or turn reasoning off."
            ),
        ));
    }
    Ok(())
}

/// Refuses a `temperature` other than 1, saying why with `rule`.
fn temperature_one(temperature: Option<f64>, rule: impl FnOnce() -> String) -> Result<()> {
    match temperature {
        Some(t) if t != 1.0 => Err(Error::invalid_field(
            "temperature",
            format!("Invalid 'temperature': {t}. {}", rule()),
        )),
        _ => Ok(()),
    }
}

/// A provider-neutral token estimate (about four characters a token), for providers or
/// endpoints that give no count.
pub fn estimate_tokens(request: &ChatRequest) -> u64 {
    let text_chars: usize = request
        .messages
        .iter()
        .map(|m| {
            m.content
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len(),
                    // Providers bill images by size; a small fixed share keeps estimates sane.
                    ContentPart::Image { .. } => 340,
                    // A page of a PDF is some hundreds of tokens, a second of audio some
                    // dozens: the base64 size over 16 is a rough, monotonic stand-in.
                    ContentPart::Document { data, .. } | ContentPart::Audio { data, .. } => {
                        data.len() / 16
                    }
                })
                .sum::<usize>()
                + m.tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.len())
                    .sum::<usize>()
                + 16
        })
        .sum();
    let tool_chars: usize = request
        .tools
        .iter()
        .map(|t| {
            t.name.len()
                + t.description.as_deref().map_or(0, str::len)
                + t.parameters.as_ref().map_or(0, |p| p.to_string().len())
        })
        .sum();
    ((text_chars + tool_chars) as u64).div_ceil(4).max(1)
}

/// All system and developer text, in order: Anthropic, Bedrock and Gemini take one top-level
/// system prompt, so instructions given mid-conversation are moved there too.
pub fn system_texts(messages: &[Message]) -> Vec<(String, bool)> {
    messages
        .iter()
        .filter(|m| matches!(m.role, Role::System | Role::Developer))
        .map(|m| (m.text_content(), m.cache_breakpoint))
        .filter(|(text, _)| !text.is_empty())
        .collect()
}

/// Refuses OpenAI-only fields bound for a provider of another dialect, naming the field.
pub fn refuse_openai_passthrough(request: &ChatRequest, dialect: &str) -> Result<()> {
    match request.openai_passthrough.keys().next() {
        None => Ok(()),
        Some(key) => Err(Error::invalid_field(
            key.clone(),
            format!(
                "`{key}` is only supported by OpenAI-dialect providers; this model is served by the {dialect} dialect."
            ),
        )),
    }
}

/// Refuses what a request brings from a client dialect other than `own` (the dialect this
/// upstream speaks, if it takes passthrough at all) and cannot be served without: fields the
/// gateway does not know (let through by the route), and provider-run tools unless the route
/// drops them. The rest of a foreign passthrough is left behind by design.
pub fn refuse_foreign_passthrough(
    request: &ChatRequest,
    own: Option<WireDialect>,
    dialect: &str,
) -> Result<()> {
    let passthrough = &request.passthrough;
    if passthrough.dialect.is_none() || passthrough.dialect == own {
        return Ok(());
    }
    if let Some(key) = passthrough.required.first() {
        return Err(Error::invalid_field(
            key.clone(),
            format!(
                "`{key}` is not translated by the gateway and can only go to a provider of the client's own dialect; this model is served by the {dialect} dialect."
            ),
        ));
    }
    if !passthrough.drop_hosted_tools
        && let Some((index, tool)) = passthrough.hosted_tools.first()
    {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
        return Err(Error::invalid_field(
            format!("tools[{index}].type"),
            format!(
                "The hosted tool '{kind}' (tools[{index}]) runs only on its own provider's servers; this model is served by the {dialect} dialect. A route with `hosted_tools = \"drop\"` serves it without the tool."
            ),
        ));
    }
    Ok(())
}

/// Whether an OpenAI model id names a reasoning model (o-series, gpt-5 but its chat snapshots,
/// and gpt-5.x asked to reason), which refuses sampling parameters.
fn openai_reasoning_model(target: &str, request: &ChatRequest) -> bool {
    let family = |prefix: &str| {
        target == prefix
            || target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('-'))
    };
    let later = target.starts_with("gpt-5.");
    if later {
        // gpt-5.1 and later reason only when asked to, and then refuse sampling too.
        return request
            .reasoning_effort
            .as_deref()
            .is_some_and(|effort| effort != "none");
    }
    family("o1")
        || family("o3")
        || family("o4-mini")
        || (family("gpt-5") && !target.starts_with("gpt-5-chat"))
}

/// OpenAI's reasoning models refuse `temperature` other than 1 and the other sampling
/// parameters with a 400; such a request is another deployment's to serve (the caller marks
/// the error unsupported there). Values are never dropped, which would change their meaning.
pub fn openai_reasoning_compatible(target: &str, request: &ChatRequest) -> Result<()> {
    if !openai_reasoning_model(target, request) {
        return Ok(());
    }
    let sampling = &request.sampling;
    temperature_one(sampling.temperature, || {
        format!("OpenAI reasoning models (`{target}`) take no temperature other than 1.")
    })?;
    let passthrough = |key: &str| {
        request
            .openai_passthrough
            .get(key)
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
    };
    let refused = [
        ("top_p", sampling.top_p.is_some()),
        ("presence_penalty", sampling.presence_penalty.is_some()),
        ("frequency_penalty", sampling.frequency_penalty.is_some()),
        ("logprobs", passthrough("logprobs")),
        ("top_logprobs", passthrough("top_logprobs")),
    ]
    .into_iter()
    .find_map(|(key, set)| set.then_some(key));
    match refused {
        Some(key) => Err(Error::invalid_field(
            key,
            format!("OpenAI reasoning models (`{target}`) do not take '{key}'."),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_generations_are_read_from_every_clouds_ids() {
        use ClaudeThinking::{AdaptiveOnly, Both, BudgetOnly};
        for (id, modes) in [
            ("claude-opus-4-7", AdaptiveOnly),
            ("claude-opus-4-8-20260528", AdaptiveOnly),
            ("us.anthropic.claude-opus-4-7-v1:0", AdaptiveOnly),
            ("claude-opus-4-7@20260416", AdaptiveOnly),
            ("claude-opus-5-5", AdaptiveOnly),
            ("claude-opus-4-6", Both),
            ("claude-sonnet-4-6", Both),
            ("claude-sonnet-4-7", Both),
            ("claude-opus-4-5-20251101", BudgetOnly),
            ("claude-sonnet-4-20250514", BudgetOnly),
            ("claude-sonnet-4@20250514", BudgetOnly),
            ("us.anthropic.claude-sonnet-4-20250514-v1:0", BudgetOnly),
            ("claude-3-7-sonnet-20250219", BudgetOnly),
            ("gpt-4o", BudgetOnly),
            ("", BudgetOnly),
        ] {
            assert_eq!(claude_thinking(id), modes, "{id}");
        }
    }

    fn anthropic(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
    }

    #[test]
    fn tool_ids_are_sanitized_stably_and_without_collisions() {
        assert_eq!(sanitize_tool_id("toolu_01", anthropic, 64), "toolu_01");
        let a = sanitize_tool_id("call.1:x", anthropic, 64);
        assert_eq!(a, sanitize_tool_id("call.1:x", anthropic, 64));
        assert!(a.bytes().all(anthropic));
        assert_ne!(a, sanitize_tool_id("call:1.x", anthropic, 64));
        let long = "x".repeat(100);
        assert!(sanitize_tool_id(&long, anthropic, 64).len() <= 64);
        assert!(!sanitize_tool_id("", anthropic, 64).is_empty());
    }

    #[test]
    fn tool_arguments_must_be_objects() {
        assert_eq!(
            parse_tool_arguments("", "p").unwrap(),
            serde_json::json!({})
        );
        assert_eq!(
            parse_tool_arguments("{\"a\":1}", "p").unwrap(),
            serde_json::json!({"a": 1})
        );
        for bad in ["{", "[1]", "\"x\""] {
            let err = parse_tool_arguments(bad, "messages[1].tool_calls[0].function.arguments")
                .unwrap_err();
            assert_eq!(err.status(), 400);
            assert_eq!(
                err.param.as_deref(),
                Some("messages[1].tool_calls[0].function.arguments")
            );
        }
    }

    #[test]
    fn effort_and_budget_map_both_ways() {
        assert_eq!(budget_for_effort("none"), None);
        for effort in ["low", "medium", "high"] {
            assert_eq!(
                effort_for_budget(budget_for_effort(effort).unwrap()),
                effort
            );
        }
    }
}
