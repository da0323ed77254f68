//! JSON Schema → Gemini's `Schema` (a subset of OpenAPI 3.0) for `functionDeclarations[].parameters`.
//!
//! We sanitize into `parameters` rather than sending `parametersJsonSchema` because `parameters`
//! works on every Gemini model on both the Gemini API and Vertex AI v1, while the JSON Schema
//! field is newer and not accepted everywhere. Gemini answers any keyword outside the subset
//! with 400 `Unknown name "additionalProperties" ... Cannot find field.`, so:
//! - `$ref` into `$defs` / `definitions` (or `#`) is inlined; recursion stops after a few levels
//!   with a plain `{"type": "object"}`;
//! - `allOf` is merged, `oneOf` becomes `anyOf`, a string `const` becomes a one-value `enum`;
//! - `type: [T, "null"]` becomes `type: T` + `nullable: true` (a list is a 400 "Proto field is
//!   not repeating"), several non-null types become an `anyOf`;
//! - `enum` is kept only when every value is a string (the field is `repeated string`);
//!   `format` only where Gemini knows it; `required` only names declared properties;
//! - everything else (`additionalProperties`, `$schema`, `$id`, `$defs`, `examples`,
//!   `exclusiveMinimum`, `multipleOf`, `pattern*`, `not`, `if`...) is dropped: the model loses
//!   those hints, the call no longer fails;
//! - an object without properties at the top is omitted entirely (Gemini rejects
//!   `properties: should be non-empty for OBJECT type`), which is how a no-argument function is
//!   declared.

use std::cell::Cell;

use serde_json::{Map, Value, json};

/// Keys Gemini's `Schema` accepts; we copy these (after conversion) and drop the rest.
const KEPT: &[&str] = &[
    "title",
    "description",
    "nullable",
    "maxItems",
    "minItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "propertyOrdering",
    "default",
    "minimum",
    "maximum",
];

/// How many `$ref`s deep we inline before cutting a recursive schema off.
const MAX_REF_DEPTH: usize = 8;
/// Inlining copies definitions, so a schema whose definitions reference each other several
/// times grows exponentially with depth; past this many inlined bytes (or inlinings), further
/// references become a plain object. Client input must not be able to tie the gateway up.
const MAX_INLINED_BYTES: usize = 1 << 20;
const MAX_INLININGS: usize = 256;

/// The `parameters` for a tool's JSON Schema; `None` when the function takes no arguments.
pub(super) fn function_parameters(schema: &Value) -> Option<Value> {
    let converter = Converter {
        root: schema,
        inlined_bytes: Cell::new(0),
        inlinings: Cell::new(0),
    };
    let converted = converter.convert(schema, 0);
    let has_properties = converted
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    let is_object = converted
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(|t| t.eq_ignore_ascii_case("object"));
    if is_object && !has_properties && converted.get("anyOf").is_none() {
        return None;
    }
    Some(converted)
}

struct Converter<'a> {
    root: &'a Value,
    inlined_bytes: Cell<usize>,
    inlinings: Cell<usize>,
}

impl Converter<'_> {
    fn resolve(&self, reference: &str) -> Option<&Map<String, Value>> {
        if reference == "#" {
            return self.root.as_object();
        }
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)?.as_object()
    }

    /// Inlines `$ref` (within the budget), merges `allOf`, converts the rest.
    fn convert(&self, schema: &Value, refs: usize) -> Value {
        let Value::Object(source) = schema else {
            // `true` / `false` schemas: nothing Gemini can express.
            return Value::Object(Map::new());
        };
        if let Some(reference) = source.get("$ref").and_then(Value::as_str) {
            let Some(target) = self.resolve(reference) else {
                let mut rest = source.clone();
                rest.remove("$ref");
                return self.convert(&Value::Object(rest), refs);
            };
            let size = serde_json::to_string(target).map_or(usize::MAX, |t| t.len());
            let bytes = self.inlined_bytes.get().saturating_add(size);
            let count = self.inlinings.get() + 1;
            if refs >= MAX_REF_DEPTH || bytes > MAX_INLINED_BYTES || count > MAX_INLININGS {
                return json!({"type": "object"});
            }
            self.inlined_bytes.set(bytes);
            self.inlinings.set(count);
            let mut resolved = target.clone();
            // Sibling keywords (a description, say) refine the referenced schema.
            for (key, value) in source {
                if key != "$ref" {
                    resolved.insert(key.clone(), value.clone());
                }
            }
            return self.convert(&Value::Object(resolved), refs + 1);
        }
        let mut out = self.convert_object(source, refs);
        if let (Some(Value::Array(parts)), Value::Object(map)) = (source.get("allOf"), &mut out) {
            for part in parts {
                if let Value::Object(part) = self.convert(part, refs) {
                    merge_into(map, part);
                }
            }
        }
        out
    }

    fn convert_object(&self, source: &Map<String, Value>, refs: usize) -> Value {
        let mut out = Map::new();
        for key in KEPT {
            if let Some(value) = source.get(*key) {
                out.insert((*key).to_owned(), value.clone());
            }
        }
        let mut nullable = source.get("nullable").and_then(Value::as_bool) == Some(true);
        let mut types: Vec<String> = match source.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if types.iter().any(|t| t == "null") {
            nullable = true;
            types.retain(|t| t != "null");
        }
        if let Some(Value::Array(values)) = source.get("enum") {
            if values.iter().any(Value::is_null) {
                nullable = true;
            }
            let strings: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
            if !strings.is_empty() && strings.iter().all(Value::is_string) {
                out.insert("enum".to_owned(), Value::Array(strings));
            }
        } else if let Some(value @ Value::String(_)) = source.get("const") {
            out.insert("enum".to_owned(), Value::Array(vec![value.clone()]));
        }
        if let Some(Value::Object(properties)) = source.get("properties") {
            let converted: Map<String, Value> = properties
                .iter()
                .map(|(name, schema)| (name.clone(), self.convert(schema, refs)))
                .collect();
            if let Some(Value::Array(required)) = source.get("required") {
                let declared: Vec<Value> = required
                    .iter()
                    .filter(|r| r.as_str().is_some_and(|r| converted.contains_key(r)))
                    .cloned()
                    .collect();
                if !declared.is_empty() {
                    out.insert("required".to_owned(), Value::Array(declared));
                }
            }
            out.insert("properties".to_owned(), Value::Object(converted));
            if types.is_empty() {
                types.push("object".to_owned());
            }
        }
        match source.get("items") {
            Some(items @ Value::Object(_)) => {
                out.insert("items".to_owned(), self.convert(items, refs));
            }
            // Tuple form (draft 4-7): the first item's schema is the closest single one.
            Some(Value::Array(items)) => {
                if let Some(first) = items.first() {
                    out.insert("items".to_owned(), self.convert(first, refs));
                }
            }
            _ => {}
        }
        let branches = source
            .get("anyOf")
            .or_else(|| source.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(branches) = branches {
            let mut converted = Vec::new();
            for branch in branches {
                if branch.get("type").and_then(Value::as_str) == Some("null") {
                    nullable = true;
                } else {
                    converted.push(self.convert(branch, refs));
                }
            }
            match converted.len() {
                0 => {}
                1 if types.is_empty() => {
                    if let Some(Value::Object(single)) = converted.pop() {
                        merge_into(&mut out, single);
                    }
                }
                _ => {
                    out.insert("anyOf".to_owned(), Value::Array(converted));
                }
            }
        }
        match types.as_slice() {
            [] => {}
            [single] => {
                out.insert("type".to_owned(), Value::String(single.clone()));
            }
            several => {
                let branches = several.iter().map(|t| json!({"type": t})).collect();
                out.insert("anyOf".to_owned(), Value::Array(branches));
            }
        }
        if let Some(format) = source.get("format").and_then(Value::as_str) {
            let kind = out.get("type").and_then(Value::as_str).unwrap_or_default();
            if supported_format(kind, format) {
                out.insert("format".to_owned(), Value::String(format.to_owned()));
            }
        }
        if nullable {
            out.insert("nullable".to_owned(), Value::Bool(true));
        }
        Value::Object(out)
    }
}

/// Formats Gemini documents per type; others are dropped rather than risk a 400.
fn supported_format(kind: &str, format: &str) -> bool {
    match kind.to_ascii_lowercase().as_str() {
        "string" => matches!(format, "enum" | "date-time"),
        "integer" => matches!(format, "int32" | "int64"),
        "number" => matches!(format, "float" | "double"),
        _ => false,
    }
}

/// Merges `part` into `target`: properties and required lists are combined, other keys from
/// `part` fill in what `target` lacks.
fn merge_into(target: &mut Map<String, Value>, part: Map<String, Value>) {
    for (key, value) in part {
        match (key.as_str(), target.get_mut(&key), value) {
            ("properties", Some(Value::Object(existing)), Value::Object(more)) => {
                for (name, schema) in more {
                    existing.entry(name).or_insert(schema);
                }
            }
            ("required", Some(Value::Array(existing)), Value::Array(more)) => {
                for name in more {
                    if !existing.contains(&name) {
                        existing.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                target.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_what_gemini_rejects_and_keeps_what_it_knows() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "description": "City", "minLength": 1, "format": "hostname"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f", null]},
                "when": {"type": "string", "format": "date-time"},
                "count": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 2, "enum": [1, 2]},
                "kind": {"const": "fixed"},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
            },
            "required": ["city", "ghost"]
        });
        let out = function_parameters(&schema).unwrap();
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City", "minLength": 1},
                    "unit": {"type": "string", "enum": ["c", "f"], "nullable": true},
                    "when": {"type": "string", "format": "date-time"},
                    "count": {"type": "integer"},
                    "kind": {"enum": ["fixed"]},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn refs_all_of_and_one_of_are_inlined() {
        let schema = json!({
            "type": "object",
            "$defs": {
                "Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
            },
            "properties": {
                "at": {"$ref": "#/$defs/Point", "description": "where"},
                "shape": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "both": {"allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
                "list": {"$ref": "#/$defs/Node"}
            }
        });
        let out = function_parameters(&schema).unwrap();
        let properties = &out["properties"];
        assert_eq!(
            properties["at"],
            json!({"type": "object", "description": "where", "properties": {"x": {"type": "number"}}, "required": ["x"]})
        );
        assert_eq!(
            properties["shape"],
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]})
        );
        assert_eq!(
            properties["maybe"],
            json!({"type": "string", "nullable": true})
        );
        assert_eq!(
            properties["both"],
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["b"]})
        );
        // Recursion is cut off, never infinite.
        let mut node = &properties["list"];
        let mut depth = 0;
        while let Some(next) = node.get("properties").and_then(|p| p.get("next")) {
            node = next;
            depth += 1;
        }
        assert!(depth <= MAX_REF_DEPTH, "{depth}");
        assert!(!out.to_string().contains('$'));
    }

    #[test]
    fn fanned_out_references_cannot_blow_up() {
        // Each definition references the next twice: 2^30 copies if inlined naively.
        let mut defs = Map::new();
        for i in 0..30 {
            let next = json!({"$ref": format!("#/$defs/D{}", i + 1)});
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "description": "x".repeat(1000), "properties": {"a": next, "b": next}}),
            );
        }
        defs.insert("D30".into(), json!({"type": "string"}));
        let schema = json!({"type": "object", "$defs": defs, "properties": {"root": {"$ref": "#/$defs/D0"}}});
        let out = function_parameters(&schema).unwrap();
        let size = out.to_string().len();
        assert!(size < 2 * MAX_INLINED_BYTES, "{size}");
        assert!(!out.to_string().contains('$'));
    }

    #[test]
    fn functions_without_arguments_have_no_parameters() {
        assert_eq!(
            function_parameters(&json!({"type": "object", "properties": {}})),
            None
        );
        assert_eq!(function_parameters(&json!({"type": "object"})), None);
        assert_eq!(function_parameters(&json!({})), None);
    }
}
