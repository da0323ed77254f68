//! JSON Schema → Gemini's `Schema` (a subset of OpenAPI 3.0) for `functionDeclarations[].parameters`.
//!
//! We sanitize into `parameters` rather than sending `parametersJsonSchema` because `parameters`
//! works on every Gemini model on both the Gemini API and Vertex AI v1, while the JSON Schema
//! field is newer and not accepted everywhere. Gemini answers any keyword outside the subset
//! with 400 `Unknown name "additionalProperties" ... Cannot find field.`, so:
//! - `$ref` into `$defs` / `definitions` (or `#`) is inlined; recursion stops after a few levels
//!   with a plain `{"type": "object"}`; what inlining adds to a request is bounded (a 400 past
//!   [`MAX_INLINED_BYTES`]), since a few references to references expand exponentially;
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

use crate::error::{Error, Result};

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
/// What inlining `$ref`s may add to one request's tools, all together, in bytes of converted
/// schema. Each reference's expansion is built once and charged as it is built, so the work is
/// linear in this bound however the references fan out, and the request is refused past it.
const MAX_INLINED_BYTES: usize = 512 * 1024;
/// What each inlined reference costs beyond the schema it yields, so that references to empty
/// definitions cannot be multiplied for free.
const REF_COST: usize = 16;

/// Bytes that inlining may still add to the request being encoded.
pub(super) struct Budget {
    left: Cell<usize>,
}

impl Budget {
    pub(super) fn new() -> Self {
        Self {
            left: Cell::new(MAX_INLINED_BYTES),
        }
    }
}

/// The budget ran out: the request is refused.
struct Exceeded;

/// The `parameters` for the JSON Schema of tool `index`; `None` when the function takes no
/// arguments. A 400 naming the tool when its references expand past what `budget` has left.
pub(super) fn function_parameters(
    schema: &Value,
    index: usize,
    budget: &Budget,
) -> Result<Option<Value>> {
    let converter = Converter {
        root: schema,
        budget,
    };
    let converted = converter.convert(schema, 0).map_err(|Exceeded| {
        Error::invalid_field(
            format!("tools[{index}].function.parameters"),
            format!(
                "Tool parameter schemas expand beyond {MAX_INLINED_BYTES} bytes once their \
                 `$ref`s are inlined, which Gemini requires."
            ),
        )
    })?;
    let has_properties = converted
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    let is_object = converted
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(|t| t.eq_ignore_ascii_case("object"));
    if is_object && !has_properties && converted.get("anyOf").is_none() {
        return Ok(None);
    }
    Ok(Some(converted))
}

/// A schema object as the converter reads it: the sibling keywords of the `$ref`s that led to
/// it refine it (the outermost first), without copying either the target or the siblings.
#[derive(Clone, Copy)]
struct View<'a> {
    map: &'a Map<String, Value>,
    /// Whether this object's own `$ref` is still to be followed (not when it does not resolve).
    follow: bool,
    /// The object whose `$ref` led here.
    outer: Option<&'a View<'a>>,
}

impl<'a> View<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        if key == "$ref" {
            return if self.follow { self.map.get(key) } else { None };
        }
        self.outer
            .and_then(|outer| outer.sibling(key))
            .or_else(|| self.map.get(key))
    }

    /// A keyword beside a `$ref` already followed.
    fn sibling(&self, key: &str) -> Option<&'a Value> {
        self.outer
            .and_then(|outer| outer.sibling(key))
            .or_else(|| self.map.get(key))
    }
}

struct Converter<'a> {
    root: &'a Value,
    budget: &'a Budget,
}

impl Converter<'_> {
    fn resolve(&self, reference: &str) -> Option<&Map<String, Value>> {
        if reference == "#" {
            return self.root.as_object();
        }
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)?.as_object()
    }

    /// Charges what is built `refs` references deep: only inlining can grow a schema beyond the
    /// request that carried it.
    fn spend(&self, refs: usize, bytes: usize) -> Result<(), Exceeded> {
        if refs == 0 {
            return Ok(());
        }
        let left = self.budget.left.get().checked_sub(bytes).ok_or(Exceeded)?;
        self.budget.left.set(left);
        Ok(())
    }

    /// Copies a value into the output, paying for it first.
    fn copy(&self, value: &Value, refs: usize) -> Result<Value, Exceeded> {
        self.spend(refs, json_size(value))?;
        Ok(value.clone())
    }

    /// Inlines `$ref` (up to a depth), merges `allOf`, converts the rest.
    fn convert(&self, schema: &Value, refs: usize) -> Result<Value, Exceeded> {
        let Value::Object(map) = schema else {
            // `true` / `false` schemas: nothing Gemini can express.
            return Ok(Value::Object(Map::new()));
        };
        self.convert_view(
            View {
                map,
                follow: true,
                outer: None,
            },
            refs,
        )
    }

    fn convert_view(&self, source: View<'_>, refs: usize) -> Result<Value, Exceeded> {
        if let Some(reference) = source.get("$ref").and_then(Value::as_str) {
            let Some(target) = self.resolve(reference) else {
                let rest = View {
                    follow: false,
                    ..source
                };
                return self.convert_view(rest, refs);
            };
            self.spend(refs + 1, REF_COST)?;
            if refs >= MAX_REF_DEPTH {
                return Ok(json!({"type": "object"}));
            }
            // Sibling keywords (a description, say) refine the referenced schema.
            let resolved = View {
                map: target,
                follow: true,
                outer: Some(&source),
            };
            return self.convert_view(resolved, refs + 1);
        }
        let mut out = self.convert_object(source, refs)?;
        if let (Some(Value::Array(parts)), Value::Object(map)) = (source.get("allOf"), &mut out) {
            for part in parts {
                if let Value::Object(part) = self.convert(part, refs)? {
                    merge_into(map, part);
                }
            }
        }
        Ok(out)
    }

    fn convert_object(&self, source: View<'_>, refs: usize) -> Result<Value, Exceeded> {
        self.spend(refs, 2)?;
        let mut out = Map::new();
        for key in KEPT {
            if let Some(value) = source.get(key) {
                self.spend(refs, key.len() + 4)?;
                out.insert((*key).to_owned(), self.copy(value, refs)?);
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
                let strings = Value::Array(strings);
                self.spend(refs, json_size(&strings) + 8)?;
                out.insert("enum".to_owned(), strings);
            }
        } else if let Some(value @ Value::String(_)) = source.get("const") {
            self.spend(refs, 8)?;
            out.insert(
                "enum".to_owned(),
                Value::Array(vec![self.copy(value, refs)?]),
            );
        }
        if let Some(Value::Object(properties)) = source.get("properties") {
            let mut converted = Map::new();
            for (name, schema) in properties {
                self.spend(refs, name.len() + 4)?;
                converted.insert(name.clone(), self.convert(schema, refs)?);
            }
            if let Some(Value::Array(required)) = source.get("required") {
                let declared: Vec<Value> = required
                    .iter()
                    .filter(|r| r.as_str().is_some_and(|r| converted.contains_key(r)))
                    .cloned()
                    .collect();
                if !declared.is_empty() {
                    let declared = Value::Array(declared);
                    self.spend(refs, json_size(&declared) + 12)?;
                    out.insert("required".to_owned(), declared);
                }
            }
            self.spend(refs, 14)?;
            out.insert("properties".to_owned(), Value::Object(converted));
            if types.is_empty() {
                types.push("object".to_owned());
            }
        }
        match source.get("items") {
            Some(items @ Value::Object(_)) => {
                self.spend(refs, 9)?;
                out.insert("items".to_owned(), self.convert(items, refs)?);
            }
            // Tuple form (draft 4-7): the first item's schema is the closest single one.
            Some(Value::Array(items)) => {
                if let Some(first) = items.first() {
                    self.spend(refs, 9)?;
                    out.insert("items".to_owned(), self.convert(first, refs)?);
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
                    self.spend(refs, 1)?;
                    converted.push(self.convert(branch, refs)?);
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
                    self.spend(refs, 9)?;
                    out.insert("anyOf".to_owned(), Value::Array(converted));
                }
            }
        }
        match types.as_slice() {
            [] => {}
            [single] => {
                self.spend(refs, single.len() + 10)?;
                out.insert("type".to_owned(), Value::String(single.clone()));
            }
            several => {
                let branches: Vec<Value> = several.iter().map(|t| json!({"type": t})).collect();
                self.spend(
                    refs,
                    several.iter().map(|t| t.len() + 12).sum::<usize>() + 9,
                )?;
                out.insert("anyOf".to_owned(), Value::Array(branches));
            }
        }
        if let Some(format) = source.get("format").and_then(Value::as_str) {
            let kind = out.get("type").and_then(Value::as_str).unwrap_or_default();
            if supported_format(kind, format) {
                self.spend(refs, format.len() + 12)?;
                out.insert("format".to_owned(), Value::String(format.to_owned()));
            }
        }
        if nullable {
            self.spend(refs, 16)?;
            out.insert("nullable".to_owned(), Value::Bool(true));
        }
        Ok(Value::Object(out))
    }
}

/// About the length of `value` serialized: what copying it adds to a request.
fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(|v| json_size(v) + 1).sum::<usize>() + 2,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
                + 2
        }
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

    fn parameters(schema: &Value) -> Option<Value> {
        function_parameters(schema, 0, &Budget::new()).unwrap()
    }

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
        let out = parameters(&schema).unwrap();
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
        let out = parameters(&schema).unwrap();
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
    fn fanned_out_references_are_refused_not_truncated() {
        // Each definition references the next four times: 4^8 copies of 1 KB down to the depth
        // where recursion is cut off (the previous budget silently cut them to `object`s).
        let mut defs = Map::new();
        for i in 0..30 {
            let next = json!({"$ref": format!("#/$defs/D{}", i + 1)});
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "description": "x".repeat(1000), "properties": {"a": next, "b": next, "c": next, "d": next}}),
            );
        }
        defs.insert("D30".into(), json!({"type": "string"}));
        let schema = json!({"type": "object", "$defs": defs, "properties": {"root": {"$ref": "#/$defs/D0"}}});
        let budget = Budget::new();
        let err = function_parameters(&schema, 3, &budget).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(err.param.as_deref(), Some("tools[3].function.parameters"));
        assert_eq!(
            err.message,
            "Tool parameter schemas expand beyond 524288 bytes once their `$ref`s are inlined, which Gemini requires."
        );
    }

    #[test]
    fn siblings_of_chained_references_refine_them_outermost_first() {
        let schema = json!({
            "$defs": {
                "A": {"$ref": "#/$defs/B", "description": "a", "title": "A"},
                "B": {"type": "string", "description": "b", "title": "B", "maxLength": 3},
                "Missing": {"$ref": "#/$defs/Nowhere", "type": "integer"}
            },
            "properties": {
                "x": {"$ref": "#/$defs/A", "description": "x"},
                "y": {"$ref": "#/$defs/Missing", "description": "y"}
            }
        });
        let out = parameters(&schema).unwrap();
        assert_eq!(
            out["properties"],
            json!({
                "x": {"type": "string", "description": "x", "title": "A", "maxLength": 3},
                "y": {"type": "integer", "description": "y"}
            })
        );
    }

    #[test]
    fn functions_without_arguments_have_no_parameters() {
        assert_eq!(
            parameters(&json!({"type": "object", "properties": {}})),
            None
        );
        assert_eq!(parameters(&json!({"type": "object"})), None);
        assert_eq!(parameters(&json!({})), None);
    }
}
