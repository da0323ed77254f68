//! Canary routing through the gateway: a route's `split` sends a fixed share of conversations
//! to a named deployment first, and every turn of a conversation lands where its first did.

mod common;

use std::collections::HashMap;

use common::{start, user};
use serde_json::{Value, json};

/// `m` on simulators `a` then `b` (the `order` objective starts on `a`), with 10% of
/// conversations split to `m@b`.
fn config() -> String {
    let mut out = String::new();
    for name in ["a", "b"] {
        out.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"sim\"\ndialect = \"openai\"\ncloud = \"sim\"\nregion = \"{name}\"\n\n"
        ));
    }
    out.push_str(
        "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"gpt-4o\" }, { provider = \"b\", target = \"gpt-4o\" }]\n\n[routes.m]\nobjective = \"order\"\nsplit = [{ deployment = \"m@b\", share = 0.1 }]\n",
    );
    out
}

/// Conversation `n` after `turn` earlier exchanges.
fn messages(n: usize, turn: usize) -> Value {
    let mut list = vec![user(&format!("Conversation {n}: tell me something"))];
    for t in 0..turn {
        list.push(json!({"role": "assistant", "content": "Something."}));
        list.push(user(&format!("And then {t}?")));
    }
    Value::Array(list)
}

#[tokio::test]
async fn a_tenth_of_2000_conversations_start_on_the_canary_and_stay_there() {
    let gw = start(&config()).await;
    let client = gw.client();
    let mut sides: HashMap<String, usize> = HashMap::new();
    for n in 0..2000 {
        let mut first: Option<String> = None;
        for turn in 0..2 {
            let response = client
                .post(format!("{}/v1/chat/completions", gw.url))
                .json(&json!({"model": "m", "messages": messages(n, turn)}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let side = response.headers()["x-crossbar-deployment"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                first.get_or_insert_with(|| side.clone()),
                &side,
                "conversation {n} moved at turn {turn}"
            );
        }
        *sides.entry(first.unwrap()).or_default() += 1;
    }
    let canary = sides.get("m@b").copied().unwrap_or(0);
    let share = canary as f64 / 2000.0;
    eprintln!("canary share over 2,000 conversations: {canary} ({share:.4}); {sides:?}");
    assert!((share - 0.10).abs() <= 0.03, "the canary took {share}");
    assert_eq!(sides.get("m@a").copied().unwrap_or(0) + canary, 2000);
    assert_eq!(gw.requests("b").len(), canary * 2);
    assert_eq!(gw.requests("a").len(), (2000 - canary) * 2);
}
