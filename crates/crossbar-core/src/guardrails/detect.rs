//! The built-in detectors: personal data and secrets that should not leave for a provider.
//!
//! Each detector is a pattern that finds candidates and, where the format has one, a check that
//! confirms them (Luhn for payment cards, ISO 7064 mod 97 for IBANs, the E.164 length for phone
//! numbers), so a 16-digit order number or a date is not taken for a card or a phone.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

/// What a built-in detector looks for. The name is how rules, metrics, usage records and block
/// messages refer to it; the matched text itself is never reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Provider API keys, cloud access keys, tokens and private keys.
    Secret,
    /// Payment card numbers (13 to 19 digits passing the Luhn check).
    PaymentCard,
    /// International bank account numbers (valid mod 97).
    Iban,
    Email,
    /// Phone numbers written with a leading `+` country code or as `(555) 123-4567` /
    /// `555-123-4567`; 7 to 15 digits.
    Phone,
}

impl Detector {
    /// Every detector, in the order overlapping findings are attributed (the first wins).
    pub const ALL: [Detector; 5] = [
        Self::Secret,
        Self::PaymentCard,
        Self::Iban,
        Self::Email,
        Self::Phone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::PaymentCard => "payment_card",
            Self::Iban => "iban",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    /// What a masked finding is replaced with.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::Secret => "[REDACTED:secret]",
            Self::PaymentCard => "[REDACTED:payment_card]",
            Self::Iban => "[REDACTED:iban]",
            Self::Email => "[REDACTED:email]",
            Self::Phone => "[REDACTED:phone]",
        }
    }

    fn confirms(self, found: &str) -> bool {
        match self {
            Self::PaymentCard => luhn(found),
            Self::Iban => iban_checksum(found),
            Self::Phone => {
                let digits = found.bytes().filter(u8::is_ascii_digit).count();
                (7..=15).contains(&digits)
            }
            Self::Secret | Self::Email => true,
        }
    }

    /// The confirmed findings of this detector in `text`, as byte ranges.
    pub fn find(self, text: &str) -> Vec<Range<usize>> {
        let mut found: Vec<Range<usize>> = PATTERNS
            .iter()
            .zip(EACH.iter())
            .filter(|((detector, _), _)| *detector == self)
            .flat_map(|(_, pattern)| pattern.find_iter(text))
            .filter(|m| self.confirms(m.as_str()))
            .map(|m| m.range())
            .collect();
        found.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        found.dedup_by(|later, earlier| later.start < earlier.end);
        found
    }
}

/// Whether any pattern of any detector matches somewhere in `text`: one pass of one automaton
/// that stops at the first match, so clean text (the common case) is scanned once rather than
/// once per pattern. A match may still be refused by its detector's check.
pub fn any(text: &str) -> bool {
    ANY.is_match(text)
}

/// A regex that is a constant of this file: a failure to compile is a bug caught by every test
/// that touches the detector.
#[expect(
    clippy::expect_used,
    reason = "the patterns are constants; the unit tests compile every one"
)]
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in guardrail pattern compiles")
}

/// Every detector's patterns, in the order overlapping matches of one detector are kept.
const PATTERNS: &[(Detector, &str)] = &[
    // OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-api03-...) keys.
    (Detector::Secret, r"(?-u:\b)sk-[A-Za-z0-9_-]{20,}"),
    // Stripe secret and restricted keys.
    (Detector::Secret, r"(?-u:\b)[sr]k_live_[A-Za-z0-9]{16,}"),
    // AWS access key ids (long-lived and temporary).
    (
        Detector::Secret,
        r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
    ),
    // Google API keys.
    (Detector::Secret, r"(?-u:\b)AIza[0-9A-Za-z_-]{35}"),
    // GitHub tokens (personal, OAuth, user-to-server, server-to-server, refresh) and
    // fine-grained personal tokens.
    (Detector::Secret, r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{36,}"),
    (Detector::Secret, r"(?-u:\b)github_pat_[A-Za-z0-9_]{60,}"),
    // Slack tokens.
    (Detector::Secret, r"(?-u:\b)xox[abprs]-[A-Za-z0-9-]{10,}"),
    // A PEM private key, to its END line or the end of the text when cut off.
    (
        Detector::Secret,
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\z)",
    ),
    (
        Detector::PaymentCard,
        r"(?-u:\b)\d(?:[ -]?\d){12,18}(?-u:\b)",
    ),
    (
        Detector::Iban,
        r"(?-u:\b)[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
    ),
    (
        Detector::Email,
        r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?-u:\b)",
    ),
    // International: +CC then groups of digits, spaces, dots, dashes or parentheses.
    (Detector::Phone, r"\+\d(?:[ .-]?\(?\d+\)?){2,8}"),
    // North American: (555) 123-4567, 555-123-4567, 555.123.4567.
    (
        Detector::Phone,
        r"(?:\(\d{3}\) ?|(?-u:\b)\d{3}[.-])\d{3}[.-]\d{4}(?-u:\b)",
    ),
];

/// [`PATTERNS`] compiled one by one, to find where each matches.
static EACH: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .map(|(_, pattern)| compile(pattern))
        .collect()
});

/// [`PATTERNS`] as one alternation, for [`any`].
static ANY: LazyLock<Regex> = LazyLock::new(|| {
    let alternation: Vec<String> = PATTERNS.iter().map(|(_, p)| format!("(?:{p})")).collect();
    compile(&alternation.join("|"))
});

/// The Luhn check of the digits in `text` (separators ignored), for 13 to 19 digits.
pub fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616: the country code and check digits moved to the end, letters as 10..35, the whole
/// number mod 97 is 1. Lengths outside 15..=34 are not IBANs.
pub fn iban_checksum(text: &str) -> bool {
    let compact: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, rest) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for c in rest.iter().chain(head) {
        let Some(value) = c.to_digit(36) else {
            return false;
        };
        // Letters are two decimal digits, digits one.
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}
