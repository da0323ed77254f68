//! What the simulated model answers, decided from a dialect-neutral view of the request.
//!
//! Dialects translate their wire request into a [`Conversation`] and render the [`Answer`] in
//! their own format, so all dialects answer one conversation identically. Answers depend only
//! on the request, never on model names:
//! - tools offered, choice not `none`, and the last message is the user's (or the choice forces
//!   a call): call the named tool, else the offered tools named in the last user text, else the
//!   first tool; only one unless parallel calls are allowed; arguments satisfy each schema;
//! - last message a tool result: a sentence citing every trailing result ("Based on f: ...");
//! - otherwise a sentence restating the last user text; `json_object` wraps it as
//!   `{"answer": ...}` and `json_schema` replaces it with a document generated from the schema.
//!
//! Scripted agent steps (so agent loops can be driven over several rounds): when tools are
//! offered and the choice is not `none`, lines `sim-step N: TOOL ARGS` in the last user text
//! script round N, counted as 1 + the assistant tool-call turns after that user message. Every
//! line of the round is one call of `TOOL` with `ARGS` verbatim (default `{}`; the tool need
//! not be offered), all of them when parallel calls are allowed, else the first. A round with
//! no line answers with text by the rules above, ending the script.
//!
//! Token accounting is a documented estimate: a text costs ceil(chars / 4); the prompt is 3 +
//! the serialized tools and output schema + per message 4 + its text (+85 per image, audio or
//! file part, + tool-call names and arguments); the completion is one token per streamed piece
//! (word, JSON fragment or argument fragment) plus reasoning tokens for the requested effort.

use std::collections::VecDeque;

use rand::Rng;
use serde_json::{Value, json};

use crate::ids;
use crate::schema::{self, Words};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub role: Role,
    /// All text parts, joined by newlines.
    pub text: String,
    /// Image, audio and file parts, which only count towards the prompt size.
    pub attachments: u64,
    pub tool_calls: Vec<ToolCall>,
    /// For tool results: the call answered (`None` for legacy function results).
    pub tool_call_id: Option<String>,
    /// For tool results: the function name, when the dialect carries it.
    pub name: Option<String>,
}

impl Message {
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            text: text.into(),
            attachments: 0,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    fn segment(&self) -> Segment {
        let mut key = format!(
            "{:?}\u{1f}{}\u{1f}{}",
            self.role, self.text, self.attachments
        );
        let mut tokens = 4 + text_tokens(&self.text) + 85 * self.attachments;
        for call in &self.tool_calls {
            key.extend([
                "\u{1f}",
                &call.id,
                "\u{1f}",
                &call.name,
                "\u{1f}",
                &call.arguments,
            ]);
            tokens += text_tokens(&call.name) + text_tokens(&call.arguments);
        }
        if let Some(id) = &self.tool_call_id {
            key.extend(["\u{1f}", id]);
        }
        Segment {
            hash: ids::fnv1a(key.as_bytes()),
            tokens,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    Auto,
    None,
    Required,
    Named(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OutputFormat {
    Text,
    JsonObject,
    JsonSchema(Value),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Effort {
    #[default]
    None,
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
    Max,
}

impl Effort {
    /// The effort OpenAI's APIs spell `name` (`none` to `max`).
    pub fn named(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "minimal" => Self::Minimal,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "xhigh" => Self::XHigh,
            "max" => Self::Max,
            _ => return None,
        })
    }

    pub fn reasoning_tokens(self) -> u64 {
        match self {
            Self::None | Self::Minimal => 0,
            Self::Low => 16,
            Self::Medium => 64,
            Self::High => 256,
            Self::XHigh => 1024,
            Self::Max => 2048,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Conversation {
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    pub parallel_tool_calls: bool,
    pub format: OutputFormat,
    /// Includes reasoning tokens, like OpenAI's `max_completion_tokens`.
    pub max_output_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub reasoning: Effort,
    /// Hash of the request; seeds tool-call ids and fragment boundaries.
    pub fingerprint: u64,
}

impl Conversation {
    /// The prompt as cacheable units: tool and schema definitions first, then each message.
    pub fn prompt_segments(&self) -> Vec<Segment> {
        let mut preamble = String::new();
        for tool in &self.tools {
            preamble.push_str(&tool.name);
            preamble.push_str(tool.description.as_deref().unwrap_or_default());
            preamble.push_str(&tool.parameters.to_string());
        }
        if let OutputFormat::JsonSchema(schema) = &self.format {
            preamble.push_str(&schema.to_string());
        }
        let mut segments = vec![Segment {
            hash: ids::fnv1a(preamble.as_bytes()),
            tokens: 3 + text_tokens(&preamble),
        }];
        segments.extend(self.messages.iter().map(Message::segment));
        segments
    }

    fn last_user_text(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.text.as_str())
    }

    fn trailing_tool_results(&self) -> &[Message] {
        let start = self
            .messages
            .iter()
            .rposition(|m| m.role != Role::Tool)
            .map_or(0, |i| i + 1);
        self.messages.get(start..).unwrap_or_default()
    }

    fn tool_name(&self, result: &Message) -> String {
        let by_id = || {
            let id = result.tool_call_id.as_deref()?;
            self.messages
                .iter()
                .flat_map(|m| &m.tool_calls)
                .find(|call| call.id == id)
                .map(|call| call.name.clone())
        };
        result
            .name
            .clone()
            .or_else(by_id)
            .unwrap_or_else(|| "tool".to_owned())
    }
}

/// Estimated tokens of a text.
pub(crate) fn text_tokens(text: &str) -> u64 {
    u64::try_from(text.chars().count())
        .unwrap_or(u64::MAX)
        .div_ceil(4)
}

/// One cacheable unit of a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub hash: u64,
    pub tokens: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    Length,
    ToolCalls,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedCall {
    pub id: String,
    pub name: String,
    /// The arguments JSON in the fragments it is streamed in.
    pub pieces: Vec<String>,
}

impl PlannedCall {
    pub fn arguments(&self) -> String {
        self.pieces.concat()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// Content in the pieces it is streamed in.
    Text(Vec<String>),
    ToolCalls(Vec<PlannedCall>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    /// Part of `prompt_tokens` served from the simulated prompt cache.
    pub cached_tokens: u64,
    /// Includes `reasoning_tokens`.
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub output: Output,
    pub finish: Finish,
    pub usage: Usage,
}

const SALT_FRAGMENTS: u64 = 1;
const SALT_CALL_ID: u64 = 1 << 32;

/// Decides the answer to a conversation. `usage.cached_tokens` is left 0: caching depends on
/// earlier requests, which the caller tracks.
pub(crate) fn answer(conversation: &Conversation) -> Answer {
    let mut rng = ids::rng(conversation.fingerprint, SALT_FRAGMENTS);
    let effort = conversation.reasoning.reasoning_tokens();
    let reasoning_tokens = conversation
        .max_output_tokens
        .map_or(effort, |max| effort.min(max));
    let budget = conversation
        .max_output_tokens
        .map(|max| usize::try_from(max.saturating_sub(reasoning_tokens)).unwrap_or(usize::MAX));
    let (output, finish) = if let Some(script) = scripted_round(conversation) {
        if script.is_empty() {
            text_output(conversation, budget, &mut rng)
        } else {
            scripted_output(conversation, script, budget, &mut rng)
        }
    } else {
        let tools = selected_tools(conversation);
        if tools.is_empty() {
            text_output(conversation, budget, &mut rng)
        } else {
            tool_output(conversation, &tools, budget, &mut rng)
        }
    };
    let pieces = match &output {
        Output::Text(pieces) => pieces.len(),
        Output::ToolCalls(calls) => calls.iter().map(|c| c.pieces.len()).sum(),
    };
    let prompt_tokens = conversation
        .prompt_segments()
        .iter()
        .map(|s| s.tokens)
        .sum();
    Answer {
        output,
        finish,
        usage: Usage {
            prompt_tokens,
            cached_tokens: 0,
            completion_tokens: u64::try_from(pieces)
                .unwrap_or(u64::MAX)
                .saturating_add(reasoning_tokens),
            reasoning_tokens,
        },
    }
}

/// The `(tool, arguments)` calls scripted for this round by `sim-step N:` lines: `None` when
/// the conversation has no script (or may not call tools), empty when the script has no line
/// for this round.
fn scripted_round(conversation: &Conversation) -> Option<Vec<(&str, &str)>> {
    if conversation.tools.is_empty() || conversation.tool_choice == ToolChoice::None {
        return None;
    }
    let last_user = conversation
        .messages
        .iter()
        .rposition(|m| m.role == Role::User)?;
    let steps: Vec<(u64, &str, &str)> = conversation.messages[last_user]
        .text
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("sim-step ")?;
            let (number, call) = rest.split_once(':')?;
            let number = number.trim().parse::<u64>().ok()?;
            let call = call.trim();
            let (name, arguments) = call.split_once(char::is_whitespace).unwrap_or((call, ""));
            let arguments = arguments.trim();
            (!name.is_empty()).then_some((
                number,
                name,
                if arguments.is_empty() {
                    "{}"
                } else {
                    arguments
                },
            ))
        })
        .collect();
    if steps.is_empty() {
        return None;
    }
    let done = conversation.messages[last_user + 1..]
        .iter()
        .filter(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
        .count();
    let round = u64::try_from(done).unwrap_or(u64::MAX).saturating_add(1);
    let mut calls: Vec<(&str, &str)> = steps
        .into_iter()
        .filter(|(number, _, _)| *number == round)
        .map(|(_, name, arguments)| (name, arguments))
        .collect();
    if !conversation.parallel_tool_calls {
        calls.truncate(1);
    }
    Some(calls)
}

fn scripted_output(
    conversation: &Conversation,
    script: Vec<(&str, &str)>,
    mut budget: Option<usize>,
    rng: &mut impl Rng,
) -> (Output, Finish) {
    let mut calls = Vec::new();
    for (index, (name, arguments)) in script.into_iter().enumerate() {
        let mut pieces = split_fragments(arguments, rng);
        let truncated = truncate(&mut pieces, budget);
        if let Some(left) = budget.as_mut() {
            *left -= pieces.len();
        }
        calls.push(PlannedCall {
            id: call_id(conversation.fingerprint, index),
            name: name.to_owned(),
            pieces,
        });
        if truncated {
            return (Output::ToolCalls(calls), Finish::Length);
        }
    }
    (Output::ToolCalls(calls), Finish::ToolCalls)
}

fn selected_tools(conversation: &Conversation) -> Vec<&Tool> {
    let forced = matches!(
        conversation.tool_choice,
        ToolChoice::Required | ToolChoice::Named(_)
    );
    let user_turn = conversation
        .messages
        .last()
        .is_some_and(|m| m.role == Role::User);
    if conversation.tool_choice == ToolChoice::None || !(forced || user_turn) {
        return Vec::new();
    }
    if let ToolChoice::Named(name) = &conversation.tool_choice {
        return conversation
            .tools
            .iter()
            .filter(|t| &t.name == name)
            .take(1)
            .collect();
    }
    let text = conversation.last_user_text().to_lowercase();
    let mut chosen: Vec<&Tool> = conversation
        .tools
        .iter()
        .filter(|t| text.contains(&t.name.to_lowercase()))
        .collect();
    if chosen.is_empty() {
        chosen.extend(conversation.tools.first());
    }
    if !conversation.parallel_tool_calls {
        chosen.truncate(1);
    }
    chosen
}

fn text_output(
    conversation: &Conversation,
    budget: Option<usize>,
    rng: &mut impl Rng,
) -> (Output, Finish) {
    let results = conversation.trailing_tool_results();
    let (sentence, source) = if results.is_empty() {
        let said = conversation
            .last_user_text()
            .split_whitespace()
            .take(256)
            .collect::<Vec<_>>()
            .join(" ");
        let sentence = if said.is_empty() {
            "Hello! How can I help you today?".to_owned()
        } else {
            format!("You said: {said}")
        };
        (sentence, conversation.last_user_text().to_owned())
    } else {
        let cited: Vec<String> = results
            .iter()
            .map(|r| format!("{}: {}", conversation.tool_name(r), r.text.trim()))
            .collect();
        let source = results.iter().map(|r| r.text.as_str()).collect::<Vec<_>>();
        (format!("Based on {}.", cited.join("; ")), source.join(" "))
    };
    let content = match &conversation.format {
        OutputFormat::Text => sentence,
        OutputFormat::JsonObject => json!({ "answer": sentence }).to_string(),
        OutputFormat::JsonSchema(schema) => {
            schema::synthesize(schema, &mut Words::from_text(&source)).to_string()
        }
    };
    let content = cut_at_stop(&content, &conversation.stop);
    let mut pieces = match conversation.format {
        OutputFormat::Text => split_words(content),
        _ => split_fragments(content, rng),
    };
    let finish = if truncate(&mut pieces, budget) {
        Finish::Length
    } else {
        Finish::Stop
    };
    (Output::Text(pieces), finish)
}

fn tool_output(
    conversation: &Conversation,
    tools: &[&Tool],
    mut budget: Option<usize>,
    rng: &mut impl Rng,
) -> (Output, Finish) {
    let mut words = Words::from_text(conversation.last_user_text());
    let mut calls = Vec::new();
    for (index, tool) in tools.iter().enumerate() {
        let arguments = schema::synthesize(&tool.parameters, &mut words).to_string();
        let mut pieces = split_fragments(&arguments, rng);
        let truncated = truncate(&mut pieces, budget);
        if let Some(left) = budget.as_mut() {
            *left -= pieces.len();
        }
        calls.push(PlannedCall {
            id: call_id(conversation.fingerprint, index),
            name: tool.name.clone(),
            pieces,
        });
        if truncated {
            return (Output::ToolCalls(calls), Finish::Length);
        }
    }
    (Output::ToolCalls(calls), Finish::ToolCalls)
}

/// `call_` + 24 alphanumerics, fixed by the request and the call's position.
fn call_id(fingerprint: u64, index: usize) -> String {
    let salt = SALT_CALL_ID + u64::try_from(index).unwrap_or(u64::MAX >> 1);
    format!(
        "call_{}",
        ids::alphanumeric(&mut ids::rng(fingerprint, salt), 24)
    )
}

/// Keeps at most `budget` pieces; true when some were dropped.
fn truncate(pieces: &mut Vec<String>, budget: Option<usize>) -> bool {
    match budget {
        Some(budget) if pieces.len() > budget => {
            pieces.truncate(budget);
            true
        }
        _ => false,
    }
}

/// The text before the earliest stop sequence (which is not included, like OpenAI).
fn cut_at_stop<'a>(text: &'a str, stops: &[String]) -> &'a str {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .and_then(|at| text.get(..at))
        .unwrap_or(text)
}

/// Words with their leading whitespace, so the pieces concatenate back to `text`.
pub(crate) fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            pieces.push(std::mem::take(&mut current));
            in_word = false;
        }
        in_word |= !c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Fragments of 1 to 6 characters cut at arbitrary points, and always right after a
/// backslash, so that clients must reassemble escapes split across chunks.
pub(crate) fn split_fragments(text: &str, rng: &mut impl Rng) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut len = 0;
    let mut target = rng.random_range(1..=6);
    for c in text.chars() {
        current.push(c);
        len += 1;
        if c == '\\' || len >= target {
            pieces.push(std::mem::take(&mut current));
            len = 0;
            target = rng.random_range(1..=6);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Simulates OpenAI's implicit prompt caching: a prompt of at least 1024 tokens that shares a
/// message-level prefix with an earlier prompt gets that prefix's tokens, rounded down to a
/// multiple of 128, reported as cached (when the prefix itself reaches 1024 tokens).
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    prompts: VecDeque<Vec<u64>>,
}

impl PromptCache {
    const MIN_TOKENS: u64 = 1024;
    const BLOCK: u64 = 128;
    const CAPACITY: usize = 256;

    pub fn lookup_and_store(&mut self, segments: &[Segment]) -> u64 {
        let total: u64 = segments.iter().map(|s| s.tokens).sum();
        if total < Self::MIN_TOKENS {
            return 0;
        }
        let hashes: Vec<u64> = segments.iter().map(|s| s.hash).collect();
        let shared = self
            .prompts
            .iter()
            .map(|seen| seen.iter().zip(&hashes).take_while(|(a, b)| a == b).count())
            .max()
            .unwrap_or(0);
        if self.prompts.len() >= Self::CAPACITY {
            self.prompts.pop_front();
        }
        self.prompts.push_back(hashes);
        let prefix: u64 = segments.iter().take(shared).map(|s| s.tokens).sum();
        if prefix < Self::MIN_TOKENS {
            0
        } else {
            prefix / Self::BLOCK * Self::BLOCK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Message {
        Message::new(Role::User, text)
    }

    fn conversation(messages: Vec<Message>) -> Conversation {
        Conversation {
            messages,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            parallel_tool_calls: true,
            format: OutputFormat::Text,
            max_output_tokens: None,
            stop: Vec::new(),
            reasoning: Effort::None,
            fingerprint: 42,
        }
    }

    fn tool(name: &str) -> Tool {
        Tool {
            name: name.to_owned(),
            description: None,
            parameters: json!({
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": false
            }),
        }
    }

    fn with_tools(messages: Vec<Message>, names: &[&str]) -> Conversation {
        Conversation {
            tools: names.iter().map(|n| tool(n)).collect(),
            ..conversation(messages)
        }
    }

    fn text(answer: &Answer) -> String {
        match &answer.output {
            Output::Text(pieces) => pieces.concat(),
            Output::ToolCalls(_) => panic!("expected text, got {answer:?}"),
        }
    }

    fn calls(answer: &Answer) -> &[PlannedCall] {
        match &answer.output {
            Output::ToolCalls(calls) => calls,
            Output::Text(_) => panic!("expected tool calls, got {answer:?}"),
        }
    }

    #[test]
    fn text_answer_restates_the_last_user_message_word_by_word() {
        let conv = conversation(vec![
            Message::new(Role::System, "Be brief."),
            user("first"),
            Message::new(Role::Assistant, "ok"),
            user("tell me\nabout  Rust"),
        ]);
        let answer = answer(&conv);
        assert_eq!(text(&answer), "You said: tell me about Rust");
        assert_eq!(
            answer.output,
            Output::Text(
                ["You", " said:", " tell", " me", " about", " Rust"]
                    .map(str::to_owned)
                    .to_vec()
            )
        );
        assert_eq!(answer.finish, Finish::Stop);
        assert_eq!(answer.usage.completion_tokens, 6);
    }

    #[test]
    fn max_tokens_truncates_and_reports_length() {
        let conv = Conversation {
            max_output_tokens: Some(3),
            ..conversation(vec![user("one two three four")])
        };
        let answer = answer(&conv);
        assert_eq!(text(&answer), "You said: one");
        assert_eq!(answer.finish, Finish::Length);
        assert_eq!(answer.usage.completion_tokens, 3);
    }

    #[test]
    fn stop_sequence_cuts_before_its_first_occurrence() {
        let conv = Conversation {
            stop: vec!["xyz".to_owned(), "two".to_owned()],
            ..conversation(vec![user("one two three")])
        };
        let answer = answer(&conv);
        assert_eq!(text(&answer), "You said: one ");
        assert_eq!(answer.finish, Finish::Stop);
    }

    #[test]
    fn reasoning_tokens_count_towards_completion_and_budget() {
        let conv = Conversation {
            reasoning: Effort::Medium,
            ..conversation(vec![user("hi")])
        };
        let answer = answer(&conv);
        assert_eq!(answer.usage.reasoning_tokens, 64);
        assert_eq!(answer.usage.completion_tokens, 64 + 3);
        let starved = Conversation {
            reasoning: Effort::High,
            max_output_tokens: Some(100),
            ..conv
        };
        let answer = super::answer(&starved);
        assert_eq!(answer.usage.reasoning_tokens, 100);
        assert_eq!(text(&answer), "");
        assert_eq!(answer.finish, Finish::Length);
        assert_eq!(Effort::Minimal.reasoning_tokens(), 0);
    }

    #[test]
    fn tools_named_in_the_prompt_are_called_in_parallel() {
        let conv = with_tools(
            vec![user("use get_time and get_weather for Paris")],
            &["get_weather", "lookup", "get_time"],
        );
        let answer = answer(&conv);
        let planned = calls(&answer);
        let names: Vec<&str> = planned.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["get_weather", "get_time"]);
        assert_eq!(answer.finish, Finish::ToolCalls);
        let args: Value = serde_json::from_str(&planned[0].arguments()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
        assert_ne!(planned[0].id, planned[1].id);
        for call in planned {
            let suffix = call.id.strip_prefix("call_").unwrap();
            assert!(suffix.len() == 24 && suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        assert_eq!(
            planned,
            calls(&super::answer(&conv)),
            "ids depend only on the request"
        );
    }

    #[test]
    fn tool_selection_rules() {
        let unnamed = with_tools(vec![user("hello")], &["a_tool", "b_tool"]);
        assert_eq!(calls(&answer(&unnamed))[0].name, "a_tool");
        let serial = Conversation {
            parallel_tool_calls: false,
            ..with_tools(vec![user("b_tool then a_tool")], &["a_tool", "b_tool"])
        };
        assert_eq!(calls(&answer(&serial)).len(), 1);
        let named = Conversation {
            tool_choice: ToolChoice::Named("b_tool".to_owned()),
            ..unnamed.clone()
        };
        assert_eq!(calls(&answer(&named))[0].name, "b_tool");
        let none = Conversation {
            tool_choice: ToolChoice::None,
            ..unnamed.clone()
        };
        assert_eq!(text(&answer(&none)), "You said: hello");
        let after_assistant = with_tools(
            vec![user("hello"), Message::new(Role::Assistant, "hi")],
            &["a_tool"],
        );
        assert!(matches!(answer(&after_assistant).output, Output::Text(_)));
        let required = Conversation {
            tool_choice: ToolChoice::Required,
            ..after_assistant
        };
        assert!(matches!(answer(&required).output, Output::ToolCalls(_)));
    }

    #[test]
    fn scripted_steps_drive_several_rounds() {
        let task = "do it\nsim-step 1: a_tool {\"city\": \"Oslo\"}\n\
                    sim-step 2: b_tool\nsim-step 2: missing {\"x\": 1}";
        let first = answer(&with_tools(vec![user(task)], &["a_tool", "b_tool"]));
        let planned = calls(&first);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].name, "a_tool");
        assert_eq!(planned[0].arguments(), r#"{"city": "Oslo"}"#);
        let mut turn = Message::new(Role::Assistant, "");
        turn.tool_calls = vec![ToolCall {
            id: planned[0].id.clone(),
            name: "a_tool".to_owned(),
            arguments: planned[0].arguments(),
        }];
        let mut result = Message::new(Role::Tool, "sunny");
        result.tool_call_id = Some(planned[0].id.clone());
        let mut messages = vec![user(task), turn, result];
        let second = answer(&with_tools(messages.clone(), &["a_tool", "b_tool"]));
        let names: Vec<&str> = calls(&second).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b_tool", "missing"]);
        assert_eq!(calls(&second)[0].arguments(), "{}");
        let serial = Conversation {
            parallel_tool_calls: false,
            ..with_tools(messages.clone(), &["a_tool", "b_tool"])
        };
        assert_eq!(calls(&answer(&serial)).len(), 1);
        let mut turn = Message::new(Role::Assistant, "");
        turn.tool_calls = vec![ToolCall {
            id: "call_b".to_owned(),
            name: "b_tool".to_owned(),
            arguments: "{}".to_owned(),
        }];
        let mut result = Message::new(Role::Tool, "done");
        result.tool_call_id = Some("call_b".to_owned());
        messages.extend([turn, result]);
        let third = answer(&with_tools(messages, &["a_tool", "b_tool"]));
        assert_eq!(text(&third), "Based on b_tool: done.");
        let no_tools = conversation(vec![user(task)]);
        assert!(matches!(answer(&no_tools).output, Output::Text(_)));
    }

    #[test]
    fn tool_results_are_cited() {
        let mut call = Message::new(Role::Assistant, "");
        call.tool_calls = vec![
            ToolCall {
                id: "call_1".to_owned(),
                name: "get_weather".to_owned(),
                arguments: "{}".to_owned(),
            },
            ToolCall {
                id: "call_2".to_owned(),
                name: "get_time".to_owned(),
                arguments: "{}".to_owned(),
            },
        ];
        let mut first = Message::new(Role::Tool, r#"{"temp": 21}"#);
        first.tool_call_id = Some("call_1".to_owned());
        let mut second = Message::new(Role::Tool, "10:00");
        second.tool_call_id = Some("call_2".to_owned());
        let conv = with_tools(
            vec![user("weather?"), call, first, second],
            &["get_weather", "get_time"],
        );
        let answer = answer(&conv);
        assert_eq!(
            text(&answer),
            r#"Based on get_weather: {"temp": 21}; get_time: 10:00."#
        );
    }

    #[test]
    fn json_formats_produce_valid_documents() {
        let object = Conversation {
            format: OutputFormat::JsonObject,
            ..conversation(vec![user("reply in json")])
        };
        let value: Value = serde_json::from_str(&text(&answer(&object))).unwrap();
        assert_eq!(value, json!({"answer": "You said: reply in json"}));
        let schema = json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 3}},
            "required": ["name", "age"],
            "additionalProperties": false
        });
        let structured = Conversation {
            format: OutputFormat::JsonSchema(schema.clone()),
            ..conversation(vec![user("describe Alice")])
        };
        let value: Value = serde_json::from_str(&text(&answer(&structured))).unwrap();
        assert!(jsonschema::is_valid(&schema, &value), "{value}");
    }

    #[test]
    fn fragments_concatenate_and_split_escapes() {
        let text = r#"{"a":"x\"y\\z","b":[1,2,3]}"#;
        let mut rng = ids::rng(1, 1);
        let pieces = split_fragments(text, &mut rng);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| (1..=6).contains(&p.chars().count())));
        assert!(pieces.iter().any(|p| p.ends_with('\\')));
        assert_eq!(split_words(" a  b ").concat(), " a  b ");
    }

    #[test]
    fn prompt_cache_reports_shared_prefixes_in_blocks() {
        let long = "x".repeat(4 * 1100);
        let mut cache = PromptCache::default();
        let first = conversation(vec![user(&long), user("first question")]);
        assert_eq!(cache.lookup_and_store(&first.prompt_segments()), 0);
        let second = conversation(vec![user(&long), user("second question")]);
        let segments = second.prompt_segments();
        let prefix = segments[0].tokens + segments[1].tokens;
        let cached = cache.lookup_and_store(&segments);
        assert_eq!(cached, prefix / 128 * 128);
        assert!(cached >= 1024);
        let short = conversation(vec![user("short")]);
        assert_eq!(cache.lookup_and_store(&short.prompt_segments()), 0);
        assert_eq!(cache.lookup_and_store(&short.prompt_segments()), 0);
    }
}
