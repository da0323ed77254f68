use std::borrow::Cow;

use super::*;
use crate::chat::{ChatRequest, ContentPart, Message, Role, ToolCall};
use crate::error::ErrorKind;

fn found(detector: Detector, text: &str) -> Vec<&str> {
    detector
        .find(text)
        .into_iter()
        .map(|range| &text[range])
        .collect()
}

fn rules(pairs: &[(Detector, Action)]) -> Rules {
    Rules(pairs.iter().copied().collect())
}

#[test]
fn payment_cards_need_the_luhn_check() {
    let text = "visa 4111 1111 1111 1111, mc 5555-5555-5555-4444, amex 378282246310005, \
                order 1234567812345678, typo 4111111111111112, short 4111 1111 1111";
    assert_eq!(
        found(Detector::PaymentCard, text),
        [
            "4111 1111 1111 1111",
            "5555-5555-5555-4444",
            "378282246310005"
        ]
    );
    assert!(luhn("1234567812345670"));
    assert!(!luhn("1234567812345678"));
    // 12 digits is too short for a card even when the sum works.
    assert!(!luhn("000000000000"));
}

#[test]
fn ibans_need_the_mod_97_check() {
    let text = "pay GB82 WEST 1234 5698 7654 32 or DE89370400440532013000 or \
                FR1420041010050500013M02606, not GB82WEST12345698765433 nor XX00";
    assert_eq!(
        found(Detector::Iban, text),
        [
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "FR1420041010050500013M02606"
        ]
    );
    assert!(!iban_checksum("GB82WEST12345698765433"));
}

#[test]
fn emails_need_a_domain_with_a_top_level_part() {
    let text = "write to jane.doe+ai@example.co.uk or ops@sub.example.com; not root@localhost, \
                not @handle, not a@b";
    assert_eq!(
        found(Detector::Email, text),
        ["jane.doe+ai@example.co.uk", "ops@sub.example.com"]
    );
}

#[test]
fn phones_need_a_country_code_or_the_north_american_shape() {
    let text = "call +1 415 555 0132 or +44 20 7946 0958 or (415) 555-0132 or 415.555.0132; \
                not on 2026-12-04, not version 1.2.3, not +123, not extension 555-0132";
    assert_eq!(
        found(Detector::Phone, text),
        [
            "+1 415 555 0132",
            "+44 20 7946 0958",
            "(415) 555-0132",
            "415.555.0132"
        ]
    );
}

#[test]
fn secrets_of_the_common_formats() {
    let openai = format!("sk-proj-{}", "a1B2".repeat(12));
    let anthropic = format!("sk-ant-api03-{}", "Zz9_".repeat(20));
    let github = format!("ghp_{}", "x7".repeat(18));
    let google = format!("AIza{}", "Sy-3".repeat(9).get(..35).unwrap_or_default());
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
    let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt";
    let text = format!(
        "{openai} {anthropic} AKIAIOSFODNN7EXAMPLE {github} {google} \
         task-force-assignment-for-the-whole-team sk-short AKIA1234 \
         -----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n{pem}\n{cut}"
    );
    assert_eq!(
        found(Detector::Secret, &text),
        [
            openai.as_str(),
            anthropic.as_str(),
            "AKIAIOSFODNN7EXAMPLE",
            github.as_str(),
            google.as_str(),
            pem,
            cut
        ]
    );
}

#[test]
fn mask_replaces_each_finding_and_counts_it() {
    let rules = rules(&[
        (Detector::Email, Action::Mask),
        (Detector::PaymentCard, Action::Mask),
        (Detector::Phone, Action::Log),
    ]);
    let verdict =
        rules.check("Card 4111 1111 1111 1111 for jane@example.com, phone +1 415 555 0132.");
    let Verdict::Pass { text, findings } = verdict else {
        panic!("masking never blocks: {verdict:?}");
    };
    assert_eq!(
        text,
        "Card [REDACTED:payment_card] for [REDACTED:email], phone +1 415 555 0132."
    );
    assert_eq!(
        findings.summary(),
        "payment_card:mask=1,email:mask=1,phone:log=1"
    );
}

#[test]
fn block_names_the_first_blocking_rule_and_never_the_text() {
    let rules = rules(&[
        (Detector::Email, Action::Block),
        (Detector::Secret, Action::Block),
    ]);
    let verdict = rules.check("mail a@example.org the key AKIAIOSFODNN7EXAMPLE");
    let Verdict::Block { detector, findings } = verdict else {
        panic!("two blocking rules matched: {verdict:?}");
    };
    assert_eq!(detector, Detector::Secret);
    assert_eq!(findings.summary(), "secret:block=1,email:block=1");
    assert!(!findings.summary().contains("AKIA"));
}

#[test]
fn overlapping_findings_go_to_the_detector_listed_first() {
    // The e-mail address inside a private key is part of the secret: masking the key covers
    // it, and the e-mail rule (block) does not see it.
    let rules = rules(&[
        (Detector::Secret, Action::Mask),
        (Detector::Email, Action::Block),
    ]);
    let verdict = rules
        .check("key: -----BEGIN PRIVATE KEY-----\nadmin@example.com\n-----END PRIVATE KEY----- ok");
    assert_eq!(
        verdict,
        Verdict::Pass {
            text: Cow::Owned("key: [REDACTED:secret] ok".to_owned()),
            findings: Findings(
                [(Detector::Secret, (Action::Mask, 1))]
                    .into_iter()
                    .collect()
            ),
        }
    );
}

#[test]
fn clean_text_and_no_rules_are_passed_through_unchanged() {
    let text = "Summarise the meeting of 2026-12-04 (version 1.2.3, order 1234567812345678).";
    for rules in [
        Rules::default(),
        rules(&Detector::ALL.map(|d| (d, Action::Block))),
    ] {
        assert_eq!(
            rules.check(text),
            Verdict::Pass {
                text: Cow::Borrowed(text),
                findings: Findings::default(),
            }
        );
    }
}

#[test]
fn rules_read_from_toml() {
    let parsed: BTreeMap<String, Rules> = toml::from_str(
        "guardrails = { payment_card = \"block\", email = \"mask\", phone = \"log\" }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        parsed["guardrails"],
        rules(&[
            (Detector::PaymentCard, Action::Block),
            (Detector::Email, Action::Mask),
            (Detector::Phone, Action::Log),
        ])
    );
    let unknown = toml::from_str::<BTreeMap<String, Rules>>("guardrails = { ssn = \"block\" }");
    assert!(unknown.is_err_and(|e| e.to_string().contains("unknown variant `ssn`")));
}

fn conversation() -> ChatRequest {
    let mut assistant = Message::new(Role::Assistant, vec![]);
    assistant.tool_calls = vec![ToolCall {
        id: "call_1".to_owned(),
        name: "send_mail".to_owned(),
        arguments: r#"{"to":"jane@example.com"}"#.to_owned(),
    }];
    ChatRequest::new(
        "m",
        vec![
            Message::new(
                Role::System,
                vec![ContentPart::Text {
                    text: "Support bot. Escalate to +44 20 7946 0958.".to_owned(),
                }],
            ),
            Message::new(
                Role::User,
                vec![
                    ContentPart::Text {
                        text: "My card is 4111 1111 1111 1111".to_owned(),
                    },
                    ContentPart::Text {
                        text: "and mail me at jane@example.com".to_owned(),
                    },
                ],
            ),
            assistant,
        ],
    )
}

fn texts(request: &ChatRequest) -> Vec<String> {
    request
        .messages
        .iter()
        .flat_map(|m| {
            m.content
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.clone()),
                    _ => None,
                })
                .chain(m.tool_calls.iter().map(|c| c.arguments.clone()))
        })
        .collect()
}

#[test]
fn a_request_is_masked_in_every_text_it_sends() {
    let mut request = conversation();
    let findings = rules(&[
        (Detector::PaymentCard, Action::Mask),
        (Detector::Email, Action::Mask),
        (Detector::Phone, Action::Log),
    ])
    .check_request(&mut request)
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        texts(&request),
        [
            "Support bot. Escalate to +44 20 7946 0958.",
            "My card is [REDACTED:payment_card]",
            "and mail me at [REDACTED:email]",
            r#"{"to":"[REDACTED:email]"}"#,
        ]
    );
    assert_eq!(
        findings.summary(),
        "payment_card:mask=1,email:mask=2,phone:log=1"
    );
}

#[test]
fn a_blocked_request_is_a_400_naming_the_rule_and_is_left_as_it_was() {
    let mut request = conversation();
    let before = texts(&request);
    let error = rules(&[
        (Detector::Email, Action::Mask),
        (Detector::PaymentCard, Action::Block),
    ])
    .check_request(&mut request)
    .err()
    .unwrap_or_else(|| panic!("a card under a block rule passed"));
    assert_eq!(error.detector, Detector::PaymentCard);
    assert_eq!(error.findings.summary(), "payment_card:block=1");
    let error = Error::from(error);
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(error.code.as_deref(), Some("guardrail_blocked"));
    assert_eq!(
        error.message,
        "blocked by guardrail rule `payment_card`: the request contains data this route does \
         not send to providers"
    );
    assert!(!error.message.contains("4111"));
    // The system text came first and had nothing to mask; the card's part was never rewritten.
    assert_eq!(texts(&request)[..2], before[..2]);
}

#[test]
fn the_one_pass_pre_check_sees_every_finding() {
    let texts = [
        "visa 4111 1111 1111 1111 and jane@example.com",
        "GB82 WEST 1234 5698 7654 32, +1 415 555 0132",
        "-----BEGIN PRIVATE KEY-----\nabc",
        "AKIAIOSFODNN7EXAMPLE (415) 555-0132",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    ];
    for text in texts {
        assert!(detect::any(text), "{text:?}");
        assert!(
            Detector::ALL.iter().any(|d| !d.find(text).is_empty()),
            "{text:?}"
        );
    }
    assert!(!detect::any("nothing to see here, version 1.2.3"));
    // A candidate the checks refuse passes the pre-check, then is found as nothing.
    let look_alike = "order 1234567812345678";
    assert!(detect::any(look_alike));
    assert!(Detector::PaymentCard.find(look_alike).is_empty());
}
