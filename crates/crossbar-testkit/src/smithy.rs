//! Validates JSON against the shapes of AWS's Smithy model of Bedrock Runtime
//! (`specs/bedrock-runtime.smithy.json`), as restJson1 serializes them: structures are objects
//! with known members (required ones present), unions are objects with exactly one member, enums
//! and lengths and ranges hold, and the simple character-class patterns (`ToolName`,
//! `ToolUseId`) match. Members bound to the URL or headers are not part of the body and are
//! skipped. Used on both sides of the gateway: what it sends Bedrock, what the simulator answers.

#![expect(
    clippy::unwrap_used,
    reason = "test helper: a broken model or a violation fails the test"
)]

use std::sync::OnceLock;

use serde_json::{Map, Value};

const NAMESPACE: &str = "com.amazonaws.bedrockruntime#";

fn model() -> &'static Map<String, Value> {
    static MODEL: OnceLock<Map<String, Value>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../specs/bedrock-runtime.smithy.json"
        );
        let model: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        model["shapes"].as_object().unwrap().clone()
    })
}

/// Panics, listing every violation, unless `instance` is a valid `shape` (e.g.
/// `"ConverseRequest"`, `"MessageStartEvent"`).
pub fn check(shape: &str, instance: &Value) {
    let found = violations(shape, instance);
    assert!(
        found.is_empty(),
        "{shape} violates the Bedrock Smithy model:\n  {}\ninstance: {instance:#}",
        found.join("\n  ")
    );
}

/// Every way `instance` violates `shape`, each as `path: problem`.
pub fn violations(shape: &str, instance: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let target = format!("{NAMESPACE}{shape}");
    assert!(
        model().contains_key(&target),
        "no shape {shape} in the model"
    );
    walk(&target, None, instance, "$", &mut out);
    out
}

/// Constraint traits can sit on the member and on its target shape; both apply.
fn constraints<'a>(member: Option<&'a Value>, shape: Option<&'a Value>) -> Vec<&'a Value> {
    [member, shape]
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("traits"))
        .collect()
}

fn walk(target: &str, member: Option<&Value>, value: &Value, path: &str, out: &mut Vec<String>) {
    let mut fail = |problem: String| out.push(format!("{path}: {problem}"));
    let shape = model().get(target);
    let kind = match target {
        "smithy.api#String" => "string",
        "smithy.api#Boolean" | "smithy.api#PrimitiveBoolean" => "boolean",
        "smithy.api#Integer"
        | "smithy.api#Long"
        | "smithy.api#PrimitiveInteger"
        | "smithy.api#PrimitiveLong" => "integer",
        "smithy.api#Float"
        | "smithy.api#Double"
        | "smithy.api#PrimitiveFloat"
        | "smithy.api#PrimitiveDouble" => "double",
        "smithy.api#Document" => "document",
        "smithy.api#Blob" => "blob",
        "smithy.api#Timestamp" => "timestamp",
        "smithy.api#Unit" => "unit",
        _ => match shape.and_then(|s| s["type"].as_str()) {
            Some(kind) => kind,
            None => {
                fail(format!("unknown shape {target}"));
                return;
            }
        },
    };
    let traits = constraints(member, shape);
    match kind {
        "structure" => structure(shape, value, path, out),
        "union" => union(shape, value, path, out),
        "list" => {
            let Some(items) = value.as_array() else {
                fail(format!("expected an array, got {value}"));
                return;
            };
            check_length(&traits, items.len(), path, out);
            let Some(member) = shape.map(|s| &s["member"]) else {
                return;
            };
            let item_target = member["target"].as_str().unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                walk(
                    item_target,
                    Some(member),
                    item,
                    &format!("{path}[{i}]"),
                    out,
                );
            }
        }
        "map" => {
            let Some(entries) = value.as_object() else {
                fail(format!("expected an object, got {value}"));
                return;
            };
            check_length(&traits, entries.len(), path, out);
            let Some(shape) = shape else { return };
            let value_target = shape["value"]["target"].as_str().unwrap_or_default();
            for (key, item) in entries {
                walk(
                    value_target,
                    Some(&shape["value"]),
                    item,
                    &format!("{path}.{key}"),
                    out,
                );
            }
        }
        "string" => match value.as_str() {
            None => fail(format!("expected a string, got {value}")),
            Some(text) => {
                check_length(&traits, text.chars().count(), path, out);
                for trait_map in &traits {
                    if let Some(pattern) = trait_map["smithy.api#pattern"].as_str()
                        && simple_pattern(pattern, text) == Some(false)
                    {
                        out.push(format!("{path}: '{text}' does not match {pattern}"));
                    }
                }
            }
        },
        "enum" => {
            let allowed: Vec<&str> = shape
                .and_then(|s| s["members"].as_object())
                .map(|members| {
                    members
                        .values()
                        .filter_map(|m| m["traits"]["smithy.api#enumValue"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            match value.as_str() {
                Some(text) if allowed.contains(&text) => {}
                _ => fail(format!("{value} is not one of {allowed:?}")),
            }
        }
        "integer" | "long" => match value.as_i64() {
            None => fail(format!("expected an integer, got {value}")),
            Some(n) => check_range(&traits, n as f64, path, out),
        },
        "double" | "float" => match value.as_f64() {
            None => fail(format!("expected a number, got {value}")),
            Some(n) => check_range(&traits, n, path, out),
        },
        "boolean" => {
            if !value.is_boolean() {
                fail(format!("expected a boolean, got {value}"));
            }
        }
        // restJson1 writes blobs as base64 text.
        "blob" => {
            if !value.is_string() {
                fail(format!("expected base64 text, got {value}"));
            }
        }
        "timestamp" => {
            if !(value.is_number() || value.is_string()) {
                fail(format!("expected a timestamp, got {value}"));
            }
        }
        "unit" => {
            if value.as_object().is_none_or(|o| !o.is_empty()) {
                fail(format!("expected {{}}, got {value}"));
            }
        }
        "document" => {}
        other => fail(format!("unsupported shape type {other}")),
    }
}

/// Members carried in the URL or headers rather than the JSON body.
fn http_bound(member: &Value) -> bool {
    [
        "smithy.api#httpLabel",
        "smithy.api#httpHeader",
        "smithy.api#httpQuery",
    ]
    .iter()
    .any(|t| member["traits"].get(*t).is_some())
}

fn structure(shape: Option<&Value>, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        out.push(format!("{path}: expected an object, got {value}"));
        return;
    };
    let members = shape
        .and_then(|s| s["members"].as_object())
        .cloned()
        .unwrap_or_default();
    for (name, member) in &members {
        if http_bound(member) {
            continue;
        }
        let required = member["traits"].get("smithy.api#required").is_some();
        match object.get(name) {
            None if required => out.push(format!("{path}: missing required member {name}")),
            None | Some(Value::Null) => {}
            Some(item) => walk(
                member["target"].as_str().unwrap_or_default(),
                Some(member),
                item,
                &format!("{path}.{name}"),
                out,
            ),
        }
    }
    for key in object.keys() {
        if !members.contains_key(key) {
            out.push(format!("{path}: unknown member {key}"));
        }
    }
}

fn union(shape: Option<&Value>, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        out.push(format!("{path}: expected a union object, got {value}"));
        return;
    };
    if object.len() != 1 {
        out.push(format!(
            "{path}: a union needs exactly one member, got {:?}",
            object.keys().collect::<Vec<_>>()
        ));
    }
    let members = shape.and_then(|s| s["members"].as_object());
    for (name, item) in object {
        match members.and_then(|m| m.get(name)) {
            None => out.push(format!("{path}: unknown union member {name}")),
            Some(member) => walk(
                member["target"].as_str().unwrap_or_default(),
                Some(member),
                item,
                &format!("{path}.{name}"),
                out,
            ),
        }
    }
}

fn check_length(traits: &[&Value], len: usize, path: &str, out: &mut Vec<String>) {
    for t in traits {
        let length = &t["smithy.api#length"];
        if let Some(min) = length["min"].as_u64()
            && (len as u64) < min
        {
            out.push(format!("{path}: length {len} is below {min}"));
        }
        if let Some(max) = length["max"].as_u64()
            && (len as u64) > max
        {
            out.push(format!("{path}: length {len} is above {max}"));
        }
    }
}

fn check_range(traits: &[&Value], n: f64, path: &str, out: &mut Vec<String>) {
    for t in traits {
        let range = &t["smithy.api#range"];
        if let Some(min) = range["min"].as_f64()
            && n < min
        {
            out.push(format!("{path}: {n} is below {min}"));
        }
        if let Some(max) = range["max"].as_f64()
            && n > max
        {
            out.push(format!("{path}: {n} is above {max}"));
        }
    }
}

/// Matches `^[class]+$` / `^[class]*$` patterns; `None` for anything more complex, which is
/// then not checked.
fn simple_pattern(pattern: &str, text: &str) -> Option<bool> {
    let inner = pattern.strip_prefix("^[")?;
    let (class, rest) = inner.split_once(']')?;
    let allow_empty = match rest {
        "+$" => false,
        "*$" => true,
        _ => return None,
    };
    let mut ranges: Vec<(char, char)> = Vec::new();
    let chars: Vec<char> = class.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            match chars.get(i + 1)? {
                's' | 'S' => return Some(allow_empty || !text.is_empty()),
                escaped => ranges.push((*escaped, *escaped)),
            }
            i += 2;
        } else if chars.get(i + 1) == Some(&'-') && i + 2 < chars.len() {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    Some(
        (allow_empty || !text.is_empty())
            && text
                .chars()
                .all(|c| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_a_valid_request_and_names_each_violation() {
        let valid = json!({
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 10, "temperature": 0.5},
            "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"auto": {}}}
        });
        assert_eq!(violations("ConverseRequest", &valid), Vec::<String>::new());
        let invalid = json!({
            "messages": [{"role": "robot", "content": [{"text": "hi", "image": {}}]}],
            "inferenceConfig": {"maxTokens": 0, "temperature": 1.5},
            "toolConfig": {"tools": [{"toolSpec": {"name": "bad name", "inputSchema": {"json": {}}}}]},
            "bogus": 1
        });
        let found = violations("ConverseRequest", &invalid);
        for expected in [
            "$.messages[0].role",
            "$.messages[0].content[0]: a union needs exactly one member",
            "$.inferenceConfig.maxTokens: 0 is below 1",
            "$.inferenceConfig.temperature: 1.5 is above 1",
            "$.toolConfig.tools[0].toolSpec.name: 'bad name' does not match",
            "$: unknown member bogus",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(expected)),
                "{expected} not in {found:#?}"
            );
        }
    }

    #[test]
    fn simple_patterns() {
        assert_eq!(
            simple_pattern("^[a-zA-Z0-9_.:-]+$", "tooluse_a.b:c-d"),
            Some(true)
        );
        assert_eq!(simple_pattern("^[a-zA-Z0-9_.:-]+$", "a|b"), Some(false));
        assert_eq!(simple_pattern("^[a-zA-Z0-9_.:-]+$", ""), Some(false));
        assert_eq!(simple_pattern("^[\\s\\S]*$", ""), Some(true));
        assert_eq!(simple_pattern("^(a|b)$", "a"), None);
    }
}
