//! `${VAR}` and `${VAR:-default}`: the expansion syntax shared by `crossbar.toml` and agent
//! specs (through [`TomlSource::expand`]), and the gateway config's fields that take it.
//! Expansion runs after parsing, so a secret never shows in a parse error.

use super::{Config, ConfigError, TomlSource};

impl Config {
    /// Expands the fields that take `${VAR}`: provider endpoints, API keys and headers, the
    /// server's API keys, the store and Redis URLs and the admin token; the first failure, in
    /// that order, is reported.
    pub(super) fn expand_env(&mut self) -> Result<(), ConfigError> {
        let here = TomlSource::new(&self.source.0, &self.origin);
        for (i, provider) in self.providers.iter_mut().enumerate() {
            if let Some(endpoint) = &mut provider.endpoint {
                here.expand_in_place(endpoint, &format!("providers[{i}].endpoint"))?;
            }
            if let Some(key) = &mut provider.api_key {
                here.expand_in_place(key, &format!("providers[{i}].api_key"))?;
            }
            for (name, value) in &mut provider.headers {
                here.expand_in_place(value, &format!("providers[{i}].headers.{name}"))?;
            }
        }
        for (i, key) in self.server.api_keys.iter_mut().enumerate() {
            here.expand_in_place(key, &format!("server.api_keys[{i}]"))?;
        }
        for (value, key) in [
            (&mut self.store.url, "store.url"),
            (&mut self.redis.url, "redis.url"),
            (&mut self.admin.token, "admin.token"),
        ] {
            if let Some(value) = value {
                here.expand_in_place(value, key)?;
            }
        }
        Ok(())
    }
}

/// `${VAR}` and `${VAR:-default}` replaced from the environment; an empty variable counts as
/// unset. A missing variable without a default is an error naming the variable, never a value.
pub fn expand_vars(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${`".to_owned())?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expr, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(found), _) => out.push_str(&found),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_expanded_and_missing_env_is_located_without_leaking() {
        let source = "[[providers]]\nname = \"a\"\nkind = \"openai-compatible\"\nendpoint = \"${CROSSBAR_TEST_UNSET_URL:-http://localhost:1}\"\napi_key = \"${CROSSBAR_TEST_UNSET_KEY}\"\n";
        let err = Config::from_toml(source, "e.toml").unwrap_err().0;
        assert_eq!(
            err,
            "e.toml:5: providers[0].api_key: environment variable `CROSSBAR_TEST_UNSET_KEY` is not set"
        );
        assert_eq!(
            expand_vars("a${CROSSBAR_TEST_UNSET_URL:-b}c").unwrap(),
            "abc"
        );
    }
}
