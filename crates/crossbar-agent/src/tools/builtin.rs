//! Built-in tools: `calculator`, `now`, `read_file` / `write_file` confined to a workspace
//! directory, and `http_fetch` behind a host allowlist that refuses private, loopback and
//! link-local addresses unless the spec allows them.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use crossbar_core::chat;
use crossbar_core::images::is_private;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, definition, text_arg};
use crate::spec::HttpFetchSpec;

/// The parameters of a tool whose arguments are all required strings, `(name, description)`
/// each, and nothing else.
fn string_args(args: &[(&str, Option<&str>)]) -> Value {
    let properties: serde_json::Map<String, Value> = args
        .iter()
        .map(|&(name, description)| {
            let mut property = serde_json::Map::new();
            property.insert("type".to_owned(), json!("string"));
            if let Some(description) = description {
                property.insert("description".to_owned(), json!(description));
            }
            (name.to_owned(), Value::Object(property))
        })
        .collect();
    let required: Vec<&str> = args.iter().map(|&(name, _)| name).collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

/// Arithmetic on numbers: `+ - * / % ^`, parentheses, unary minus.
pub struct Calculator;

impl Tool for Calculator {
    fn definition(&self) -> chat::Tool {
        definition(
            "calculator",
            "Evaluates an arithmetic expression with + - * / % ^ and parentheses.",
            string_args(&[("expression", Some("e.g. (2 + 3) * 4.5"))]),
        )
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let expression = text_arg(&arguments, "expression")?;
            let value = evaluate(expression)?;
            Ok(format_number(value))
        })
    }
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 1e-6 && value.abs() < 1e15 {
        // Ten decimals hide binary noise (3 * 129.90 is 389.70000000000005 in f64).
        let fixed = format!("{value:.10}");
        fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{value}")
    }
}

/// Evaluates an arithmetic expression (recursive descent, no variables or functions).
pub fn evaluate(expression: &str) -> Result<f64, String> {
    let mut parser = Parser {
        chars: expression.chars().filter(|c| !c.is_whitespace()).collect(),
        at: 0,
        depth: 0,
    };
    let value = parser.sum()?;
    if parser.at != parser.chars.len() {
        return Err(format!(
            "unexpected `{}` at position {}",
            parser.chars[parser.at],
            parser.at + 1
        ));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number (division by zero?)".to_owned());
    }
    Ok(value)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut value = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.at += 1;
            let rhs = self.product()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut value = self.power()?;
        while let Some(op @ ('*' | '/' | '%')) = self.peek() {
            self.at += 1;
            let rhs = self.power()?;
            value = match op {
                '*' => value * rhs,
                '/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.peek() == Some('^') {
            self.at += 1;
            let exponent = self.power()?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some('-') => {
                self.at += 1;
                Ok(-self.unary()?)
            }
            Some('+') => {
                self.at += 1;
                self.unary()
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some('(') => {
                self.depth += 1;
                if self.depth > 64 {
                    return Err("too deeply nested".to_owned());
                }
                self.at += 1;
                let value = self.sum()?;
                if self.peek() != Some(')') {
                    return Err("missing `)`".to_owned());
                }
                self.at += 1;
                self.depth -= 1;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E')
                {
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().collect();
                text.parse()
                    .map_err(|_| format!("`{text}` is not a number"))
            }
            Some(c) => Err(format!("unexpected `{c}` at position {}", self.at + 1)),
            None => Err("the expression ends too early".to_owned()),
        }
    }
}

/// The current UTC time in RFC 3339.
pub struct Now;

impl Tool for Now {
    fn definition(&self) -> chat::Tool {
        definition(
            "now",
            "Returns the current date and time in UTC (RFC 3339).",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        )
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, _arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move { Ok(rfc3339(crossbar_store::now_ms())) })
    }
}

/// Formats milliseconds since the epoch (days-to-civil from Howard Hinnant's algorithm).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `relative` as a path if it is one a model may name: relative and without `..`. This only
/// makes the message clear; containment itself is [`workspace_dir`]'s.
fn relative_path(relative: &str) -> Result<&Path, String> {
    let path = Path::new(relative);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "`{relative}` must be a relative path inside the workspace, without `..`"
        ));
    }
    Ok(path)
}

/// The workspace as a directory handle. Every path is then resolved beneath it by the kernel
/// (`openat2` with `RESOLVE_BENEATH` on Linux, a component-by-component `O_NOFOLLOW` walk
/// where that is missing): a symlink or `..` leading out, dangling or not, fails the open
/// itself, so there is no check-then-use window for another process to swap a folder in.
fn workspace_dir(workspace: &Path) -> Result<Dir, String> {
    Dir::open_ambient_dir(workspace, ambient_authority())
        .map_err(|e| format!("the workspace is not available: {e}"))
}

/// Whether cap-std refused a path for leading out: its own PermissionDenied, without an OS
/// error code.
fn is_escape(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::PermissionDenied && error.raw_os_error().is_none()
}

/// An I/O error as the model reads it; an escape is named as such.
fn file_error(relative: &str, action: &str, error: &std::io::Error) -> String {
    if is_escape(error) {
        format!("`{relative}` leads outside the workspace")
    } else {
        format!("cannot {action} `{relative}`: {error}")
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the file operation did not finish: {e}"))?
}

/// Reads `relative` beneath `workspace`.
fn read_confined(workspace: &Path, relative: &str) -> Result<String, String> {
    let path = relative_path(relative)?;
    workspace_dir(workspace)?
        .read_to_string(path)
        .map_err(|e| file_error(relative, "read", &e))
}

/// Writes `relative` beneath `workspace`, creating its folders (each also beneath).
fn write_confined(workspace: &Path, relative: &str, content: &str) -> Result<(), String> {
    let path = relative_path(relative)?;
    let dir = workspace_dir(workspace)?;
    if let Some(parent) = path.parent() {
        dir.create_dir_all(parent).map_err(|e| {
            // A folder link leading out shows as "exists but is not a folder": say why.
            match dir.metadata(parent) {
                Err(probe) if is_escape(&probe) => file_error(relative, "", &probe),
                _ => file_error(relative, "create folders for", &e),
            }
        })?;
    }
    dir.write(path, content)
        .map_err(|e| file_error(relative, "write", &e))
}

pub struct ReadFile {
    pub workspace: PathBuf,
}

impl Tool for ReadFile {
    fn definition(&self) -> chat::Tool {
        definition(
            "read_file",
            "Reads a UTF-8 text file from the agent's workspace directory.",
            string_args(&[("path", Some("relative to the workspace"))]),
        )
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let relative = text_arg(&arguments, "path")?.to_owned();
            let workspace = self.workspace.clone();
            blocking(move || read_confined(&workspace, &relative)).await
        })
    }
}

pub struct WriteFile {
    pub workspace: PathBuf,
}

impl Tool for WriteFile {
    fn definition(&self) -> chat::Tool {
        definition(
            "write_file",
            "Writes a UTF-8 text file in the agent's workspace directory, creating folders.",
            string_args(&[
                ("path", Some("relative to the workspace")),
                ("content", None),
            ]),
        )
    }

    fn idempotent(&self) -> bool {
        // Writing the same content twice leaves the same file.
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let relative = text_arg(&arguments, "path")?.to_owned();
            let content = text_arg(&arguments, "content")?.to_owned();
            let workspace = self.workspace.clone();
            let done = format!("wrote {} bytes to {relative}", content.len());
            blocking(move || write_confined(&workspace, &relative, &content)).await?;
            Ok(done)
        })
    }
}

/// Fetches a URL for the model: GET only, allowlisted hosts, no private addresses unless
/// allowed, no redirects (each hop would need the same checks), a size cap.
pub struct HttpFetch {
    pub settings: HttpFetchSpec,
}

/// Whether `host` matches an allowlist entry (`example.com` or `*.example.com`).
pub fn host_allowed(allow: &[String], host: &str) -> bool {
    let host = host.to_lowercase();
    allow.is_empty()
        || allow
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => *pattern == host,
            })
}

/// Resolves `url`'s host and refuses private, loopback and link-local addresses unless
/// `allow_private`; returns the address to pin the connection to.
pub async fn checked_address(
    url: &reqwest::Url,
    allow_private: bool,
) -> Result<SocketAddr, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http(s) URLs can be fetched".to_owned());
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let first = addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{host} has no address"))?;
    if !allow_private && addrs.iter().any(|a| is_private(a.ip())) {
        return Err(format!(
            "{host} is a private, loopback or link-local address, which this agent may not reach"
        ));
    }
    Ok(first)
}

/// A client pinned to an address already checked, so a second lookup cannot point elsewhere.
pub fn pinned_client(
    url: &reqwest::Url,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let host = url.host_str().unwrap_or_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(host, addr)
        .timeout(timeout)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Reads at most `max` bytes of a body.
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the response: {}", e.without_url()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > max {
            body.truncate(max);
            return Ok((body, true));
        }
    }
    Ok((body, false))
}

impl Tool for HttpFetch {
    fn definition(&self) -> chat::Tool {
        definition(
            "http_fetch",
            "Fetches a web page or API response by URL (GET) and returns its status and text.",
            string_args(&[("url", Some("an http(s) URL"))]),
        )
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let raw = text_arg(&arguments, "url")?;
            let url = reqwest::Url::parse(raw).map_err(|e| format!("invalid URL: {e}"))?;
            let host = url.host_str().ok_or("the URL has no host")?;
            if !host_allowed(&self.settings.allow, host) {
                return Err(format!("{host} is not on this agent's allowlist"));
            }
            let addr = checked_address(&url, self.settings.allow_private).await?;
            let client = pinned_client(&url, addr, Duration::from_secs(30))?;
            let response = client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("fetch failed: {}", e.without_url()))?;
            let status = response.status().as_u16();
            let (body, cut) = read_capped(response, self.settings.max_bytes).await?;
            let mut text = format!("HTTP {status}\n{}", String::from_utf8_lossy(&body));
            if cut {
                text.push_str("\n[truncated]");
            }
            Ok(text)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_args_writes_the_schema_the_tools_declared_by_hand() {
        assert_eq!(
            string_args(&[
                ("path", Some("relative to the workspace")),
                ("content", None),
            ]),
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "relative to the workspace"},
                    "content": {"type": "string"}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn calculator_evaluates_and_reports_errors() {
        assert_eq!(evaluate("2 + 3 * 4"), Ok(14.0));
        assert_eq!(evaluate("(2 + 3) * 4"), Ok(20.0));
        assert_eq!(evaluate("-2 ^ 2"), Ok(4.0));
        assert_eq!(evaluate("2 ^ 3 ^ 2"), Ok(512.0));
        assert_eq!(evaluate("7 % 4 - 1.5"), Ok(1.5));
        assert_eq!(format_number(14.0), "14");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(3.0 * 129.90 + 2.0 * 45.0), "479.7");
        assert_eq!(format_number(1e-9), "0.000000001");
        assert!(evaluate("1 / 0").is_err());
        assert_eq!(
            evaluate("2 +"),
            Err("the expression ends too early".to_owned())
        );
        assert_eq!(
            evaluate("2 x 3"),
            Err("unexpected `x` at position 2".to_owned())
        );
        assert_eq!(evaluate("(1"), Err("missing `)`".to_owned()));
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599_000), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn allowlist_matches_hosts_and_subdomains() {
        let allow = vec!["example.com".to_owned(), "*.wiki.org".to_owned()];
        assert!(host_allowed(&allow, "EXAMPLE.com"));
        assert!(host_allowed(&allow, "en.wiki.org"));
        assert!(!host_allowed(&allow, "wiki.org"));
        assert!(!host_allowed(&allow, "example.com.evil.test"));
        assert!(host_allowed(&[], "anything.test"));
    }
}
