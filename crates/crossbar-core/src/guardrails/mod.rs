//! Guardrails: what a route does with personal data and secrets found in the text a request
//! sends to a provider (and in the answers that come back).
//!
//! A route's rules name a built-in [`Detector`] and an [`Action`]: `mask` replaces each finding
//! with a placeholder before the text leaves, `block` refuses the request with a 400 that names
//! the rule (never the matched text), `log` lets it through and only counts it. Checking is pure
//! (text in, verdict out), so the same rules serve requests, answers and stream windows.

mod detect;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;

use crate::chat::{ChatRequest, ContentPart};
use crate::error::Error;

pub use detect::{Detector, iban_checksum, luhn};

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

/// A route's rules: `guardrails = { payment_card = "block", email = "mask", phone = "log" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Rules(pub BTreeMap<Detector, Action>);

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

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `text` against every rule. Overlapping findings go to the detector that comes
    /// first in [`Detector::ALL`] (a key made of digits is a secret, not a phone number).
    pub fn check<'a>(&self, text: &'a str) -> Verdict<'a> {
        if self.0.is_empty() {
            return Verdict::Pass {
                text: Cow::Borrowed(text),
                findings: Findings::default(),
            };
        }
        if !detect::any(text) {
            return Verdict::Pass {
                text: Cow::Borrowed(text),
                findings: Findings::default(),
            };
        }
        let mut found: Vec<(Range<usize>, Detector, Action)> = Vec::new();
        for detector in Detector::ALL {
            let Some(&action) = self.0.get(&detector) else {
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
        let mut findings = Findings::default();
        for (_, detector, action) in &found {
            findings.add(*detector, *action);
        }
        if let Some(detector) = Detector::ALL
            .into_iter()
            .find(|d| findings.0.get(d).is_some_and(|(a, _)| *a == Action::Block))
        {
            return Verdict::Block { detector, findings };
        }
        found.retain(|(_, _, action)| *action == Action::Mask);
        if found.is_empty() {
            return Verdict::Pass {
                text: Cow::Borrowed(text),
                findings,
            };
        }
        found.sort_by_key(|(range, ..)| range.start);
        let mut masked = String::with_capacity(text.len());
        let mut at = 0;
        for (range, detector, _) in found {
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
        let mut findings = Findings::default();
        if self.is_empty() {
            return Ok(findings);
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
