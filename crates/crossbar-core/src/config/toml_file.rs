//! Reading a TOML file the way `crossbar.toml` and agent specs both do: errors name
//! `file:line: key: message` and never a value (a secret may sit under a misspelled key),
//! `${VAR}` / `${VAR:-default}` are expanded after parsing in the fields each caller allows, and
//! later checks place their messages at a value's span.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;

use super::ConfigError;
use super::env::expand_vars;

/// A file's text, read for [`TomlSource`]; the error names the file.
pub fn read_toml(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

/// A TOML text and where it came from (a path or a `<description>`), to place messages.
#[derive(Clone, Copy, Debug)]
pub struct TomlSource<'a> {
    text: &'a str,
    origin: &'a str,
}

impl<'a> TomlSource<'a> {
    pub fn new(text: &'a str, origin: &'a str) -> Self {
        Self { text, origin }
    }

    /// Where the text came from.
    pub fn origin(&self) -> &'a str {
        self.origin
    }

    /// Deserializes the text; a syntax or type error becomes `file:line: key: message` without
    /// the offending value.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(toml::Deserializer::new(self.text))
            .map_err(|e| parse_error(self.text, self.origin, &e))
    }

    /// The 1-based line of a byte offset in the text.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(0, |before| before.bytes().filter(|b| *b == b'\n').count())
            + 1
    }

    /// `file:line: key: message`, at a spanned value.
    pub fn error_at<T>(
        &self,
        at: &Spanned<T>,
        key: &str,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError(format!(
            "{}:{}: {key}: {message}",
            self.origin,
            self.line_of(at.span().start)
        ))
    }

    /// The value with `${VAR}` / `${VAR:-default}` expanded; an unset variable without a
    /// default is an error at the value's line and key, naming the variable only.
    pub fn expand<T: AsRef<str>>(
        &self,
        value: &Spanned<T>,
        key: &str,
    ) -> Result<String, ConfigError> {
        expand_vars(value.get_ref().as_ref()).map_err(|message| self.error_at(value, key, message))
    }

    /// [`Self::expand`] into the value itself.
    pub fn expand_in_place<T: AsRef<str> + From<String>>(
        &self,
        value: &mut Spanned<T>,
        key: &str,
    ) -> Result<(), ConfigError> {
        let expanded = self.expand(value, key)?;
        *value.get_mut() = T::from(expanded);
        Ok(())
    }
}

/// `file:line: key: message` for a TOML or type error. The message is rebuilt from the error's
/// span, key path and kind only: toml prints the offending source line and serde quotes the
/// value (`invalid type: string "sk-...", expected u64`), and either may be a secret typed under
/// a misspelled key or in the wrong place.
fn parse_error(
    source: &str,
    origin: &str,
    error: &serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let inner = error.inner();
    let mut key = String::new();
    let mut last = "";
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            // `$__serde_spanned_private_*` are the fields `Spanned` reads, not the file's keys.
            serde_path_to_error::Segment::Map { key: name } if !name.starts_with("$__") => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
                last = name;
            }
            _ => {}
        }
    }
    let (unknown_field, message) = value_free_message(inner.message());
    if let Some(field) = unknown_field
        && field != last
    {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(&field);
    }
    let start = inner.span().map(|span| span.start.min(source.len()));
    let line = start.map(|start| {
        let before = source.as_bytes().get(..start).unwrap_or_default();
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        if key.is_empty() {
            // A syntax error: toml knows no path, but the line's own key is before its `=`.
            key = key_before_equals(source.as_bytes().get(line_start..start).unwrap_or_default());
        }
        before.iter().filter(|b| **b == b'\n').count() + 1
    });
    let at = match line {
        Some(line) => format!("{origin}:{line}"),
        None => origin.to_owned(),
    };
    if key.is_empty() {
        ConfigError(format!("{at}: {message}"))
    } else {
        ConfigError(format!("{at}: {key}: {message}"))
    }
}

/// The key of a `key = value` line, from the text before the error's column, if that holds a
/// `=` and the key is made of key characters only (never part of a value).
fn key_before_equals(line: &[u8]) -> String {
    let Some(equals) = line.iter().position(|b| *b == b'=') else {
        return String::new();
    };
    let key = String::from_utf8_lossy(&line[..equals]).trim().to_owned();
    let key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ');
    if key.chars().all(key_char) {
        key
    } else {
        String::new()
    }
}

/// A toml/serde error message without the value it quotes, and the name of an unknown field
/// (a key, so fit to print, and better shown in the key path). Values appear in serde's
/// `invalid type`/`invalid value` (`string "…"`, ``integer `5` ``) and `unknown variant `…``
/// messages; toml's own messages name only keys, types and expected tokens.
fn value_free_message(message: &str) -> (Option<String>, String) {
    let message = message
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let backticked = |rest: &str| -> Option<(String, String)> {
        let rest = rest.strip_prefix('`')?;
        let end = rest.find('`')?;
        Some((rest[..end].to_owned(), rest[end + 1..].to_owned()))
    };
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some((field, after)) = backticked(rest)
    {
        return (Some(field), format!("unknown field{after}"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        // The variant is a value; its end is the last "`, expected" or the end.
        let after = rest
            .rfind("`, expected")
            .map_or(String::new(), |end| rest[end + 1..].to_owned());
        return (None, format!("unknown variant{after}"));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // `rest` is `<what it found>, expected <what it wanted>`; the found part names a
            // kind and perhaps the value (`string "…"`, ``integer `5` ``): keep the kind.
            let expected = rest
                .rfind(", expected ")
                .map_or(String::new(), |at| rest[at..].to_owned());
            let found = rest.split([' ', ',']).next().unwrap_or_default();
            let kind = match found {
                "floating" => "floating point",
                "unit" => "unit value",
                "byte" => "byte array",
                "string" | "integer" | "boolean" | "character" | "sequence" | "map" | "enum"
                | "Option" | "newtype" => found,
                _ => "value",
            };
            return (None, format!("{prefix}{kind}{expected}"));
        }
    }
    (None, message)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let source = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\nbogus = 1\n";
        let err = Config::from_toml(source, "x.toml").unwrap_err().0;
        assert!(
            err.starts_with("x.toml:5: providers[0].bogus: unknown field, expected one of "),
            "{err}"
        );
        let err = Config::from_toml("bogus = 1\n", "x.toml").unwrap_err().0;
        assert!(
            err.starts_with("x.toml:1: bogus: unknown field, expected one of `server`, "),
            "{err}"
        );
    }

    /// Issue 18 item 12: a secret under a misspelled key, or of the wrong type, used to be
    /// printed back (toml quotes the source line, serde the value); errors now name the file,
    /// line and key only.
    #[test]
    fn parse_errors_never_print_values() {
        let secret = "sk-live-0123456789abcdef";
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\n";
        let cases = [
            (
                format!("api_kye = \"{secret}\"\n"),
                "s.toml:4: providers[0].api_kye: unknown field, expected one of `name`, `kind`, `endpoint`, `api_key`, `api_version`, `auth`, `headers`, `cloud`, `region`, `dialect`, `sim`, `max_tokens_field`, `api`, `project`, `location`, `aws`, `google_credentials`, `image_fetch`, `timeouts`",
            ),
            (
                format!("api_key = \"k\"\naws = {{ acces_key_id = \"{secret}\" }}\n"),
                "s.toml:5: providers[0].aws.acces_key_id: unknown field, expected one of `access_key_id`, `secret_access_key`, `session_token`, `profile`",
            ),
            (
                format!("api_key = \"k\"\ncloud = {{ x = \"{secret}\" }}\n"),
                "s.toml:5: providers[0].cloud: invalid type: map, expected a string",
            ),
            (
                format!("api_key = \"k\"\nmax_tokens_field = \"{secret}\"\n"),
                "s.toml:5: providers[0].max_tokens_field: unknown variant, expected `max_tokens` or `max_completion_tokens`",
            ),
            (
                format!("api_key = \"k\"\nauth = \"{secret}\"\n"),
                "s.toml:5: providers[0].auth: unknown variant, expected `api-key` or `bearer`",
            ),
            (
                format!("api_key = \"k\"\n[server]\nmax_body_bytes = \"{secret}\"\n"),
                "s.toml:6: server.max_body_bytes: invalid type: string, expected usize",
            ),
            (
                format!("api_key = \"k\"\n[server]\napi_keys = \"{secret}\"\n"),
                "s.toml:6: server.api_keys: invalid type: string, expected a sequence",
            ),
            (
                format!("api_key = \"k\"\n[store]\nurl = [\"{secret}\"]\n"),
                "s.toml:6: store.url: invalid type: sequence, expected a string",
            ),
            (
                format!("api_key = \"k\"\n[admin]\ntoken = {{ value = \"{secret}\" }}\n"),
                "s.toml:6: admin.token: invalid type: map, expected a string",
            ),
            (
                format!("api_key = \"k\"\n[routes.default]\nobjective = \"{secret}\"\n"),
                "s.toml:6: routes.default.objective: unknown variant, expected one of `cost`, `latency`, `balanced`, `order`, `round-robin`",
            ),
            (
                "api_key = \"k\"\n[routes.default]\nattempts = 123456789012345\n".to_owned(),
                "s.toml:6: routes.default.attempts: invalid value: integer, expected u32",
            ),
            // Syntax errors: toml printed the whole line, value included.
            (
                format!("api_key = \"{secret}\n"),
                "s.toml:4: api_key: invalid basic string",
            ),
            (
                format!("api_key = {secret}\n"),
                "s.toml:4: api_key: invalid string; expected `\"`, `'`",
            ),
            (
                format!("api_key = \"k\"\napi_key = \"{secret}\"\n"),
                "s.toml:5: duplicate key `api_key` in table `providers`",
            ),
        ];
        for (extra, expected) in cases {
            let err = Config::from_toml(&format!("{base}{extra}"), "s.toml")
                .unwrap_err()
                .0;
            assert_eq!(err, expected, "{extra}");
            assert!(!err.contains("sk-live"), "{err}");
        }
    }
}
