//! Validates JSON against the component schemas of OpenAI's published OpenAPI spec
//! (`specs/openai.openapi.yaml`), for contract tests on both sides of the gateway.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helper: a broken spec or a violation fails the test"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

/// The spec's component schemas, with OpenAPI 3.0's `nullable` rewritten to JSON Schema (which
/// must also admit `null` into an `enum`, as OpenAPI does).
fn components() -> &'static Value {
    static COMPONENTS: OnceLock<Value> = OnceLock::new();
    COMPONENTS.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../specs/openai.openapi.yaml"
        );
        // The spec writes `seed`'s i64 bounds rounded beyond i64, which no JSON value holds.
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("-9223372036854776000", "-9223372036854775808")
            .replace("9223372036854776000", "9223372036854775807");
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        let mut schemas = doc["components"]["schemas"].clone();
        rewrite_nullable(&mut schemas);
        json!({ "schemas": schemas })
    })
}

fn rewrite_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
                match map.get("type").cloned() {
                    Some(Value::String(kind)) => {
                        map.insert("type".into(), json!([kind, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
            map.values_mut().for_each(rewrite_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_nullable),
        _ => {}
    }
}

/// A compiled validator for one component schema, compiled once per process: the spec is large.
fn validator(schema: &str) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(schema.to_owned())
        .or_insert_with(|| {
            let root = json!({"$ref": format!("#/components/schemas/{schema}"), "components": components()});
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .unwrap_or_else(|e| panic!("compiling {schema}: {e}"));
            Arc::new(validator)
        })
        .clone()
}

/// Panics with every violation when `instance` does not match the component `schema`.
pub fn check(schema: &str, instance: &Value) {
    let errors: Vec<String> = validator(schema)
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema} violated:\n{}\ninstance: {instance}",
        errors.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_the_spec_forbids() {
        let ok = json!({"error": {"message": "m", "type": "t", "param": null, "code": null}});
        check("ErrorResponse", &ok);
        let bad = json!({"error": {"message": "m"}});
        assert!(
            validator("ErrorResponse")
                .iter_errors(&bad)
                .next()
                .is_some()
        );
    }
}
