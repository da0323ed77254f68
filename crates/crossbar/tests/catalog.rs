//! One logical OpenAI model on two clouds from the catalog alone: with only fake AWS and Google
//! credentials in the environment, pointed at simulators by `CROSSBAR_ENDPOINT_<KIND>`,
//! `crossbar serve` with no configuration serves `gpt-5.4` from Bedrock Mantle and Vertex AI,
//! fails over between them, and prices each call at that cloud's catalog price, in the response
//! header and in the usage records. Also `crossbar models` and `crossbar catalog import`.

use std::path::Path;
use std::process::Command;

use crossbar_core::pricing::{parse_usd, pico_per_token};
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use crossbar_testkit::http::json_of;
use crossbar_testkit::process::{GatewayProcess, command};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_crossbar");

const MANTLE: &str = "bedrock-mantle-responses-us-east-2";
const VERTEX: &str = "vertex-openai-responses-global";
const GOOGLE_TOKEN: &str = "ya29.fake-google-token";

/// Variables that would reach a real provider or change what discovery finds.
const FOREIGN: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_FOUNDRY_API_KEY",
    "ANTHROPIC_FOUNDRY_RESOURCE",
    "AZURE_OPENAI_ENDPOINT",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_CLOUD_REGION",
    "GCLOUD_PROJECT",
    "CLOUDSDK_CONFIG",
    "CLOUDSDK_CORE_PROJECT",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "CROSSBAR_CATALOG",
];

/// `crossbar` in `dir` with only fake AWS and Google credentials and the two endpoint overrides.
fn with_fake_clouds(dir: &Path, mantle: &str, vertex: &str) -> tokio::process::Command {
    let mut cmd = command(BIN, dir);
    for name in FOREIGN {
        cmd.env_remove(name);
    }
    cmd.env("HOME", dir)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLEFAKE")
        .env("AWS_SECRET_ACCESS_KEY", "fake-secret-access-key")
        .env("AWS_REGION", "us-east-2")
        .env("GOOGLE_OAUTH_ACCESS_TOKEN", GOOGLE_TOKEN)
        .env("GOOGLE_CLOUD_PROJECT", "fake-project")
        .env("CROSSBAR_ENDPOINT_BEDROCK_MANTLE_RESPONSES", mantle)
        .env("CROSSBAR_ENDPOINT_VERTEX_OPENAI_RESPONSES", vertex);
    cmd
}

/// A simulator of `dialect` in this process, so the test can script its faults and read what
/// it received.
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
async fn sim(dialect: SimDialect, config: SimConfig) -> SimServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    SimServer::start(listener, dialect, config).await.unwrap()
}

/// One chat call: status, the answering provider, attempts, billed picodollars and usage.
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
async fn ask(
    client: &reqwest::Client,
    url: &str,
    pin: Option<&str>,
) -> (u16, String, String, Option<u64>, Value) {
    let mut request = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "gpt-5.4", "messages": [{"role": "user", "content": "Say something about clouds."}]}));
    if let Some(provider) = pin {
        request = request.header("x-crossbar-provider", provider);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let provider = header("x-crossbar-provider");
    let attempts = header("x-crossbar-attempts");
    let cost = parse_usd(&header("x-crossbar-cost-usd"));
    let body: Value = response.json().await.unwrap();
    (status, provider, attempts, cost, body)
}

/// What `usage` costs at a price in USD per million tokens (input, output), in picodollars.
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
fn priced(usage: &Value, input: f64, output: f64) -> u64 {
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
        0
    );
    usage["prompt_tokens"].as_u64().unwrap() * pico_per_token(input)
        + usage["completion_tokens"].as_u64().unwrap() * pico_per_token(output)
}

#[tokio::test]
async fn one_openai_model_on_bedrock_mantle_and_vertex_from_the_catalog_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mantle = sim(SimDialect::BedrockMantle, SimConfig::default()).await;
    // Vertex checks the (fake) Google token, and answers slower, so the router's balanced
    // objective ranks Mantle first once it has measured both.
    let vertex = sim(
        SimDialect::Vertex,
        SimConfig {
            api_key: Some(GOOGLE_TOKEN.to_owned()),
            ttft_ms: 300,
            ..SimConfig::default()
        },
    )
    .await;
    let mut gateway = GatewayProcess::spawn(
        with_fake_clouds(dir.path(), &mantle.base_url(), &vertex.base_url()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
        ]),
    )
    .await;
    let url = gateway.url().to_owned();
    let client = reqwest::Client::new();

    // gpt-5.4 is one logical model with a deployment on each cloud, at each cloud's price.
    let deployments = json_of(client.get(format!("{url}/v1/crossbar/deployments"))).await;
    let mut gpt: Vec<(String, String, f64, f64)> = deployments["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["model"] == "gpt-5.4")
        .map(|d| {
            (
                d["provider"].as_str().unwrap().to_owned(),
                d["target"].as_str().unwrap().to_owned(),
                d["price"]["input"].as_f64().unwrap(),
                d["price"]["output"].as_f64().unwrap(),
            )
        })
        .collect();
    gpt.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        gpt,
        [
            (MANTLE.to_owned(), "openai.gpt-5.4".to_owned(), 2.75, 16.5),
            (VERTEX.to_owned(), "gpt-5.4".to_owned(), 2.5, 15.0),
        ]
    );

    // Each cloud serves it, through its own door and auth, billed at its own catalog price.
    let mut billed: Vec<(String, u64)> = Vec::new();
    for (provider, input, output) in [(MANTLE, 2.75, 16.5), (VERTEX, 2.5, 15.0)] {
        let (status, served, attempts, cost, body) = ask(&client, &url, Some(provider)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(served, provider);
        assert_eq!(attempts, "1");
        let expected = priced(&body["usage"], input, output);
        assert!(expected > 0);
        assert_eq!(cost, Some(expected), "{provider}");
        billed.push((provider.to_owned(), expected));
    }

    // Each door was reached with its own auth from the fake credentials alone: SigV4 scoped to
    // `bedrock-mantle` with the fake key id, and the fake Google token as a bearer token.
    let signed = mantle.requests();
    let authorization = signed[0].header("authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLEFAKE/")
            && authorization.contains("/us-east-2/bedrock-mantle/aws4_request"),
        "{authorization}"
    );
    assert_eq!(signed[0].path, "/openai/v1/responses");
    let bearer = vertex.requests();
    assert_eq!(
        bearer[0].header("authorization"),
        Some(format!("Bearer {GOOGLE_TOKEN}").as_str())
    );
    assert_eq!(
        bearer[0].path,
        "/v1/projects/fake-project/locations/global/publishers/openai/v1/responses"
    );

    // Bedrock Mantle starts failing: every call is answered from Vertex AI, and a call that
    // tried Mantle first fails over within the request.
    mantle.set_config(SimConfig {
        error_rate: 1.0,
        error_status: 503,
        ..SimConfig::default()
    });
    let mut failed_over = false;
    for _ in 0..8 {
        let (status, served, attempts, cost, body) = ask(&client, &url, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(served, VERTEX);
        // A failed attempt costs nothing: the call is billed at Vertex's price only.
        assert_eq!(cost, Some(priced(&body["usage"], 2.5, 15.0)));
        billed.push((VERTEX.to_owned(), cost.unwrap()));
        failed_over |= attempts == "2";
        if failed_over {
            break;
        }
    }
    assert!(failed_over, "no call tried the failing Mantle door first");
    assert_eq!(mantle.requests().len(), 2);

    // The usage records price each call at its cloud's catalog price.
    gateway.terminate();
    assert!(gateway.wait().await.success());
    let output = Command::new(BIN)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("CROSSBAR_CONFIG")
        .args(["usage", "--by", "deployment", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    for deployment in [MANTLE, VERTEX] {
        let id = format!("gpt-5.4@{deployment}");
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"] == id.as_str())
            .unwrap_or_else(|| panic!("no usage row for {id}: {rows}"));
        let total: u64 = billed
            .iter()
            .filter(|(p, _)| p == deployment)
            .map(|(_, c)| c)
            .sum();
        assert_eq!(
            parse_usd(row["cost_usd"].as_str().unwrap()),
            Some(total),
            "{id}"
        );
    }
}

#[tokio::test]
async fn models_lists_what_is_reachable_and_why_the_rest_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let output = with_fake_clouds(dir.path(), "http://127.0.0.1:9", "http://127.0.0.1:9/v1")
        .args(["models", "--format", "json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    let find = |kind: &str, target: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["target"] == target)
            .unwrap()
            .clone()
    };
    let mantle = find("bedrock-mantle-responses", "openai.gpt-5.4");
    assert_eq!(mantle["provider"], MANTLE);
    assert_eq!(mantle["region"], "us-east-2");
    assert_eq!(
        find("vertex-openai-responses", "gpt-5.4")["provider"],
        VERTEX
    );
    assert_eq!(find("openai", "gpt-5.4")["reason"], "no OPENAI_API_KEY");
    assert_eq!(
        find("foundry-anthropic", "claude-sonnet-4-5")["reason"],
        "no ANTHROPIC_FOUNDRY_API_KEY"
    );
}

#[tokio::test]
async fn catalog_import_writes_an_override_that_serve_and_models_read() {
    let dir = tempfile::tempdir().unwrap();
    let litellm = json!({
        "bedrock/openai.gpt-5.4": {
            "litellm_provider": "bedrock_mantle",
            "input_cost_per_token": 3.0e-06,
            "output_cost_per_token": 1.8e-05
        }
    });
    std::fs::write(dir.path().join("prices.json"), litellm.to_string()).unwrap();
    let output = with_fake_clouds(dir.path(), "http://127.0.0.1:9", "http://127.0.0.1:9/v1")
        .args(["catalog", "import", "prices.json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains(
            "updated  gpt-5.4 bedrock-mantle-responses openai.gpt-5.4  (LiteLLM `bedrock/openai.gpt-5.4`)"
        ),
        "{stdout}"
    );
    let written = std::fs::read_to_string(dir.path().join("crossbar-catalog.toml")).unwrap();
    assert!(written.contains("target = \"openai.gpt-5.4\""), "{written}");
    let output = with_fake_clouds(dir.path(), "http://127.0.0.1:9", "http://127.0.0.1:9/v1")
        .args(["models", "--format", "json"])
        .output()
        .await
        .unwrap();
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mantle = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "bedrock-mantle-responses" && r["target"] == "openai.gpt-5.4")
        .unwrap();
    assert_eq!(mantle["input"], 3.0);
    assert_eq!(mantle["output"], 18.0);
    // The cached-input price LiteLLM did not give stays the catalog's.
    assert_eq!(mantle["cached_input"], 0.275);
}
