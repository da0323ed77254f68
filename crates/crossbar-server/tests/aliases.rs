//! Model ids clients ask for that no config names: on the built-in defaults, Claude Code's
//! `claude-opus-5-5` is served by `claude-sonnet` and Codex's `gpt-5.5` by `gpt-5`; `/v1/models`
//! lists models then exact aliases, in OpenAI's shape or (with `anthropic-version`) Anthropic's;
//! an unknown id is a 404 naming close matches; a virtual key applies to the logical model.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use common::{TestGateway, error_of, start, user};
use crossbar_core::config::BUILTIN_SIM;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";

const BUILTIN_MODELS: [&str; 6] = [
    "claude-sonnet",
    "gemini-2.5-flash",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-5",
    "text-embedding-3-small",
];

/// The built-in defaults, with an exact alias, a store and an admin token added.
fn builtin_with_store() -> String {
    let path = common::temp_db("aliases");
    format!(
        "{BUILTIN_SIM}\"sonnet\" = \"claude-sonnet\"\n\n[store]\nurl = \"{}\"\n\n[admin]\ntoken = \"{ADMIN}\"\n",
        path.display()
    )
}

async fn get(gw: &TestGateway, path: &str, key: Option<&str>, anthropic: bool) -> (u16, Value) {
    let mut request = gw.client().get(format!("{}{path}", gw.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if anthropic {
        request = request.header("anthropic-version", "2023-06-01");
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn chat(gw: &TestGateway, key: Option<&str>, model: &str) -> reqwest::Response {
    let mut request = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": model, "messages": [user("hello")]}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

fn ids(list: &Value) -> Vec<&str> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn coding_agent_model_ids_are_served_by_the_default_models() {
    let gw = start(BUILTIN_SIM).await;
    for (requested, served) in [
        ("claude-opus-5-5", "claude-sonnet@"),
        ("claude-haiku-4-5-20251001", "claude-sonnet@"),
        ("gpt-5.5", "gpt-5@"),
        ("gpt-5-codex", "gpt-5@"),
        ("gemini-3-pro", "gemini-2.5-flash@"),
    ] {
        let response = chat(&gw, None, requested).await;
        assert_eq!(response.status(), 200, "{requested}");
        let deployment = response.headers()["x-crossbar-deployment"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(deployment.starts_with(served), "{requested}: {deployment}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion", "{requested}");
    }
}

#[tokio::test]
async fn models_are_listed_then_exact_aliases_in_either_shape() {
    let gw = start(&format!("{BUILTIN_SIM}\"sonnet\" = \"claude-sonnet\"\n")).await;
    let (status, list) = get(&gw, "/v1/models", None, false).await;
    assert_eq!(status, 200);
    let mut expected = BUILTIN_MODELS.to_vec();
    expected.push("sonnet");
    assert_eq!(ids(&list), expected);
    assert_eq!(list["object"], "list");
    assert_eq!(
        list["data"][6],
        json!({"id": "sonnet", "object": "model", "created": 0, "owned_by": "crossbar"})
    );

    let (status, list) = get(&gw, "/v1/models", None, true).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&list), expected);
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], "claude-sonnet");
    assert_eq!(list["last_id"], "sonnet");
    assert!(list.get("object").is_none());
    assert_eq!(
        list["data"][0],
        json!({"type": "model", "id": "claude-sonnet", "display_name": "claude-sonnet", "created_at": "1970-01-01T00:00:00Z"})
    );

    // One model: an alias or a pattern answers with the id asked for.
    let (status, one) = get(&gw, "/v1/models/claude-opus-5-5", None, false).await;
    assert_eq!(status, 200);
    assert_eq!(
        one,
        json!({"id": "claude-opus-5-5", "object": "model", "created": 0, "owned_by": "crossbar"})
    );
    let (status, one) = get(&gw, "/v1/models/sonnet", None, true).await;
    assert_eq!(status, 200);
    assert_eq!(
        one,
        json!({"type": "model", "id": "sonnet", "display_name": "sonnet", "created_at": "1970-01-01T00:00:00Z"})
    );
    let (status, missing) = get(&gw, "/v1/models/gpt-4o-mni", None, false).await;
    assert_eq!(status, 404);
    assert_eq!(
        missing["error"]["message"],
        "The model `gpt-4o-mni` does not exist or you do not have access to it. Close matches: gpt-4o-mini."
    );
    let (status, missing) = get(&gw, "/v1/models/gpt-4o-mni", None, true).await;
    assert_eq!(status, 404);
    assert_eq!(missing["type"], "error");
    assert_eq!(missing["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn an_unknown_model_is_a_404_naming_close_matches() {
    let gw = start(BUILTIN_SIM).await;
    let (status, body) = error_of(chat(&gw, None, "gpt-4o-mni").await).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"],
        json!({
            "message": "The model `gpt-4o-mni` does not exist or you do not have access to it. Close matches: gpt-4o-mini.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        })
    );
    let (status, body) = error_of(chat(&gw, None, "gpt4").await).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "The model `gpt4` does not exist or you do not have access to it. Close matches: gpt-4o, gpt-5."
    );
    let (status, body) = error_of(chat(&gw, None, "llama-3.3-70b").await).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "The model `llama-3.3-70b` does not exist or you do not have access to it."
    );
    // The Messages ingress answers in Anthropic's shape. (`claude-sonet` would be served:
    // `claude-*` leads to claude-sonnet.)
    let response = gw
        .post(
            "/v1/messages",
            &json!({"model": "gpt-4o-mni", "max_tokens": 5, "messages": [user("hi")]}),
        )
        .await;
    let (status, body) = error_of(response).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "not_found_error",
            "message": "The model `gpt-4o-mni` does not exist or you do not have access to it. Close matches: gpt-4o-mini."}})
    );
}

#[tokio::test]
async fn a_key_holds_to_the_logical_model_and_usage_records_it() {
    let gw = start(&builtin_with_store()).await;
    let claude = common::admin_key(&gw, ADMIN, &json!({"models": ["claude-sonnet"]})).await;
    let gpt = common::admin_key(&gw, ADMIN, &json!({"models": ["gpt-4o"]})).await;

    // A key for claude-sonnet may ask for any id aliased to it...
    let response = chat(&gw, Some(&claude), "claude-opus-5-5").await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    // ...a key for gpt-4o may not reach Claude through an alias.
    let (status, body) = error_of(chat(&gw, Some(&gpt), "claude-opus-5-5").await).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert_eq!(
        body["error"]["message"],
        "Your key may not use model `claude-sonnet`."
    );
    // An unknown id is a 404 naming only what the key may use (not gpt-5, as unkeyed).
    let (status, body) = error_of(chat(&gw, Some(&gpt), "gpt-4").await).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "The model `gpt-4` does not exist or you do not have access to it. Close matches: gpt-4o."
    );
    let (status, body) = error_of(chat(&gw, None, "gpt-4").await).await;
    assert_eq!(status, 401, "{body}");

    // Each key lists what it may use, aliases included.
    let (_, list) = get(&gw, "/v1/models", Some(&claude), false).await;
    assert_eq!(ids(&list), ["claude-sonnet", "sonnet"]);
    let (_, list) = get(&gw, "/v1/models", Some(&gpt), true).await;
    assert_eq!(ids(&list), ["gpt-4o"]);
    assert_eq!(list["first_id"], "gpt-4o");
    assert_eq!(list["last_id"], "gpt-4o");
    let (status, _) = get(&gw, "/v1/models/claude-opus-5-5", Some(&gpt), false).await;
    assert_eq!(status, 404);
    let (status, _) = get(&gw, "/v1/models/claude-opus-5-5", Some(&claude), false).await;
    assert_eq!(status, 200);

    // The usage record names the logical model, not the id asked for.
    let found = common::usage_records(&gw, 3).await;
    let mut served: Vec<(&str, u16)> = found.iter().map(|r| (r.model.as_str(), r.status)).collect();
    served.sort_unstable();
    assert_eq!(
        served,
        [
            ("claude-sonnet", 200),
            ("claude-sonnet", 403),
            ("gpt-4", 404)
        ]
    );
    let ok = found.iter().find(|r| r.status == 200).unwrap();
    assert!(
        ok.deployment
            .as_deref()
            .unwrap()
            .starts_with("claude-sonnet@"),
        "{:?}",
        ok.deployment
    );
}
