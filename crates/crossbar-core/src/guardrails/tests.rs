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
    Rules::detectors(pairs.iter().copied())
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

#[test]
fn a_webhook_reads_from_toml_beside_the_detectors() {
    let parsed: BTreeMap<String, Rules> = toml::from_str(
        "guardrails = { email = \"mask\", webhook = { url = \"http://127.0.0.1:9/check\", \
         timeout_ms = 250, on_error = \"deny\", answers = true } }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rules = &parsed["guardrails"];
    assert_eq!(
        rules.detectors,
        [(Detector::Email, Action::Mask)].into_iter().collect()
    );
    assert_eq!(
        rules.webhook,
        Some(Webhook {
            url: "http://127.0.0.1:9/check".to_owned(),
            timeout: std::time::Duration::from_millis(250),
            on_error: OnError::Deny,
            answers: true,
        })
    );
    let defaults: BTreeMap<String, Rules> =
        toml::from_str("guardrails = { webhook = { url = \"https://guard.example/v1\" } }")
            .unwrap_or_else(|e| panic!("{e}"));
    let webhook = defaults["guardrails"].webhook.clone();
    assert_eq!(
        webhook.map(|w| (w.timeout.as_millis(), w.on_error, w.answers)),
        Some((1000, OnError::Allow, false))
    );
    for (bad, says) in [
        ("url = \"ftp://x/y\"", "must be http or https"),
        (
            "url = \"http://x/\", timeout_ms = 0",
            "timeout_ms must be 1 to 60000",
        ),
        ("url = \"http://x/\", when = 1", "unknown field `when`"),
    ] {
        let error = toml::from_str::<BTreeMap<String, Rules>>(&format!(
            "guardrails = {{ webhook = {{ {bad} }} }}"
        ))
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(error.contains(says), "{bad}: {error}");
    }
}

#[test]
fn answers_are_masked_or_blocked_text_refusal_and_tool_arguments_alike() {
    let mut answer = crate::chat::ChatResponse {
        id: "a".to_owned(),
        model: "m".to_owned(),
        created: 0,
        message: Message::new(
            Role::Assistant,
            vec![ContentPart::Text {
                text: "write to ann@example.com".to_owned(),
            }],
        ),
        finish_reason: crate::chat::FinishReason::Stop,
        raw_finish_reason: None,
        usage: None,
        system_fingerprint: None,
    };
    answer.message.tool_calls.push(ToolCall {
        id: "c".to_owned(),
        name: "mail".to_owned(),
        arguments: r#"{"to":"bob@example.org"}"#.to_owned(),
    });
    let mask = rules(&[(Detector::Email, Action::Mask)]);
    let findings = mask
        .check_answer(&mut answer)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(findings.summary(), "email:mask=2");
    assert_eq!(answer.message.text_content(), "write to [REDACTED:email]");
    assert_eq!(
        answer.message.tool_calls[0].arguments,
        r#"{"to":"[REDACTED:email]"}"#
    );
    answer.message.refusal = Some("call +44 20 7946 0958".to_owned());
    let block = rules(&[(Detector::Phone, Action::Block)]);
    let blocked = block.check_answer(&mut answer).unwrap_err();
    assert_eq!(blocked.detector, Detector::Phone);
    let error = blocked.answer_error();
    assert_eq!(
        (error.status(), error.code.as_deref()),
        (403, Some("guardrail_blocked"))
    );
    assert!(!error.message.contains("7946"));
}

/// The text a guard releases for `deltas`, then its flush; and the findings' summary.
fn streamed(guard: &mut StreamGuard, deltas: &[&str]) -> Result<(Vec<String>, String), Blocked> {
    let mut out = Vec::new();
    let mut findings = Findings::default();
    for delta in deltas {
        let (text, found) = guard.push(delta)?;
        out.push(text);
        findings.merge(found);
    }
    let (text, found) = guard.flush()?;
    out.push(text);
    findings.merge(found);
    Ok((out, findings.summary()))
}

#[test]
fn a_stream_window_masks_a_finding_split_across_deltas() {
    let mask = std::sync::Arc::new(rules(&[(Detector::Email, Action::Mask)]));
    let mut guard = StreamGuard::with_window(std::sync::Arc::clone(&mask), 16);
    let (out, findings) = streamed(
        &mut guard,
        &[
            "Reach me at ann.lee@exa",
            "mple.com today",
            ", or later this week.",
        ],
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    // The last 16 bytes stay back; the address, split across deltas, is held whole until it is
    // masked, and never leaves in clear.
    assert_eq!(
        out,
        [
            "Reach m",
            "e at ",
            "[REDACTED:email] today, or ",
            "later this week."
        ]
    );
    assert_eq!(findings, "email:mask=1");
    // The same text in one delta, and with the default window: the same result.
    let whole = "Reach me at ann.lee@example.com today, or later this week.";
    let mut guard = StreamGuard::new(mask);
    let (out, _) = streamed(&mut guard, &[whole]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        out.concat(),
        "Reach me at [REDACTED:email] today, or later this week."
    );
    assert_eq!(out[0], "");
}

#[test]
fn a_stream_window_blocks_before_the_finding_leaves() {
    let block = std::sync::Arc::new(rules(&[(Detector::PaymentCard, Action::Block)]));
    let mut guard = StreamGuard::with_window(block, 32);
    let (first, _) = guard
        .push("Your card is 4111 1111")
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(first, "");
    let blocked = streamed(&mut guard, &[" 1111 1111, keep it safe."]).unwrap_err();
    assert_eq!(blocked.detector, Detector::PaymentCard);
}
