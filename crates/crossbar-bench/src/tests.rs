use std::collections::HashMap;

use crossbar_core::chat::{ChatRequest, Message, Role};
use crossbar_core::router::Router;

use super::*;

fn roles(request: &ChatRequest) -> Vec<Role> {
    request.messages.iter().map(|m| m.role).collect()
}

#[test]
fn every_ingress_body_is_the_same_100_kb_conversation() {
    let decoded: Vec<ChatRequest> = Ingress::ALL
        .iter()
        .map(|ingress| {
            let body = ingress.request_body(REQUEST_BYTES);
            assert!(
                (REQUEST_BYTES..REQUEST_BYTES * 21 / 20).contains(&body.len()),
                "{}: {} bytes",
                ingress.name(),
                body.len()
            );
            ingress
                .decode(&body)
                .unwrap_or_else(|e| panic!("{}: {}", ingress.name(), e.message))
        })
        .collect();
    let openai = &decoded[0];
    assert!(openai.messages.len() > 100, "{}", openai.messages.len());
    assert_eq!(openai.tools.len(), 8);
    let calls = |r: &ChatRequest| r.messages.iter().map(|m| m.tool_calls.len()).sum::<usize>();
    for other in &decoded[1..] {
        assert_eq!(roles(other), roles(openai));
        assert_eq!(other.tools.len(), openai.tools.len());
        assert_eq!(calls(other), calls(openai));
        assert_eq!(
            other.messages.last().map(Message::text_content),
            openai.messages.last().map(Message::text_content)
        );
    }
}

#[test]
fn the_conversation_encodes_for_every_upstream() {
    let body = Ingress::OpenAiChat.request_body(REQUEST_BYTES);
    let request = Ingress::OpenAiChat.decode(&body).unwrap();
    for upstream in Upstream::ALL {
        let encoded = upstream
            .egress()
            .chat_body(&request, "bench-target")
            .unwrap_or_else(|e| panic!("{}: {}", upstream.name(), e.message));
        // Every tool result's text survives, whatever the dialect wraps it in.
        let text = String::from_utf8(encoded).unwrap();
        assert!(text.contains("turn 3 line 23"), "{}", upstream.name());
    }
}

#[test]
fn every_upstream_stream_translates_to_every_ingress() {
    for upstream in Upstream::ALL {
        // Decoding alone: one content event per content chunk, and a complete stream.
        let mut decode_only = Pipeline::new(upstream, None).unwrap();
        let mut content = 0;
        for chunk in upstream.stream(20).unwrap() {
            content += decode_only.push(chunk).unwrap();
        }
        // Gemini's closing chunk carries the final ".".
        let expected = if upstream == Upstream::Gemini { 21 } else { 20 };
        assert_eq!(content, expected, "{}", upstream.name());
        decode_only.finish().unwrap();

        for ingress in Ingress::ALL {
            let mut pipeline = Pipeline::new(upstream, Some(ingress)).unwrap();
            let mut written = 0;
            for chunk in upstream.stream(20).unwrap() {
                written += pipeline.push(chunk).unwrap();
            }
            written += pipeline.finish().unwrap();
            assert!(
                written > 20 * 40,
                "{} → {}",
                upstream.name(),
                ingress.name()
            );
        }
    }
}

#[test]
fn a_mid_stream_chunk_writes_one_client_frame() {
    for upstream in Upstream::ALL {
        for ingress in Ingress::ALL {
            let mut pipeline = Pipeline::mid_stream(upstream, Some(ingress)).unwrap();
            let written = pipeline
                .push(upstream.text_chunk(" skips").unwrap())
                .unwrap();
            // One delta frame: at least the text and the framing, at most a few hundred bytes.
            assert!(
                (20..600).contains(&written),
                "{} → {}: {written}",
                upstream.name(),
                ingress.name()
            );
        }
    }
}

#[test]
fn a_split_chunk_waits_for_its_end() {
    let chunk = Upstream::Bedrock.text_chunk(" skips").unwrap();
    let mut pipeline = Pipeline::mid_stream(Upstream::Bedrock, Some(Ingress::OpenAiChat)).unwrap();
    assert_eq!(pipeline.push(chunk.slice(..10)).unwrap(), 0);
    let written = pipeline.push(chunk.slice(10..)).unwrap();
    assert!(written > 20, "{written}");
}

#[test]
fn routing_plans_over_the_whole_catalog() {
    for kind in ["openai-compatible", "anthropic"] {
        let config = catalog_config(100, kind).unwrap();
        let router = Router::from_config(&config, &HashMap::new()).unwrap();
        assert_eq!(router.deployments().count(), 100);
        let request = ChatRequest::new("m", vec![Message::text(Role::User, "Hi there.")]);
        let first = router.plan_for_bench(&request).unwrap();
        assert!(first < 100, "{first}");
        let unknown = ChatRequest::new("nope", vec![Message::text(Role::User, "Hi.")]);
        assert!(router.plan_for_bench(&unknown).is_err());
    }
}
