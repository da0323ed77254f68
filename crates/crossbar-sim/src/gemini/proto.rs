//! The request messages as the proto JSON parser sees them: which names exist at each level,
//! which fields are lists, maps, structs or scalars. Google's front end rejects anything else
//! before the model sees the request, with messages such as
//! `Invalid JSON payload received. Unknown name "additionalProperties" at
//! 'tools[0].function_declarations[0].parameters': Cannot find field.` Paths use the proto
//! (snake_case) names, list indices, and `[i].value` for map entries. Both lowerCamelCase and
//! snake_case keys are accepted, as the parser does; `null` means "unset".

use serde_json::{Map, Value};

use crate::SimDialect;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    Float,
    /// `google.protobuf.Struct`: a JSON object.
    Struct,
    /// `google.protobuf.Value` (or a message we do not look into): anything.
    Any,
    Message(&'static Spec),
    /// An enum, by name (case-insensitive) or number.
    Enum(&'static str, &'static [&'static str]),
    /// `map<string, Schema>`.
    Map(&'static Spec),
}

#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

#[derive(Debug)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub fields: &'static [Field],
    /// Members of the `data` oneof (parts), of which at most one may be set.
    pub oneof: &'static [&'static str],
}

const fn one(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        repeated: false,
    }
}

const fn many(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        repeated: true,
    }
}

const TYPES: &[&str] = &[
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
    "NULL",
];
const MODES: &[&str] = &["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"];

pub(crate) static REQUEST: Spec = Spec {
    name: "GenerateContentRequest",
    fields: &[
        one("model", Kind::Str),
        many("contents", Kind::Message(&CONTENT)),
        one("systemInstruction", Kind::Message(&CONTENT)),
        many("tools", Kind::Message(&TOOL)),
        one("toolConfig", Kind::Message(&TOOL_CONFIG)),
        many("safetySettings", Kind::Message(&SAFETY_SETTING)),
        one("generationConfig", Kind::Message(&GENERATION_CONFIG)),
        one("cachedContent", Kind::Str),
        one("labels", Kind::Any),
    ],
    oneof: &[],
};

pub(crate) static CONTENT: Spec = Spec {
    name: "Content",
    fields: &[one("role", Kind::Str), many("parts", Kind::Message(&PART))],
    oneof: &[],
};

pub(crate) const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];

static PART: Spec = Spec {
    name: "Part",
    fields: &[
        one("text", Kind::Str),
        one("thought", Kind::Bool),
        one("thoughtSignature", Kind::Str),
        one("inlineData", Kind::Message(&BLOB)),
        one("fileData", Kind::Message(&FILE_DATA)),
        one("functionCall", Kind::Message(&FUNCTION_CALL)),
        one("functionResponse", Kind::Message(&FUNCTION_RESPONSE)),
        one("executableCode", Kind::Any),
        one("codeExecutionResult", Kind::Any),
        one("videoMetadata", Kind::Any),
        one("partMetadata", Kind::Any),
        one("mediaResolution", Kind::Any),
    ],
    oneof: PART_DATA,
};

static BLOB: Spec = Spec {
    name: "Blob",
    fields: &[one("mimeType", Kind::Str), one("data", Kind::Str)],
    oneof: &[],
};

static FILE_DATA: Spec = Spec {
    name: "FileData",
    fields: &[
        one("mimeType", Kind::Str),
        one("fileUri", Kind::Str),
        one("displayName", Kind::Str),
    ],
    oneof: &[],
};

static FUNCTION_CALL: Spec = Spec {
    name: "FunctionCall",
    fields: &[
        one("id", Kind::Str),
        one("name", Kind::Str),
        one("args", Kind::Struct),
    ],
    oneof: &[],
};

static FUNCTION_RESPONSE: Spec = Spec {
    name: "FunctionResponse",
    fields: &[
        one("id", Kind::Str),
        one("name", Kind::Str),
        one("response", Kind::Struct),
        one("willContinue", Kind::Bool),
        one("scheduling", Kind::Str),
        many("parts", Kind::Any),
    ],
    oneof: &[],
};

static TOOL: Spec = Spec {
    name: "Tool",
    fields: &[
        many("functionDeclarations", Kind::Message(&FUNCTION_DECLARATION)),
        one("googleSearch", Kind::Any),
        one("googleSearchRetrieval", Kind::Any),
        one("codeExecution", Kind::Any),
        one("urlContext", Kind::Any),
        one("retrieval", Kind::Any),
        one("computerUse", Kind::Any),
        one("fileSearch", Kind::Any),
        one("googleMaps", Kind::Any),
        one("enterpriseWebSearch", Kind::Any),
    ],
    oneof: &[],
};

static FUNCTION_DECLARATION: Spec = Spec {
    name: "FunctionDeclaration",
    fields: &[
        one("name", Kind::Str),
        one("description", Kind::Str),
        one("parameters", Kind::Message(&SCHEMA)),
        one("parametersJsonSchema", Kind::Any),
        one("response", Kind::Message(&SCHEMA)),
        one("responseJsonSchema", Kind::Any),
        one("behavior", Kind::Str),
    ],
    oneof: &[],
};

/// The OpenAPI-3.0 subset: no `additionalProperties`, `$schema`, `$ref`, `$defs`, `const`,
/// `oneOf`, `allOf`, `exclusiveMinimum`... and `type` is one enum value, not a list.
pub(crate) static SCHEMA: Spec = Spec {
    name: "Schema",
    fields: &[
        one("type", Kind::Enum("Type", TYPES)),
        one("format", Kind::Str),
        one("title", Kind::Str),
        one("description", Kind::Str),
        one("nullable", Kind::Bool),
        many("enum", Kind::Str),
        one("maxItems", Kind::Int),
        one("minItems", Kind::Int),
        one("properties", Kind::Map(&SCHEMA)),
        many("required", Kind::Str),
        one("minProperties", Kind::Int),
        one("maxProperties", Kind::Int),
        one("minLength", Kind::Int),
        one("maxLength", Kind::Int),
        one("pattern", Kind::Str),
        one("example", Kind::Any),
        many("anyOf", Kind::Message(&SCHEMA)),
        many("propertyOrdering", Kind::Str),
        one("default", Kind::Any),
        one("items", Kind::Message(&SCHEMA)),
        one("minimum", Kind::Float),
        one("maximum", Kind::Float),
    ],
    oneof: &[],
};

static TOOL_CONFIG: Spec = Spec {
    name: "ToolConfig",
    fields: &[
        one(
            "functionCallingConfig",
            Kind::Message(&FUNCTION_CALLING_CONFIG),
        ),
        one("retrievalConfig", Kind::Any),
    ],
    oneof: &[],
};

static FUNCTION_CALLING_CONFIG: Spec = Spec {
    name: "FunctionCallingConfig",
    fields: &[
        one("mode", Kind::Enum("FunctionCallingConfig.Mode", MODES)),
        many("allowedFunctionNames", Kind::Str),
        one("streamFunctionCallArguments", Kind::Bool),
    ],
    oneof: &[],
};

static SAFETY_SETTING: Spec = Spec {
    name: "SafetySetting",
    fields: &[
        one("category", Kind::Str),
        one("threshold", Kind::Str),
        one("method", Kind::Str),
    ],
    oneof: &[],
};

static GENERATION_CONFIG: Spec = Spec {
    name: "GenerationConfig",
    fields: &[
        many("stopSequences", Kind::Str),
        one("responseMimeType", Kind::Str),
        one("responseSchema", Kind::Message(&SCHEMA)),
        one("responseJsonSchema", Kind::Any),
        many("responseModalities", Kind::Str),
        one("candidateCount", Kind::Int),
        one("maxOutputTokens", Kind::Int),
        one("temperature", Kind::Float),
        one("topP", Kind::Float),
        one("topK", Kind::Int),
        one("seed", Kind::Int),
        one("presencePenalty", Kind::Float),
        one("frequencyPenalty", Kind::Float),
        one("responseLogprobs", Kind::Bool),
        one("logprobs", Kind::Int),
        one("enableEnhancedCivicAnswers", Kind::Bool),
        one("speechConfig", Kind::Any),
        one("thinkingConfig", Kind::Message(&THINKING_CONFIG)),
        one("imageConfig", Kind::Any),
        one("mediaResolution", Kind::Str),
        one("audioTimestamp", Kind::Bool),
    ],
    oneof: &[],
};

static THINKING_CONFIG: Spec = Spec {
    name: "ThinkingConfig",
    fields: &[
        one("includeThoughts", Kind::Bool),
        one("thinkingBudget", Kind::Int),
        one("thinkingLevel", Kind::Str),
    ],
    oneof: &[],
};

/// `fooBar` → `foo_bar`, the proto name used in error paths.
pub(crate) fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A field by its camelCase name, also found under its snake_case name.
pub(crate) fn get<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .get(name)
        .or_else(|| object.get(&snake(name)))
        .filter(|v| !v.is_null())
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Walks a request against a spec, collecting `(field, description)` violations.
pub(crate) struct Checker {
    package: &'static str,
    pub violations: Vec<(String, String)>,
}

impl Checker {
    pub fn new(dialect: SimDialect) -> Self {
        Self {
            package: match dialect {
                SimDialect::Vertex => "google.cloud.aiplatform.v1",
                _ => "google.ai.generativelanguage.v1beta",
            },
            violations: Vec::new(),
        }
    }

    fn at(path: &str) -> String {
        if path.is_empty() {
            String::new()
        } else {
            format!(" at '{path}'")
        }
    }

    fn invalid(&mut self, path: &str, type_name: &str, value: &Value) {
        self.violations.push((
            path.to_owned(),
            format!("Invalid value at '{path}' ({type_name}), {value}"),
        ));
    }

    pub fn message(&mut self, spec: &Spec, object: &Map<String, Value>, path: &str) {
        let mut data_set: Option<&str> = None;
        for (key, value) in object {
            let field = spec
                .fields
                .iter()
                .find(|f| f.name == key || snake(f.name) == *key);
            let Some(field) = field else {
                self.violations.push((
                    path.to_owned(),
                    format!(
                        "Invalid JSON payload received. Unknown name \"{key}\"{}: Cannot find field.",
                        Self::at(path)
                    ),
                ));
                continue;
            };
            if value.is_null() {
                continue;
            }
            if spec.oneof.contains(&field.name) {
                if data_set.is_some() {
                    self.violations.push((
                        path.to_owned(),
                        format!(
                            "Invalid JSON payload received. Oneof field 'data' is already set. \
                             Cannot set '{key}'"
                        ),
                    ));
                }
                data_set = Some(field.name);
            }
            let field_path = join(path, &snake(field.name));
            match (field.repeated, value) {
                (true, Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        self.value(field.kind, item, &format!("{field_path}[{i}]"), key, path);
                    }
                }
                (true, other) => self.value(field.kind, other, &field_path, key, path),
                (false, Value::Array(_)) => self.violations.push((
                    path.to_owned(),
                    format!(
                        "Invalid JSON payload received. Unknown name \"{key}\"{}: Proto field is \
                         not repeating, cannot start list.",
                        Self::at(path)
                    ),
                )),
                (false, other) => self.value(field.kind, other, &field_path, key, path),
            }
        }
    }

    fn value(&mut self, kind: Kind, value: &Value, path: &str, key: &str, parent: &str) {
        match kind {
            Kind::Any => {}
            Kind::Str if value.is_string() => {}
            Kind::Str => self.invalid(path, "TYPE_STRING", value),
            Kind::Bool if value.is_boolean() => {}
            Kind::Bool => self.invalid(path, "TYPE_BOOL", value),
            Kind::Int
                if value.is_i64() || value.as_str().is_some_and(|s| s.parse::<i64>().is_ok()) => {}
            Kind::Int => self.invalid(path, "TYPE_INT32", value),
            Kind::Float if value.is_number() => {}
            Kind::Float => self.invalid(path, "TYPE_FLOAT", value),
            Kind::Struct => match value {
                Value::Object(_) => {}
                Value::Array(_) => self.violations.push((
                    parent.to_owned(),
                    format!(
                        "Invalid JSON payload received. Unknown name \"{key}\"{}: Proto field is \
                         not repeating, cannot start list.",
                        Self::at(parent)
                    ),
                )),
                other => self.invalid(path, "type.googleapis.com/google.protobuf.Struct", other),
            },
            Kind::Enum(name, values) => {
                let known = match value {
                    Value::String(s) => values.iter().any(|v| v.eq_ignore_ascii_case(s)),
                    Value::Number(n) => n
                        .as_u64()
                        .is_some_and(|n| usize::try_from(n).is_ok_and(|n| n < values.len())),
                    _ => false,
                };
                if !known {
                    let type_name = format!("type.googleapis.com/{}.{name}", self.package);
                    self.invalid(path, &type_name, value);
                }
            }
            Kind::Message(spec) => match value {
                Value::Object(object) => self.message(spec, object, path),
                other => {
                    let type_name = format!("type.googleapis.com/{}.{}", self.package, spec.name);
                    self.invalid(path, &type_name, other);
                }
            },
            Kind::Map(spec) => match value {
                Value::Object(entries) => {
                    for (i, entry) in entries.values().enumerate() {
                        self.value(
                            Kind::Message(spec),
                            entry,
                            &format!("{path}[{i}].value"),
                            key,
                            parent,
                        );
                    }
                }
                other => {
                    let type_name = format!("type.googleapis.com/{}.{}", self.package, spec.name);
                    self.invalid(path, &type_name, other);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(body: Value) -> Vec<String> {
        let mut checker = Checker::new(SimDialect::Gemini);
        if let Value::Object(object) = &body {
            checker.message(&REQUEST, object, "");
        }
        // Without serde_json's `preserve_order`, keys are visited sorted: compare as sets.
        let mut errors: Vec<String> = checker.violations.into_iter().map(|(_, d)| d).collect();
        errors.sort();
        errors
    }

    fn sorted<const N: usize>(expected: [&str; N]) -> Vec<String> {
        let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        expected
    }

    #[test]
    fn unknown_names_are_reported_with_proto_paths() {
        let errors = check(json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
                "type": "object", "additionalProperties": false,
                "properties": {"a": {"type": "string"}, "b": {"type": "object", "$ref": "#/x"}}}}]}],
            "bogus": 1
        }));
        assert_eq!(
            errors,
            sorted([
                "Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters': Cannot find field.",
                "Invalid JSON payload received. Unknown name \"$ref\" at 'tools[0].function_declarations[0].parameters.properties[1].value': Cannot find field.",
                "Invalid JSON payload received. Unknown name \"bogus\": Cannot find field.",
            ])
        );
    }

    #[test]
    fn lists_structs_scalars_and_oneofs_are_typed() {
        let errors = check(json!({
            "contents": [{"role": "user", "parts": [
                {"functionResponse": {"name": "f", "response": "sunny"}},
                {"functionResponse": {"name": "f", "response": [1]}},
                {"text": "a", "functionCall": {"name": "f"}}
            ]}],
            "generation_config": {"temperature": "hot", "thinking_config": {"thinkingBudget": 10}},
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": ["string", "null"]}}]}]
        }));
        assert_eq!(
            errors,
            sorted([
                "Invalid value at 'contents[0].parts[0].function_response.response' (type.googleapis.com/google.protobuf.Struct), \"sunny\"",
                "Invalid JSON payload received. Unknown name \"response\" at 'contents[0].parts[1].function_response': Proto field is not repeating, cannot start list.",
                "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set 'text'",
                "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
                "Invalid JSON payload received. Unknown name \"type\" at 'tools[0].function_declarations[0].parameters': Proto field is not repeating, cannot start list.",
            ])
        );
        assert!(check(json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "STRING"}}}}]}]})).is_empty());
    }
}
