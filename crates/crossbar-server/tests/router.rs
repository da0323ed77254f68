//! Black-box routing tests: the gateway on port 0 in front of simulated providers with scripted
//! faults. Assertions are on outcomes and on what reached each simulator, never on timings.

mod common;

use std::time::Duration;

use common::{TestGateway, eventually, sse_data, start, user};
use futures::StreamExt;
use serde_json::{Value, json};

/// Simulated OpenAI-dialect providers `(name, region, sim settings)` serving model `m`, with
/// `route` appended.
fn config(providers: &[(&str, &str, &str)], route: &str) -> String {
    let mut out = String::new();
    for (name, region, sim) in providers {
        out.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"sim\"\ndialect = \"openai\"\ncloud = \"sim\"\nregion = \"{region}\"\nsim = {{ {sim} }}\n\n"
        ));
    }
    let deployments: Vec<String> = providers
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| {
            format!(
                "{{ provider = \"{name}\", target = \"gpt-4o\", price = {{ input = {}, output = {}, cached_input = {} }} }}",
                1.0 + i as f64,
                4.0 * (1.0 + i as f64),
                0.5 * (1.0 + i as f64)
            )
        })
        .collect();
    out.push_str(&format!(
        "[[models]]\nname = \"m\"\ndeployments = [{}]\n\n[[models]]\nname = \"e\"\ndeployments = [{{ provider = \"{}\", target = \"text-embedding-3-small\", price = {{ input = 0.02 }} }}]\n\n{route}",
        deployments.join(", "),
        providers.last().map_or("", |p| p.0)
    ));
    out
}

#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
async fn chat(gw: &TestGateway, headers: &[(&str, &str)], stream: bool) -> reqwest::Response {
    let mut request = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "m", "messages": [user("Say something short")], "stream": stream}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
async fn deployments(gw: &TestGateway) -> Vec<Value> {
    let body: Value = gw
        .get("/v1/crossbar/deployments")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    body["data"].as_array().unwrap().clone()
}

#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
fn deployment<'a>(list: &'a [Value], provider: &str) -> &'a Value {
    list.iter()
        .find(|d| d["provider"] == provider && d["model"] == "m")
        .unwrap()
}

#[tokio::test]
async fn one_deployment_failing_half_its_calls_is_invisible_over_1000_requests() {
    // Round robin and a lenient breaker keep the flaky deployment in rotation, so each of its
    // failures has to be hidden by failover rather than by taking it out.
    let gw = start(&config(
        &[
            ("a", "r", ""),
            (
                "flaky",
                "r",
                "error_rate = 0.5, error_status = 503, seed = 7",
            ),
            ("c", "r", ""),
        ],
        "[routes.default]\nobjective = \"round-robin\"\nbreaker = { failures = 10000 }\n",
    ))
    .await;
    let statuses: Vec<u16> = futures::stream::iter(0..1000)
        .map(|i| {
            let gw = &gw;
            async move { chat(gw, &[], i % 5 == 0).await.status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let errors = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(errors, 0, "client-visible errors");
    let flaky = gw.sim("flaky").stats().requests;
    assert!(flaky > 250, "the flaky deployment kept its share: {flaky}");
    let list = deployments(&gw).await;
    let failures = deployment(&list, "flaky")["stats"]["failures"]
        .as_u64()
        .unwrap();
    assert!(failures > 100, "it really failed {failures} times");
}

#[tokio::test]
async fn retry_after_keeps_a_deployment_untouched_until_it_passes() {
    let gw = start(&config(
        &[
            ("busy", "r", "rate_limit_rate = 1.0, retry_after_s = 1"),
            ("b", "r", ""),
        ],
        "[routes.default]\nobjective = \"order\"\n",
    ))
    .await;
    let first = chat(&gw, &[], false).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-crossbar-deployment"), Some("m@b"));
    assert_eq!(header(&first, "x-crossbar-attempts"), Some("2"));
    for stream in [false, true, false, true] {
        assert_eq!(chat(&gw, &[], stream).await.status(), 200);
    }
    // Pinned to it: refused by the gateway itself, with the wait, and still not called.
    let pinned = chat(&gw, &[("x-crossbar-provider", "busy")], false).await;
    assert_eq!(pinned.status(), 429);
    assert_eq!(header(&pinned, "retry-after"), Some("1"));
    assert_eq!(
        gw.sim("busy").requests().len(),
        1,
        "untouched during Retry-After"
    );
    // Once the time has passed it is called again (and, still busy, says so).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = chat(&gw, &[("x-crossbar-provider", "busy")], false).await;
    assert_eq!(again.status(), 429);
    assert_eq!(gw.sim("busy").requests().len(), 2);
}

#[tokio::test]
async fn a_region_constraint_holds_under_failover() {
    // The US deployment is the cheapest and healthy, but outside the route's regions.
    let gw = start(&format!(
        "{}\n[[models]]\nname = \"m2\"\ndeployments = [{{ provider = \"us\", target = \"gpt-4o\", price = {{ input = 0.01 }} }}]\n",
        config(
            &[
                ("eu1", "eu-west-1", "error_rate = 1.0"),
                ("eu2", "eu-central-1", "error_rate = 0.6, seed = 3"),
                ("us", "us-east-1", ""),
            ],
            "[routes.default]\nobjective = \"cost\"\nfallbacks = [\"m2\"]\nconstraints = { regions = [\"eu-*\"] }\n",
        )
    ))
    .await;
    let mut served = 0;
    for i in 0..60 {
        let response = chat(&gw, &[], i % 2 == 0).await;
        if response.status() == 200 {
            served += 1;
            let deployment = header(&response, "x-crossbar-deployment")
                .unwrap()
                .to_owned();
            assert!(deployment.ends_with("@eu2"), "{deployment}");
        } else {
            assert_eq!(response.status(), 503);
        }
    }
    assert!(served > 0);
    assert_eq!(gw.sim("us").requests().len(), 0, "never left the EU");
    // Naming the US provider cannot widen the route's constraints.
    let pinned = chat(&gw, &[("x-crossbar-provider", "us")], false).await;
    assert_eq!(pinned.status(), 404);
    assert_eq!(gw.sim("us").requests().len(), 0);
}

#[tokio::test]
async fn the_deployments_endpoint_shows_breakers_statistics_and_prices() {
    let gw = start(&config(
        &[
            ("bad", "r", "error_rate = 1.0"),
            ("good", "r", "ttft_ms = 5"),
        ],
        "[routes.default]\nobjective = \"order\"\nbreaker = { failures = 3, cooldown_s = 60 }\n",
    ))
    .await;
    for stream in [false, true, false, true, false] {
        assert_eq!(chat(&gw, &[], stream).await.status(), 200);
    }
    let list = deployments(&gw).await;
    let bad = deployment(&list, "bad");
    assert_eq!(bad["breaker"]["state"], "open");
    assert!(bad["breaker"]["reopens_in_ms"].as_u64().unwrap() > 0);
    assert_eq!(bad["stats"]["failures"], 3);
    assert_eq!(
        gw.sim("bad").requests().len(),
        3,
        "an open breaker is not called"
    );
    let good = deployment(&list, "good");
    assert_eq!(good["breaker"]["state"], "closed");
    assert_eq!(good["id"], "m@good");
    assert_eq!(good["price"]["input"], 2.0);
    assert_eq!(good["stats"]["successes"], 5);
    assert!(good["stats"]["ttft_ms"]["ewma"].as_f64().unwrap() > 0.0);
    assert!(good["stats"]["latency_ms"]["samples"].as_u64().unwrap() >= 3);
    assert!(good["stats"]["spent_usd"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn decision_headers_and_caller_preferences() {
    let gw = start(&config(
        &[("a", "r", "error_rate = 1.0"), ("b", "r", ""), ("c", "r", "")],
        "[routes.default]\nobjective = \"order\"\nbreaker = { failures = 1000 }\n\n[routes.cheapest]\nobjective = \"cost\"\nexplore = 0.0\n",
    ))
    .await;
    let response = chat(&gw, &[], false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-crossbar-deployment"), Some("m@b"));
    assert_eq!(header(&response, "x-crossbar-provider"), Some("b"));
    assert_eq!(header(&response, "x-crossbar-attempts"), Some("2"));
    assert_eq!(header(&response, "x-crossbar-route"), Some("default"));
    let cost: f64 = header(&response, "x-crossbar-cost-usd")
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0);
    // Streams: who answered is known up front, the cost only at the end.
    let stream = chat(&gw, &[], true).await;
    assert_eq!(header(&stream, "x-crossbar-deployment"), Some("m@b"));
    assert_eq!(header(&stream, "x-crossbar-attempts"), Some("2"));
    assert!(header(&stream, "x-crossbar-cost-usd").is_none());
    let embedding = gw
        .post("/v1/embeddings", &json!({"model": "e", "input": "hello"}))
        .await;
    assert_eq!(header(&embedding, "x-crossbar-deployment"), Some("e@c"));
    assert_eq!(header(&embedding, "x-crossbar-attempts"), Some("1"));

    let provider = |r: reqwest::Response| header(&r, "x-crossbar-provider").map(str::to_owned);
    assert_eq!(
        provider(chat(&gw, &[("x-crossbar-provider", "c")], false).await).as_deref(),
        Some("c")
    );
    assert_eq!(
        provider(chat(&gw, &[("x-crossbar-provider", "!b")], false).await).as_deref(),
        Some("c")
    );
    let cheapest = chat(&gw, &[("x-crossbar-route", "cheapest")], false).await;
    assert_eq!(header(&cheapest, "x-crossbar-route"), Some("cheapest"));
    assert_eq!(
        header(&cheapest, "x-crossbar-provider"),
        Some("b"),
        "a is cheapest but failing"
    );

    let refused = chat(&gw, &[("x-crossbar-max-cost-usd", "0")], false).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "max_cost_exceeded");
    assert_eq!(body["error"]["param"], "x-crossbar-max-cost-usd");
    let malformed = chat(&gw, &[("x-crossbar-max-cost-usd", "cheap")], false).await;
    assert_eq!(malformed.status(), 400);
    let unknown = chat(&gw, &[("x-crossbar-route", "nope")], false).await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");
}

#[tokio::test]
async fn a_slow_first_attempt_is_hedged_and_the_loser_cancelled() {
    let gw = start(&config(
        &[("stuck", "r", "hang_rate = 1.0"), ("quick", "r", "")],
        "[routes.default]\nobjective = \"order\"\nhedge = { after = \"100ms\", budget = 1.0 }\n",
    ))
    .await;
    let response = chat(&gw, &[], false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-crossbar-provider"), Some("quick"));
    assert_eq!(header(&response, "x-crossbar-attempts"), Some("2"));
    eventually("the losing attempt is cancelled", || {
        gw.sim("stuck").stats().cancelled == 1
    })
    .await;

    let response = chat(&gw, &[], true).await;
    assert_eq!(header(&response, "x-crossbar-provider"), Some("quick"));
    let (frames, end) = sse_data(response).await;
    end.unwrap();
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    eventually("the losing stream is cancelled", || {
        gw.sim("stuck").stats().cancelled == 2
    })
    .await;
    let list = deployments(&gw).await;
    assert_eq!(deployment(&list, "quick")["stats"]["hedges_won"], 2);
    assert_eq!(deployment(&list, "stuck")["stats"]["cancelled"], 2);
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_is_not_failed_over_or_ended_cleanly() {
    let gw = start(&config(
        &[("cut", "r", "cut_after_chunks = 3"), ("spare", "r", "")],
        "[routes.default]\nobjective = \"order\"\n",
    ))
    .await;
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "m", "messages": [user("a long answer about many things please")], "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-crossbar-provider"), Some("cut"));
    let (frames, _) = sse_data(response).await;
    assert!(!frames.iter().any(|f| f == "[DONE]"));
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert_eq!(
        gw.sim("spare").requests().len(),
        0,
        "content had been sent: no failover"
    );
}

#[tokio::test]
async fn prompt_cache_affinity_keeps_a_conversation_on_its_cache() {
    let gw = start(&config(
        &[("a", "r", ""), ("b", "r", ""), ("c", "r", "")],
        "[routes.default]\nobjective = \"round-robin\"\n",
    ))
    .await;
    let system =
        "You are the archivist of a very large library; answer from the catalogue. ".repeat(120);
    let mut served = Vec::new();
    for turn in 0..4 {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "m", "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": "Which shelf holds the atlases?"},
                    {"role": "assistant", "content": "Shelf nine."},
                    {"role": "user", "content": format!("Follow-up question number {turn}")},
                ]}),
            )
            .await;
        assert_eq!(response.status(), 200);
        served.push(header(&response, "x-crossbar-provider").unwrap().to_owned());
    }
    assert!(served.iter().all(|p| *p == served[0]), "{served:?}");
    let list = deployments(&gw).await;
    let owner = deployment(&list, &served[0]);
    assert_eq!(owner["stats"]["affinity_hits"], 3);
    assert!(owner["stats"]["cached_input_tokens"].as_u64().unwrap() > 0);
    assert!(owner["stats"]["affinity_saving_usd"].as_f64().unwrap() > 0.0);
}
