//! Bedrock Converse wire types, written from the Smithy model (`bedrock-runtime`, restJson1).
//! Requests serialize exactly the members we send; responses and stream events deserialize
//! leniently (unknown members, such as the `"p"` padding of stream events, are ignored, and
//! unknown union members are skipped by the decoders rather than failing the answer).
//!
//! Smithy unions are JSON objects with exactly one key; a Rust enum with serde's default
//! external tagging serializes to exactly that.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

/// `SystemContentBlock`.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemBlock {
    Text(String),
    CachePoint(CachePoint),
}

/// `ContentBlock`, the members we send.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    Text(String),
    Image(ImageBlock),
    Document(DocumentBlock),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
    /// A `ReasoningContentBlock` replayed as the same provider family produced it.
    ReasoningContent(Value),
    CachePoint(CachePoint),
}

impl ContentBlock {
    pub fn is_tool_result(&self) -> bool {
        matches!(self, Self::ToolResult(_))
    }

    pub fn is_tool_block(&self) -> bool {
        matches!(self, Self::ToolUse(_) | Self::ToolResult(_))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CachePoint {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl CachePoint {
    pub fn default_point() -> Self {
        Self { kind: "default" }
    }
}

#[derive(Debug, PartialEq, Serialize)]
pub struct ImageBlock {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    pub source: ImageSource,
}

/// `ImageSource`: a blob, which restJson1 writes as base64 text.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageSource {
    Bytes(String),
}

/// `DocumentBlock`: `name` is required and limited to letters, digits, single spaces, hyphens,
/// parentheses and square brackets.
#[derive(Debug, PartialEq, Serialize)]
pub struct DocumentBlock {
    /// `pdf`, `csv`, `doc`, `docx`, `xls`, `xlsx`, `html`, `txt` or `md`.
    pub format: &'static str,
    pub name: String,
    /// Bytes only, as for images.
    pub source: ImageSource,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Vec<ToolResultContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// `ToolResultContentBlock`, the members we send.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent {
    Text(String),
    Image(ImageBlock),
    Document(DocumentBlock),
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

impl InferenceConfig {
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub tools: Vec<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// `Tool`, the members we send.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool {
    ToolSpec(ToolSpec),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: InputSchema,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `ToolInputSchema`, a union whose one member is `json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum InputSchema {
    Json(Value),
}

/// `ToolChoice`: `auto`, `any` and `tool` (there is no `none`).
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    Auto(Empty),
    Any(Empty),
    Tool(SpecificTool),
}

#[derive(Debug, PartialEq, Serialize)]
pub struct Empty {}

#[derive(Debug, PartialEq, Serialize)]
pub struct SpecificTool {
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig {
    pub text_format: OutputFormat,
}

#[derive(Debug, Serialize)]
pub struct OutputFormat {
    /// Always `json_schema`, the one `OutputFormatType`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub structure: OutputStructure,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputStructure {
    JsonSchema(JsonSchema),
}

#[derive(Debug, Serialize)]
pub struct JsonSchema {
    /// The JSON Schema as a JSON *string*, as the model defines it.
    pub schema: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `ConverseResponse`, the members we read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: ConverseOutput,
    pub stop_reason: String,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// `ConverseOutput`, a union whose one member is `message`.
#[derive(Debug, Deserialize)]
pub struct ConverseOutput {
    #[serde(default)]
    pub message: Option<ResponseMessage>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseMessage {
    /// Union members kept as maps, so that members newer than this code are skipped.
    #[serde(default)]
    pub content: Vec<Map<String, Value>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    pub tool_use_id: String,
    pub name: String,
    #[serde(default)]
    pub input: Value,
}

/// `ContentBlockStartEvent`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    pub content_block_index: u32,
    #[serde(default)]
    pub start: Map<String, Value>,
}

/// `ToolUseBlockStart`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    pub tool_use_id: String,
    pub name: String,
}

/// `ContentBlockDeltaEvent`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta {
    pub content_block_index: u32,
    #[serde(default)]
    pub delta: Map<String, Value>,
}

/// `MessageStopEvent`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop {
    pub stop_reason: String,
}

/// `ConverseStreamMetadataEvent`.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// The body of an error answer, and the payload of an exception frame.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
    /// restJson1 may name the error in the body instead of the `x-amzn-ErrorType` header.
    #[serde(default, rename = "__type")]
    pub kind: Option<String>,
    /// `ModelErrorException` / `ModelStreamErrorException`: what the model itself answered.
    #[serde(default, rename = "originalStatusCode")]
    pub original_status_code: Option<u16>,
}
