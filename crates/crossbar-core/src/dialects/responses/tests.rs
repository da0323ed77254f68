//! Responses dialect units: request decoding, `Response` encoding and the stream event sequence.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::*;
use crate::chat::StreamEvent;

fn decode(body: Value) -> Result<IngressResponse> {
    decode_request(body.to_string().as_bytes())
}

/// What the OpenAI Agents SDK sends on its second turn: the whole history as items.
fn agent_turn() -> Value {
    json!({
        "model": "gpt-4o",
        "instructions": "You are terse.",
        "input": [
            {"role": "user", "content": "weather and time in Paris?"},
            {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "get_time",
             "arguments": "{}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_b",
             "output": [{"type": "input_text", "text": "noon"}]}
        ],
        "include": [],
        "tools": [
            {"type": "function", "name": "get_weather", "description": "w",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"], "additionalProperties": false},
             "strict": true},
            {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}},
             "strict": false}
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "max_output_tokens": 300,
        "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_schema", "name": "out", "strict": true,
                            "schema": {"type": "object"}}},
        "temperature": 0.2,
        "store": false,
        "prompt_cache_key": "ignored",
        "stream": true
    })
}

#[test]
fn decodes_an_agent_turn_with_calls_joined_to_their_assistant_turn() {
    let ingress = decode(agent_turn()).unwrap();
    assert!(ingress.stream);
    assert!(!ingress.params.store);
    let request = ingress.chat_request(&[]).unwrap();
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool
        ]
    );
    assert_eq!(request.messages[0].text_content(), "You are terse.");
    let assistant = &request.messages[2];
    assert_eq!(assistant.text_content(), "Checking.");
    let ids: Vec<&str> = assistant.tool_calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["call_a", "call_b"],
        "call_id, not the item id, ties calls"
    );
    assert_eq!(request.messages[3].tool_call_id.as_deref(), Some("call_a"));
    assert_eq!(request.messages[4].text_content(), "noon");
    assert_eq!(request.tools.len(), 2);
    assert_eq!(request.tools[0].strict, Some(true));
    assert_eq!(request.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(request.max_tokens, Some(300));
    assert_eq!(request.reasoning_effort.as_deref(), Some("low"));
    assert_eq!(request.sampling.temperature, Some(0.2));
    assert!(matches!(
        &request.response_format,
        Some(ResponseFormat::JsonSchema { name, strict: Some(true), .. }) if name == "out"
    ));
}

#[test]
fn a_string_input_is_one_user_message_after_stored_history() {
    let ingress =
        decode(json!({"model": "m", "input": "hi", "previous_response_id": "resp_x"})).unwrap();
    assert_eq!(ingress.previous_response_id(), Some("resp_x"));
    assert!(ingress.params.store, "store defaults to true");
    let history = vec![
        Message::text(Role::User, "before"),
        Message::text(Role::Assistant, "ok"),
    ];
    let request = ingress.chat_request(&history).unwrap();
    let texts: Vec<String> = request.messages.iter().map(Message::text_content).collect();
    assert_eq!(texts, ["before", "ok", "hi"]);
}

#[test]
fn refuses_unknown_and_unsupported_fields_naming_them() {
    // An unknown field is kept for the route to refuse (the default) or pass on.
    let request = decode(json!({"model": "m", "input": "x", "frobnicate": 1}))
        .unwrap()
        .chat_request(&[])
        .unwrap();
    assert_eq!(request.passthrough.required, ["frobnicate"]);
    assert_eq!(request.passthrough.fields["frobnicate"], json!(1));
    let error = unknown_field_error("frobnicate");
    assert_eq!(
        (
            error.status(),
            error.param.as_deref(),
            error.message.as_str()
        ),
        (
            400,
            Some("frobnicate"),
            "Unrecognized request argument supplied: frobnicate"
        )
    );
    let error = decode(json!({"model": "m", "input": "x", "conversation": "conv_1"})).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("conversation"));
    let error = decode(json!({"model": "m", "input": "x", "background": true})).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("background"));
    let error = decode(json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}))
        .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("input[0].type"));
    let error = decode(json!({"model": "m", "input": "x", "tools": [{"type": "local_shell"}]}))
        .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("tools[0].type"));
    let error = decode(
        json!({"model": "m", "input": "x", "tools": [{"type": "custom", "name": "c",
                                                      "format": {"type": "regex"}}]}),
    )
    .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("tools[0].format.type"));
    let error = decode(
        json!({"model": "m", "input": [{"type": "function_call", "name": "f",
                                                       "arguments": "{}"}]}),
    )
    .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("input[0].call_id"));
    let error =
        decode(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}))
            .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("text.format.name"));
    let error = decode(json!({"model": "m"}))
        .unwrap()
        .chat_request(&[])
        .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("input"));
}

fn params() -> Params {
    let mut ingress = decode(json!({"model": "m", "input": "x", "max_output_tokens": 19})).unwrap();
    ingress.params.id = "resp_abc".to_owned();
    ingress.params
}

fn answer(text: &str, calls: &[(&str, &str, &str)], finish: FinishReason) -> ChatResponse {
    let mut message = Message::new(Role::Assistant, Vec::new());
    if !text.is_empty() {
        message.content.push(ContentPart::text(text));
    }
    message.tool_calls = calls
        .iter()
        .map(|(id, name, arguments)| ToolCall {
            id: (*id).to_owned(),
            name: (*name).to_owned(),
            arguments: (*arguments).to_owned(),
        })
        .collect();
    ChatResponse {
        id: "up".into(),
        model: "claude-x".into(),
        created: 1,
        message,
        finish_reason: finish,
        raw_finish_reason: None,
        usage: Some(Usage {
            input_tokens: 10,
            cached_input_tokens: 4,
            cache_write_tokens: 0,
            output_tokens: 7,
            reasoning_tokens: 2,
        }),
        system_fingerprint: None,
    }
}

#[test]
fn encodes_a_response_with_text_calls_and_usage() {
    let response = answer(
        "Hi",
        &[("toolu_1", "get_weather", "{\"city\":\"Paris\"}")],
        FinishReason::ToolCalls,
    );
    let object = encode_response(&params(), &response);
    assert_eq!(object["id"], "resp_abc");
    assert_eq!(object["object"], "response");
    assert_eq!(object["status"], "completed");
    assert_eq!(object["model"], "claude-x");
    assert_eq!(object["max_output_tokens"], 19);
    assert_eq!(object["output"][0]["type"], "message");
    assert_eq!(object["output"][0]["id"], "msg_abc");
    assert_eq!(object["output"][0]["content"][0]["text"], "Hi");
    assert_eq!(object["output"][1]["type"], "function_call");
    assert_eq!(object["output"][1]["id"], "fc_abc_0");
    assert_eq!(object["output"][1]["call_id"], "toolu_1");
    assert_eq!(
        object["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2},
               "total_tokens": 17})
    );
    // The stored object gives back the assistant turn for `previous_response_id`.
    let message = response_message(&object);
    assert_eq!(message.text_content(), "Hi");
    assert_eq!(message.tool_calls[0].id, "toolu_1");
}

#[test]
fn a_length_cut_answer_is_incomplete() {
    let object = encode_response(&params(), &answer("Hi", &[], FinishReason::Length));
    assert_eq!(object["status"], "incomplete");
    assert_eq!(object["incomplete_details"]["reason"], "max_output_tokens");
}

fn frames(bytes: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|frame| {
            let mut lines = frame.lines();
            let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], event, "the event name and `type` agree");
            (event.to_owned(), data)
        })
        .collect()
}

#[test]
fn streams_the_event_sequence_with_sequence_numbers() {
    let mut encoder = StreamEncoder::new(params(), "m");
    let mut out = BytesMut::new();
    for event in [
        StreamEvent::Start {
            id: "up".into(),
            model: "claude-x".into(),
            created: 1,
        },
        StreamEvent::TextDelta("Hel".into()),
        StreamEvent::TextDelta("lo".into()),
        StreamEvent::ToolCallStart {
            index: 0,
            id: "toolu_1".into(),
            name: "f".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: "{\"a\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: "1}".into(),
        },
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            raw: None,
        },
        StreamEvent::Usage(Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Usage::default()
        }),
    ] {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    let frames = frames(&out);
    let kinds: Vec<&str> = frames.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, data)) in frames.iter().enumerate() {
        assert_eq!(data["sequence_number"], i);
    }
    assert_eq!(frames[0].1["response"]["status"], "in_progress");
    assert_eq!(frames[6].1["text"], "Hello");
    assert_eq!(frames[9].1["item"]["call_id"], "toolu_1");
    assert_eq!(frames[9].1["output_index"], 1);
    assert_eq!(frames[12].1["arguments"], "{\"a\":1}");
    assert_eq!(frames[12].1["item_id"], "fc_abc_0");
    let completed = &frames[14].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["usage"]["total_tokens"], 7);
    assert_eq!(completed["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(completed["output"][1]["arguments"], "{\"a\":1}");
    // The items streamed and the final object agree.
    assert_eq!(completed["output"][0], frames[8].1["item"]);
    assert_eq!(completed["output"][1], frames[13].1["item"]);
}

#[test]
fn a_broken_stream_ends_with_response_failed() {
    let mut encoder = StreamEncoder::new(params(), "m");
    let mut out = BytesMut::new();
    encoder.event(
        StreamEvent::Start {
            id: "up".into(),
            model: "x".into(),
            created: 1,
        },
        &mut out,
    );
    encoder.event(StreamEvent::TextDelta("partial".into()), &mut out);
    encoder.error(&Error::stream_interrupted("cut"), &mut out);
    let frames = frames(&out);
    let (kind, last) = frames.last().unwrap();
    assert_eq!(kind, "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    assert_eq!(last["response"]["error"]["message"], "cut");
    assert!(!frames.iter().any(|(k, _)| k == "response.completed"));
}

#[test]
fn input_items_keep_the_request_items_with_stable_ids() {
    let ingress = decode(agent_turn()).unwrap();
    let items = &ingress.input_items;
    assert_eq!(items.len(), 7, "one per input item, reasoning included");
    let stem = ingress.params.id.strip_prefix("resp_").unwrap();
    // An easy message gets its type, parts, status and an id made of response id and index.
    assert_eq!(
        items[0],
        json!({"id": format!("msg_{stem}0000"), "type": "message", "role": "user", "status": "completed",
               "content": [{"type": "input_text", "text": "weather and time in Paris?"}]})
    );
    // Items that came with ids keep them, and their fields.
    assert_eq!(items[1]["id"], "msg_1");
    assert_eq!(items[1]["content"][0]["logprobs"], json!([]));
    assert_eq!(items[2]["id"], "rs_1");
    assert_eq!(items[3]["id"], "fc_1");
    assert_eq!(items[5]["id"], format!("fco_{stem}0005"));
    assert_eq!(items[5]["status"], "completed");
    assert_eq!(items[6]["output"][0]["text"], "noon");
    // Deterministic: the same response and input give the same ids.
    assert_eq!(
        &input_items(&ingress.params.id, agent_turn().get("input").cloned()),
        items
    );
    // A string input is one user message; an assistant string becomes output_text.
    let one = input_items("resp_x", Some(json!("hi")));
    assert_eq!(one[0]["id"], "msg_x0000");
    assert_eq!(
        one[0]["content"],
        json!([{"type": "input_text", "text": "hi"}])
    );
    let assistant = input_items(
        "resp_x",
        Some(json!([{"role": "assistant", "content": "ok"}])),
    );
    assert_eq!(
        assistant[0]["content"],
        json!([{"type": "output_text", "text": "ok", "annotations": []}])
    );
    assert!(input_items("resp_x", None).is_empty());
}

/// Like the real API, the Responses ingress refuses `max_output_tokens` below 16.
#[test]
fn max_output_tokens_below_sixteen_is_refused_like_openai() {
    let error = decode(json!({"model": "m", "input": "x", "max_output_tokens": 3})).unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.param.as_deref(), Some("max_output_tokens"));
    assert_eq!(error.code.as_deref(), Some("integer_below_min_value"));
    assert_eq!(
        error.message,
        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 3 instead."
    );
}

/// What Codex 0.169 sends besides its tools (before: `client_metadata` was an unknown field).
#[test]
fn accepts_codex_client_metadata_include_cache_key_and_reasoning_summary() {
    let ingress = decode(json!({
        "model": "m",
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "Say hello"}]}],
        "tools": [{"type": "function", "name": "exec_command", "description": "run",
                   "parameters": {"type": "object", "properties": {}}, "strict": false}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a-session",
        "client_metadata": {"x-codex-installation-id": "abc"}
    }))
    .unwrap();
    assert_eq!(ingress.params.reasoning["summary"], json!("auto"));
    let request = ingress.chat_request(&[]).unwrap();
    assert_eq!(request.reasoning_effort.as_deref(), Some("medium"));
    assert_eq!(request.tools[0].name, "exec_command");
    assert!(request.openai_passthrough.is_empty());
    assert_eq!(request.metadata, None);
}

#[test]
fn refuses_bad_codex_fields_and_hosted_tools_by_name() {
    let error =
        decode(json!({"model": "m", "input": "x", "client_metadata": {"a": 1}})).unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.param.as_deref(), Some("client_metadata.a"));
    assert_eq!(
        error.message,
        "Invalid type for 'client_metadata.a': expected a string."
    );
    let error = decode(
        json!({"model": "m", "input": "x", "include": ["reasoning.encrypted_content", "x"]}),
    )
    .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("include[1]"));
    assert_eq!(error.code.as_deref(), Some("invalid_value"));
    let error =
        decode(json!({"model": "m", "input": "x", "reasoning": {"summary": "brief"}})).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("reasoning.summary"));
    assert_eq!(
        error.message,
        "Invalid value: 'brief'. Supported values are: 'auto', 'concise', and 'detailed'."
    );
}

/// Provider-run tools are kept verbatim for Responses upstreams; every other dialect refuses the
/// request naming the tool, unless the route drops them.
#[test]
fn hosted_tools_go_to_responses_upstreams_and_are_refused_or_dropped_elsewhere() {
    let tools = json!([
        {"type": "function", "name": "f", "parameters": {"type": "object"}},
        {"type": "web_search", "external_web_access": false}
    ]);
    let mut request = decode(json!({"model": "m", "input": "x", "tools": tools}))
        .unwrap()
        .chat_request(&[])
        .unwrap();
    assert_eq!(request.tools.len(), 1);
    assert_eq!(
        request.passthrough.hosted_tools,
        [(
            1,
            json!({"type": "web_search", "external_web_access": false})
        )]
    );
    let error = crate::dialects::openai::encode_chat_request(
        &request,
        "gpt-4o",
        crate::dialects::openai::MaxTokensField::MaxCompletionTokens,
    )
    .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("tools[1].type"));
    assert_eq!(
        error.message,
        "The hosted tool 'web_search' (tools[1]) runs only on its own provider's servers; this \
         model is served by the openai dialect. A route with `hosted_tools = \"drop\"` serves it \
         without the tool."
    );
    let body: Value =
        serde_json::from_slice(&encode_request(&request, "gpt-5-2025-08-07").unwrap()).unwrap();
    assert_eq!(
        body["tools"][1],
        json!({"type": "web_search", "external_web_access": false})
    );
    request.passthrough.drop_hosted_tools = true;
    let body: Value = serde_json::from_slice(
        &crate::dialects::openai::encode_chat_request(
            &request,
            "gpt-4o",
            crate::dialects::openai::MaxTokensField::MaxCompletionTokens,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(body["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["tools"][0]["function"]["name"], "f");
}

/// Codex's freeform `apply_patch`: a function taking one string `input` for the model, a
/// `custom_tool_call` with the raw input for the client, both ways.
#[test]
fn custom_tools_become_one_string_functions_and_their_calls_map_back() {
    let ingress = decode(json!({
        "model": "m",
        "input": [
            {"type": "message", "role": "user", "content": "patch it"},
            {"type": "custom_tool_call", "call_id": "call_1", "name": "apply_patch",
             "input": "*** Begin Patch\n*** End Patch\n"},
            {"type": "custom_tool_call_output", "call_id": "call_1", "output": "Done!"}
        ],
        "tools": [{"type": "custom", "name": "apply_patch", "description": "Edit files.",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}}]
    }))
    .unwrap();
    let request = ingress.chat_request(&[]).unwrap();
    let tool = &request.tools[0];
    assert_eq!(tool.name, "apply_patch");
    assert_eq!(
        tool.description.as_deref(),
        Some("Edit files.\n\nThe `input` must follow this lark grammar:\nstart: x")
    );
    assert_eq!(
        tool.parameters.as_ref().unwrap()["required"],
        json!(["input"])
    );
    let call = &request.messages[1].tool_calls[0];
    assert_eq!(
        (
            call.id.as_str(),
            call.name.as_str(),
            call.arguments.as_str()
        ),
        (
            "call_1",
            "apply_patch",
            r#"{"input":"*** Begin Patch\n*** End Patch\n"}"#
        )
    );
    assert_eq!(request.messages[2].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(request.messages[2].text_content(), "Done!");
    let mut message = Message::new(Role::Assistant, Vec::new());
    message.tool_calls.push(crate::chat::ToolCall {
        id: "call_2".into(),
        name: "apply_patch".into(),
        arguments: r#"{"input": "*** Begin Patch\n"}"#.into(),
    });
    let answer = ChatResponse {
        id: "x".into(),
        model: "m".into(),
        created: 0,
        message,
        finish_reason: FinishReason::ToolCalls,
        raw_finish_reason: None,
        usage: None,
        system_fingerprint: None,
    };
    let object = encode_response(&ingress.params, &answer);
    let item = &object["output"][0];
    assert_eq!(item["type"], "custom_tool_call");
    assert_eq!(item["input"], "*** Begin Patch\n");
    assert_eq!(item["call_id"], "call_2");
    assert!(item.get("arguments").is_none());
    // Stored and handed back, it is the same call again.
    let again = response_message(&object);
    assert_eq!(
        again.tool_calls[0].arguments,
        r#"{"input":"*** Begin Patch\n"}"#
    );
    // Streamed: no argument deltas, the input once complete.
    let mut encoder = StreamEncoder::new(ingress.params.clone(), "m");
    let mut out = bytes::BytesMut::new();
    for event in [
        StreamEvent::ToolCallStart {
            index: 0,
            id: "call_2".into(),
            name: "apply_patch".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: r#"{"input": "*** Be"#.into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: r#"gin Patch\n"}"#.into(),
        },
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            raw: None,
        },
    ] {
        encoder.event(event, &mut out);
    }
    let text = String::from_utf8(out.to_vec()).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
        ]
    );
    assert!(text.contains(r#""input":"*** Begin Patch\n""#), "{text}");
}

/// Codex's `namespace` tool groups: flattened to `{namespace}__{name}` for the model, calls
/// split back into `namespace` and `name`, and joined again when the client hands them back.
#[test]
fn namespace_groups_flatten_and_their_calls_map_back() {
    let body = json!({
        "model": "m",
        "input": [
            {"type": "message", "role": "user", "content": "read it"},
            {"type": "function_call", "call_id": "call_0", "namespace": "mcp__files",
             "name": "read", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_0", "output": "text"}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "mcp__files", "description": "File tools.",
             "tools": [{"type": "function", "name": "read", "strict": false,
                        "parameters": {"type": "object", "properties": {}}}]}
        ]
    });
    let mut ingress = decode(body.clone()).unwrap();
    let request = ingress.chat_request(&[]).unwrap();
    let names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["exec_command", "mcp__files__read"]);
    assert_eq!(request.messages[1].tool_calls[0].name, "mcp__files__read");

    ingress.params.id = "resp_abc".to_owned();
    let response = encode_response(
        &ingress.params,
        &answer(
            "",
            &[("call_1", "mcp__files__read", "{}")],
            FinishReason::ToolCalls,
        ),
    );
    let call = &response["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["namespace"], "mcp__files");
    assert_eq!(call["name"], "read");
    assert_eq!(
        response_message(&response).tool_calls[0].name,
        "mcp__files__read"
    );

    let mut encoder = StreamEncoder::new(ingress.params.clone(), "m");
    let mut out = BytesMut::new();
    for event in [
        StreamEvent::ToolCallStart {
            index: 0,
            id: "call_1".into(),
            name: "mcp__files__read".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: "{}".into(),
        },
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            raw: None,
        },
    ] {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    let events = frames(&out);
    let named: Vec<(&str, &Value)> = events
        .iter()
        .filter(|(_, data)| data["item"]["type"] == "function_call" || data.get("name").is_some())
        .map(|(kind, data)| (kind.as_str(), data.get("item").unwrap_or(data)))
        .collect();
    assert_eq!(named.len(), 3, "{events:?}");
    for (kind, item) in named {
        assert_eq!(item["namespace"], "mcp__files", "{kind}");
        assert_eq!(item["name"], "read", "{kind}");
    }

    let mut clash = body;
    clash["tools"][0]["name"] = json!("mcp__files__read");
    let error = decode(clash).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("tools"));
}
