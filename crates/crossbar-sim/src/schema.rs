//! Synthesizes a JSON value that satisfies a JSON Schema, for tool arguments and structured
//! output.
//!
//! Covers what tool and response schemas use in practice (OpenAI strict mode, Pydantic, zod):
//! `type` (also as an array), `const`, `enum`, `properties`/`required`/`additionalProperties`/
//! `minProperties`/`maxProperties`, strings with `minLength`/`maxLength`/`format`, numbers with
//! (exclusive) bounds and `multipleOf`, arrays with `items`/`prefixItems`/`minItems`/`maxItems`,
//! `allOf` (merged), `anyOf`/`oneOf` (first non-null branch), `$ref` into the root document
//! (`$defs`, `definitions`) and OpenAPI's `nullable`. Not satisfied: `pattern`, `not`,
//! `if`/`then`, `contains`, `uniqueItems` of non-string items. Free strings take words from the
//! prompt, proper nouns first. Recursive schemas stop growing past a depth: only required
//! properties, `minItems` items and null branches are generated there.

use serde_json::{Map, Number, Value, json};

use crate::ids;

/// Past this depth, only what the schema requires is generated.
const GROW_DEPTH: usize = 6;
/// Past this depth, give up with `null` (only reachable by schemas that require infinite data).
const MAX_DEPTH: usize = 32;
/// Cap on generated items, properties and string length, whatever the schema asks.
const MAX_REPEAT: u64 = 4096;

/// Words to fill free strings with, taken from the prompt.
#[derive(Clone, Debug)]
pub(crate) struct Words {
    words: Vec<String>,
    next: usize,
}

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "with", "what", "whats", "that", "this", "you", "are", "was", "please",
    "can", "could", "would", "should", "from", "into", "about", "there", "their", "have", "has",
    "how", "why", "when", "where", "which", "who", "use", "tell", "give", "get", "not",
];

impl Words {
    pub fn from_text(text: &str) -> Self {
        let mut proper = Vec::new();
        let mut common = Vec::new();
        let tokens = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty());
        for (position, word) in tokens.enumerate() {
            let lower = word.to_lowercase();
            if word.chars().count() < 3 || STOPWORDS.contains(&lower.as_str()) {
                continue;
            }
            // Capitalized words after the first are likely names: the best argument values.
            if position > 0 && word.chars().next().is_some_and(char::is_uppercase) {
                proper.push(word.to_owned());
            } else {
                common.push(word.to_owned());
            }
        }
        proper.extend(common);
        Self {
            words: proper,
            next: 0,
        }
    }

    fn next_word(&mut self) -> String {
        let word = match self.words.len() {
            0 => "simulated",
            len => self.words.get(self.next % len).map_or("simulated", |w| w),
        };
        self.next = self.next.wrapping_add(1);
        word.to_owned()
    }
}

pub(crate) fn synthesize(schema: &Value, words: &mut Words) -> Value {
    Synth {
        root: schema,
        words,
    }
    .value(schema, 0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

struct Synth<'a, 'w> {
    root: &'a Value,
    words: &'w mut Words,
}

impl Synth<'_, '_> {
    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        if depth > MAX_DEPTH || *schema == Value::Bool(false) {
            return Value::Null;
        }
        let flat = self.flatten(schema, depth);
        if let Some(value) = flat.get("const") {
            return value.clone();
        }
        if let Some(first) = flat
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return first.clone();
        }
        let grow = depth < GROW_DEPTH;
        match pick_type(&flat, grow) {
            Type::Object => self.object(&flat, depth),
            Type::Array => self.array(&flat, depth),
            Type::String => self.string(&flat),
            Type::Integer => number(&flat, true),
            Type::Number => number(&flat, false),
            Type::Boolean => Value::Bool(true),
            Type::Null => Value::Null,
        }
    }

    /// One schema object with `$ref` resolved, `allOf` merged and one `anyOf`/`oneOf` branch
    /// merged in, so that generation only has to look at plain keywords.
    fn flatten(&self, schema: &Value, depth: usize) -> Map<String, Value> {
        let Some(map) = schema.as_object() else {
            return Map::new();
        };
        let mut out = map.clone();
        if depth > MAX_DEPTH {
            return out;
        }
        if let Some(Value::String(reference)) = out.remove("$ref")
            && let Some(target) = self.resolve(&reference)
        {
            let target = self.flatten(target, depth + 1);
            merge(&mut out, target);
        }
        if let Some(Value::Array(branches)) = out.remove("allOf") {
            for branch in &branches {
                let branch = self.flatten(branch, depth + 1);
                merge(&mut out, branch);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = out.remove(key)
                && let Some(branch) = pick_branch(&branches, depth < GROW_DEPTH)
            {
                let branch = self.flatten(branch, depth + 1);
                merge(&mut out, branch);
            }
        }
        out
    }

    /// Local references only (`#`, `#/$defs/X`, `#/definitions/X`, any JSON pointer).
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            Some(self.root)
        } else {
            self.root.pointer(pointer)
        }
    }

    fn object(&mut self, schema: &Map<String, Value>, depth: usize) -> Value {
        let grow = depth < GROW_DEPTH;
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let any = json!({});
        let extra = match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => None,
            Some(extra @ Value::Object(_)) => Some(extra),
            _ => Some(&any),
        };
        let mut out = Map::new();
        if let Some(Value::Object(properties)) = schema.get("properties") {
            for (name, property) in properties {
                if grow || required.contains(&name.as_str()) {
                    let value = self.value(property, depth + 1);
                    out.insert(name.clone(), value);
                }
            }
        }
        for name in &required {
            if !out.contains_key(*name) {
                let value = self.value(extra.unwrap_or(&any), depth + 1);
                out.insert((*name).to_owned(), value);
            }
        }
        if let Some(extra) = extra {
            let min = bound(schema, "minProperties").unwrap_or(0).min(MAX_REPEAT);
            let mut n = 0;
            while u64::try_from(out.len()).unwrap_or(u64::MAX) < min {
                n += 1;
                let key = format!("field_{n}");
                if !out.contains_key(&key) {
                    let value = self.value(extra, depth + 1);
                    out.insert(key, value);
                }
            }
        }
        if let Some(max) = bound(schema, "maxProperties") {
            let optional: Vec<String> = out
                .keys()
                .filter(|k| !required.contains(&k.as_str()))
                .cloned()
                .collect();
            for key in optional.iter().rev() {
                if u64::try_from(out.len()).unwrap_or(u64::MAX) <= max {
                    break;
                }
                out.remove(key);
            }
        }
        Value::Object(out)
    }

    fn array(&mut self, schema: &Map<String, Value>, depth: usize) -> Value {
        let (prefix, rest): (&[Value], Option<&Value>) =
            match (schema.get("prefixItems"), schema.get("items")) {
                (Some(Value::Array(prefix)), items) => (prefix, items),
                (None, Some(Value::Array(prefix))) => (prefix, schema.get("additionalItems")),
                (_, items) => (&[], items),
            };
        let min = bound(schema, "minItems").unwrap_or(0).min(MAX_REPEAT);
        let min = usize::try_from(min).unwrap_or(usize::MAX);
        let mut count = if depth < GROW_DEPTH {
            min.max(1).max(prefix.len())
        } else {
            min
        };
        if let Some(max) = bound(schema, "maxItems") {
            count = count.min(usize::try_from(max).unwrap_or(usize::MAX));
        }
        let any = json!({});
        let mut items = Vec::with_capacity(count);
        for index in 0..count {
            let item = match (prefix.get(index), rest) {
                (Some(item), _) => item,
                (None, Some(Value::Bool(false))) => break,
                (None, Some(item)) => item,
                (None, None) => &any,
            };
            items.push(self.value(item, depth + 1));
        }
        Value::Array(items)
    }

    fn string(&mut self, schema: &Map<String, Value>) -> Value {
        if let Some(value) = schema
            .get("format")
            .and_then(Value::as_str)
            .and_then(|format| self.formatted(format))
        {
            return Value::String(value);
        }
        let min = bound(schema, "minLength").unwrap_or(0).min(MAX_REPEAT);
        let min = usize::try_from(min).unwrap_or(usize::MAX);
        let mut text = self.words.next_word();
        let mut len = text.chars().count();
        while len < min {
            let word = self.words.next_word();
            len += 1 + word.chars().count();
            text.push(' ');
            text.push_str(&word);
        }
        if let Some(max) = bound(schema, "maxLength").and_then(|m| usize::try_from(m).ok())
            && len > max
        {
            text = text.chars().take(max).collect();
        }
        Value::String(text)
    }

    fn formatted(&mut self, format: &str) -> Option<String> {
        let value = match format {
            "date" => "2024-05-14",
            "date-time" => "2024-05-14T09:30:00Z",
            "time" => "09:30:00Z",
            "duration" => "PT1H30M",
            "email" | "idn-email" => "user@example.com",
            "hostname" | "idn-hostname" => "example.com",
            "ipv4" => "192.0.2.1",
            "ipv6" => "2001:db8::1",
            "uri" | "iri" | "url" | "uri-reference" | "iri-reference" => {
                "https://example.com/resource"
            }
            "json-pointer" => "/resource",
            "regex" => ".*",
            "uuid" => {
                let seed = ids::fnv1a(self.words.next_word().as_bytes());
                return Some(ids::uuid(&mut ids::rng(seed, 0)));
            }
            _ => return None,
        };
        Some(value.to_owned())
    }
}

/// Merges a flattened branch into a schema: properties and `required` are unioned (a property
/// defined twice must satisfy both), types are intersected, other keywords keep the first.
fn merge(target: &mut Map<String, Value>, branch: Map<String, Value>) {
    for (key, value) in branch {
        match (key.as_str(), target.get_mut(&key), value) {
            ("properties", Some(Value::Object(existing)), Value::Object(more)) => {
                for (name, schema) in more {
                    let merged = match existing.remove(&name) {
                        Some(previous) => json!({ "allOf": [previous, schema] }),
                        None => schema,
                    };
                    existing.insert(name, merged);
                }
            }
            ("required", Some(Value::Array(existing)), Value::Array(more)) => {
                for name in more {
                    if !existing.contains(&name) {
                        existing.push(name);
                    }
                }
            }
            ("type", Some(existing), value) => {
                if let Some(common) = intersect_types(existing, &value) {
                    *existing = common;
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                target.insert(key, value);
            }
        }
    }
}

fn type_names(value: &Value) -> Vec<&str> {
    match value {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn intersect_types(a: &Value, b: &Value) -> Option<Value> {
    let (a, b) = (type_names(a), type_names(b));
    let allows = |names: &[&str], t: &str| {
        names.contains(&t) || (t == "integer" && names.contains(&"number"))
    };
    let common: Vec<&str> = a
        .iter()
        .chain(&b)
        .copied()
        .filter(|t| allows(&a, t) && allows(&b, t))
        .fold(Vec::new(), |mut acc, t| {
            if !acc.contains(&t) {
                acc.push(t);
            }
            acc
        });
    match common.as_slice() {
        [] => None,
        [one] => Some(json!(one)),
        many => Some(json!(many)),
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// While growing: the first non-null branch. Past the growth depth: a null branch, else one
/// without a reference, so that recursion ends.
fn pick_branch(branches: &[Value], grow: bool) -> Option<&Value> {
    let preferred = if grow {
        branches.iter().find(|b| !is_null_schema(b))
    } else {
        branches
            .iter()
            .find(|b| is_null_schema(b))
            .or_else(|| branches.iter().find(|b| b.get("$ref").is_none()))
    };
    preferred.or_else(|| branches.first())
}

fn pick_type(schema: &Map<String, Value>, grow: bool) -> Type {
    let declared = schema.get("type").map(type_names).unwrap_or_default();
    let nullable = declared.contains(&"null") || schema.get("nullable") == Some(&Value::Bool(true));
    if !grow && nullable {
        return Type::Null;
    }
    if let Some(name) = declared.iter().find(|t| **t != "null").or(declared.first()) {
        return match *name {
            "object" => Type::Object,
            "array" => Type::Array,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            "null" => Type::Null,
            _ => Type::String,
        };
    }
    let has = |keys: &[&str]| keys.iter().any(|k| schema.contains_key(*k));
    if has(&[
        "properties",
        "required",
        "additionalProperties",
        "minProperties",
        "maxProperties",
    ]) {
        Type::Object
    } else if has(&["items", "prefixItems", "minItems", "maxItems"]) {
        Type::Array
    } else if has(&[
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    ]) {
        Type::Number
    } else {
        Type::String
    }
}

fn bound(schema: &Map<String, Value>, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

/// A number within the bounds (draft-4 boolean and later numeric exclusive bounds), preferring
/// 1 (integers) or 1.5, and a multiple of `multipleOf` when given.
fn number(schema: &Map<String, Value>, integer: bool) -> Value {
    let limit = |inclusive: &str, exclusive: &str| {
        let mut bound = schema
            .get(inclusive)
            .and_then(Value::as_f64)
            .map(|b| (b, false));
        match schema.get(exclusive) {
            Some(Value::Bool(true)) => bound = bound.map(|(b, _)| (b, true)),
            Some(value) => {
                if let Some(b) = value.as_f64() {
                    bound = Some((b, true));
                }
            }
            None => {}
        }
        bound.filter(|(b, _)| b.is_finite())
    };
    let low = limit("minimum", "exclusiveMinimum");
    let high = limit("maximum", "exclusiveMaximum");
    let mut value: f64 = if integer { 1.0 } else { 1.5 };
    if let Some((low, exclusive)) = low
        && (value < low || (exclusive && value <= low))
    {
        value = match (integer, exclusive) {
            (true, true) => low.floor() + 1.0,
            (true, false) => low.ceil(),
            (false, false) => low,
            (false, true) => high.map_or(low + 1.0, |(high, _)| (low + high) / 2.0),
        };
    }
    if let Some((high, exclusive)) = high
        && (value > high || (exclusive && value >= high))
    {
        value = match (integer, exclusive) {
            (true, true) => high.ceil() - 1.0,
            (true, false) => high.floor(),
            (false, false) => high,
            (false, true) => low.map_or(high - 1.0, |(low, _)| (low + high) / 2.0),
        };
    }
    if let Some(step) = schema
        .get("multipleOf")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
    {
        let up = (value / step).ceil() * step;
        value = match high {
            Some((high, _)) if up > high => (value / step).floor() * step,
            _ => up,
        };
    }
    if integer {
        // `as` saturates, which is the intent for bounds beyond i64.
        Value::from(value as i64)
    } else {
        Number::from_f64(value).map_or(Value::from(0), Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validates(schema: Value) -> Value {
        let value = synthesize(
            &schema,
            &mut Words::from_text("Plan a trip to Paris with Alice"),
        );
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{value} fails {schema}: {errors:?}");
        value
    }

    #[test]
    fn strict_object_with_scalars() {
        let value = validates(json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "budget": {"type": "number"},
                "flexible": {"type": "boolean"},
                "notes": {"type": "null"}
            },
            "required": ["city", "days", "budget", "flexible", "notes"],
            "additionalProperties": false
        }));
        assert_eq!(
            value["city"], "Paris",
            "free strings use prompt words, names first"
        );
    }

    #[test]
    fn enums_and_consts() {
        let value = validates(json!({
            "type": "object",
            "properties": {
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "kind": {"const": "trip"},
                "level": {"enum": [3, "x"]}
            },
            "required": ["unit", "kind", "level"]
        }));
        assert_eq!(value["unit"], "celsius");
    }

    #[test]
    fn string_lengths_and_formats() {
        let value = validates(json!({
            "type": "object",
            "properties": {
                "long": {"type": "string", "minLength": 40},
                "short": {"type": "string", "maxLength": 2},
                "date": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "date-time"},
                "email": {"type": "string", "format": "email"},
                "id": {"type": "string", "format": "uuid"},
                "site": {"type": "string", "format": "uri"},
                "ip": {"type": "string", "format": "ipv4"}
            },
            "required": ["long", "short", "date", "at", "email", "id", "site", "ip"]
        }));
        assert!(value["long"].as_str().unwrap().len() >= 40);
    }

    #[test]
    fn numeric_bounds() {
        validates(json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": 10, "maximum": 20},
                "b": {"type": "integer", "exclusiveMinimum": 10, "multipleOf": 7},
                "c": {"type": "integer", "maximum": -5},
                "d": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "e": {"type": "number", "minimum": 2.5},
                "f": {"type": "integer", "exclusiveMaximum": 0}
            },
            "required": ["a", "b", "c", "d", "e", "f"]
        }));
    }

    #[test]
    fn nested_arrays() {
        let value = validates(json!({
            "type": "array",
            "minItems": 2,
            "maxItems": 3,
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"tags": {"type": "array", "items": {"type": "string"}, "maxItems": 0}},
                    "required": ["tags"]
                }
            }
        }));
        assert_eq!(value.as_array().unwrap().len(), 2);
    }

    #[test]
    fn type_arrays_and_nullable() {
        let value = validates(json!({
            "type": "object",
            "properties": {
                "a": {"type": ["string", "null"]},
                "b": {"type": ["null", "integer"]},
                "c": {"type": "string", "nullable": true}
            },
            "required": ["a", "b", "c"]
        }));
        assert!(value["a"].is_string() && value["b"].is_i64());
    }

    #[test]
    fn pydantic_defs_refs_and_optional() {
        validates(json!({
            "$defs": {
                "Address": {
                    "properties": {"street": {"title": "Street", "type": "string"}, "zip": {"type": "string", "maxLength": 5}},
                    "required": ["street", "zip"],
                    "title": "Address",
                    "type": "object"
                },
                "Kind": {"enum": ["home", "work"], "title": "Kind", "type": "string"}
            },
            "properties": {
                "name": {"title": "Name", "type": "string"},
                "address": {"$ref": "#/$defs/Address"},
                "previous": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": null},
                "kind": {"$ref": "#/$defs/Kind"},
                "others": {"type": "array", "items": {"$ref": "#/$defs/Address"}}
            },
            "required": ["name", "address", "kind"],
            "title": "Person",
            "type": "object"
        }));
    }

    #[test]
    fn draft7_definitions() {
        validates(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"], "additionalProperties": false}},
            "type": "object",
            "properties": {"path": {"type": "array", "minItems": 3, "items": {"$ref": "#/definitions/point"}}},
            "required": ["path"]
        }));
    }

    #[test]
    fn all_of_merges_objects() {
        let value = validates(json!({
            "allOf": [
                {"type": "object", "properties": {"id": {"type": "integer", "minimum": 5}}, "required": ["id"]},
                {"properties": {"id": {"maximum": 9}, "label": {"type": "string"}}, "required": ["label"]}
            ]
        }));
        assert!(value.get("id").is_some() && value.get("label").is_some());
    }

    #[test]
    fn one_of_and_any_of_take_a_branch() {
        validates(json!({
            "type": "object",
            "properties": {
                "target": {"oneOf": [{"type": "string", "format": "email"}, {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}]},
                "size": {"anyOf": [{"type": "integer", "minimum": 100}, {"type": "string"}]}
            },
            "required": ["target", "size"]
        }));
    }

    #[test]
    fn recursive_schema_terminates() {
        validates(json!({
            "$ref": "#/$defs/node",
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                        "parent": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}
                    },
                    "required": ["name", "children", "parent"]
                }
            }
        }));
    }

    #[test]
    fn property_counts_tuples_and_undeclared_required() {
        let value = validates(json!({
            "type": "object",
            "properties": {
                "map": {"type": "object", "minProperties": 3, "additionalProperties": {"type": "integer"}},
                "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false},
                "few": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}, "maxProperties": 1},
                "loose": {"type": "object", "required": ["anything"]}
            },
            "required": ["map", "pair", "few", "loose"]
        }));
        assert_eq!(value["map"].as_object().unwrap().len(), 3);
        assert_eq!(value["pair"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn empty_and_boolean_schemas() {
        validates(json!({}));
        validates(json!(true));
        validates(json!({"type": "object", "properties": {"x": true}}));
        assert_eq!(
            synthesize(&json!(false), &mut Words::from_text("")),
            Value::Null
        );
        assert_eq!(
            synthesize(&json!({"type": "string"}), &mut Words::from_text("")),
            json!("simulated")
        );
    }
}
