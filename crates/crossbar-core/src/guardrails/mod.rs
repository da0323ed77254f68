//! Guardrails: what a route does with personal data and secrets found in the text a request
//! sends to a provider (and in the answers that come back).
//!
//! A route's rules name a built-in [`Detector`] and an [`Action`]: `mask` replaces each finding
//! with a placeholder before the text leaves, `block` refuses the request with a 400 that names
//! the rule (never the matched text), `log` lets it through and only counts it. Checking is pure
//! (text in, verdict out), so the same rules serve requests, answers ([`Rules::check_answer`])
//! and stream windows ([`StreamGuard`]). A route may also ask an external service
//! ([`Webhook`]) about each request (and answer).

mod detect;
mod stream;
mod webhook;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;

use crate::chat::{ChatRequest, ChatResponse, ContentPart};
use crate::error::Error;

pub use detect::{Detector, iban_checksum, luhn};
pub use stream::{STREAM_WINDOW, StreamGuard};
pub use webhook::{OnError, Webhook, WebhookOutcome};

/// What a rule does with a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace the finding with `[REDACTED:<detector>]`.
    Mask,
    /// Refuse the whole request (or end the answer) naming the detector.
    Block,
    /// Let it through; count it and note it on the usage record.
    Log,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mask => "mask",
            Self::Block => "block",
            Self::Log => "log",
        }
    }
}

/// A route's rules: `guardrails = { payment_card = "block", email = "mask", phone = "log" }`,
/// and optionally `webhook = { url = "...", timeout_ms = 500, on_error = "deny" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Rules {
    /// The external guardrail asked about each request (and answer, if it wants them).
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// Built-in detectors and what each does (every other key of the table).
    #[serde(flatten)]
    pub detectors: BTreeMap<Detector, Action>,
}

/// How many findings each rule had in one check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings(pub BTreeMap<Detector, (Action, usize)>);

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn add(&mut self, detector: Detector, action: Action) {
        self.0.entry(detector).or_insert((action, 0)).1 += 1;
    }

    /// `email:mask=2,phone:log=1`: what the usage record notes (names and counts, never text).
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(detector, (action, n))| format!("{}:{}={n}", detector.name(), action.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The outcome of checking one text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// The text to send (masked where a rule said so) and what was found.
    Pass {
        text: Cow<'a, str>,
        findings: Findings,
    },
    /// A `block` rule matched: the first blocking detector (in [`Detector::ALL`] order) and
    /// everything found.
    Block {
        detector: Detector,
        findings: Findings,
    },
}

/// One finding: where, which detector, what its rule does.
type Found = (Range<usize>, Detector, Action);

impl Rules {
    /// Rules from detectors alone (no webhook).
    pub fn detectors(pairs: impl IntoIterator<Item = (Detector, Action)>) -> Self {
        Self {
            webhook: None,
            detectors: pairs.into_iter().collect(),
        }
    }

    /// Neither detectors nor a webhook.
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty() && self.webhook.is_none()
    }

    /// The findings in `text`, by position. Overlapping findings go to the detector that comes
    /// first in [`Detector::ALL`] (a key made of digits is a secret, not a phone number).
    fn scan(&self, text: &str) -> Vec<Found> {
        if self.detectors.is_empty() || !detect::any(text) {
            return Vec::new();
        }
        let mut found: Vec<Found> = Vec::new();
        for detector in Detector::ALL {
            let Some(&action) = self.detectors.get(&detector) else {
                continue;
            };
            for range in detector.find(text) {
                let taken = found
                    .iter()
                    .any(|(other, ..)| range.start < other.end && other.start < range.end);
                if !taken {
                    found.push((range, detector, action));
                }
            }
        }
        found.sort_by_key(|(range, ..)| range.start);
        found
    }

    /// Checks `text` against every rule.
    pub fn check<'a>(&self, text: &'a str) -> Verdict<'a> {
        verdict(text, &self.scan(text))
    }
}

/// What `found` (from [`Rules::scan`], in order) makes of `text`.
fn verdict<'a>(text: &'a str, found: &[Found]) -> Verdict<'a> {
    let mut findings = Findings::default();
    for (_, detector, action) in found {
        findings.add(*detector, *action);
    }
    if let Some(detector) = Detector::ALL
        .into_iter()
        .find(|d| findings.0.get(d).is_some_and(|(a, _)| *a == Action::Block))
    {
        return Verdict::Block { detector, findings };
    }
    if !found.iter().any(|(.., action)| *action == Action::Mask) {
        return Verdict::Pass {
            text: Cow::Borrowed(text),
            findings,
        };
    }
    let mut masked = String::with_capacity(text.len());
    let mut at = 0;
    for (range, detector, _) in found.iter().filter(|(.., a)| *a == Action::Mask) {
        masked.push_str(&text[at..range.start]);
        masked.push_str(detector.placeholder());
        at = range.end;
    }
    masked.push_str(&text[at..]);
    Verdict::Pass {
        text: Cow::Owned(masked),
        findings,
    }
}

impl Findings {
    /// Adds `other`'s counts (request and answer checks of one call add up).
    pub fn merge(&mut self, other: Findings) {
        for (detector, (action, n)) in other.0 {
            self.0.entry(detector).or_insert((action, 0)).1 += n;
        }
    }
}

/// A request a `block` rule refused: the rule, and what the check had found until then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub detector: Detector,
    pub findings: Findings,
}

impl Blocked {
    /// An answer a `block` rule refused: a 403 `guardrail_blocked` naming the rule (the request
    /// was fine, so not a 400; the route's policy keeps the answer from the client). In a stream
    /// it is the error event that ends it.
    pub fn answer_error(&self) -> Error {
        Error::permission_denied(
            format!(
                "blocked by guardrail rule `{}`: the answer contains data this route does not \
                 return to clients",
                self.detector.name()
            ),
            "guardrail_blocked",
        )
    }
}

/// The 400 a `block` rule answers: it names the rule, never what matched (the client has the
/// text; logs and error bodies must not).
impl From<Blocked> for Error {
    fn from(blocked: Blocked) -> Self {
        Error::invalid_request(format!(
            "blocked by guardrail rule `{}`: the request contains data this route does not send \
             to providers",
            blocked.detector.name()
        ))
        .with_code("guardrail_blocked")
    }
}

impl Rules {
    /// Applies the rules to every text the request would send: message text, and the arguments
    /// of tool calls the conversation already holds. Masks in place; a `block` finding anywhere
    /// refuses the whole request before anything is changed upstream.
    pub fn check_request(&self, request: &mut ChatRequest) -> Result<Findings, Blocked> {
        if self.detectors.is_empty() {
            return Ok(Findings::default());
        }
        let texts = request.messages.iter_mut().flat_map(|message| {
            let parts = message.content.iter_mut().filter_map(|part| match part {
                ContentPart::Text { text } => Some(text),
                _ => None,
            });
            parts.chain(
                message
                    .tool_calls
                    .iter_mut()
                    .map(|call| &mut call.arguments),
            )
        });
        self.check_texts(texts)
    }

    /// Applies the rules to an answer before it goes to the client: its text, refusal and
    /// tool-call arguments. Masks in place; a `block` finding anywhere refuses the whole answer
    /// (see [`Blocked::answer_error`]).
    pub fn check_answer(&self, response: &mut ChatResponse) -> Result<Findings, Blocked> {
        if self.detectors.is_empty() {
            return Ok(Findings::default());
        }
        let message = &mut response.message;
        let texts = message
            .content
            .iter_mut()
            .filter_map(|part| match part {
                ContentPart::Text { text } => Some(text),
                _ => None,
            })
            .chain(message.refusal.as_mut())
            .chain(
                message
                    .tool_calls
                    .iter_mut()
                    .map(|call| &mut call.arguments),
            );
        self.check_texts(texts)
    }

    fn check_texts<'t>(
        &self,
        texts: impl Iterator<Item = &'t mut String>,
    ) -> Result<Findings, Blocked> {
        let mut findings = Findings::default();
        for text in texts {
            match self.check(text) {
                Verdict::Block {
                    detector,
                    findings: found,
                } => {
                    findings.merge(found);
                    return Err(Blocked { detector, findings });
                }
                Verdict::Pass {
                    text: Cow::Owned(masked),
                    findings: found,
                } => {
                    *text = masked;
                    findings.merge(found);
                }
                Verdict::Pass {
                    text: Cow::Borrowed(_),
                    findings: found,
                } => findings.merge(found),
            }
        }
        Ok(findings)
    }
}

#[cfg(test)]
mod tests;
