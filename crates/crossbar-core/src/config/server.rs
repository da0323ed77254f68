//! `[server]`: where the gateway listens, who may call it, and the limits that keep slow or
//! greedy clients from holding it.

use serde::Deserialize;
use toml::Spanned;

use super::Secret;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
const DEFAULT_SHUTDOWN_GRACE_S: u64 = 30;
/// `server.header_read_timeout_s` unless set.
const DEFAULT_HEADER_READ_TIMEOUT_S: u64 = 10;
/// `server.body_read_timeout_s` unless set.
const DEFAULT_BODY_READ_TIMEOUT_S: u64 = 30;
/// `server.max_connections` unless set.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Option<String>,
    /// Keys clients must present as `Authorization: Bearer`; none means an open gateway.
    #[serde(default)]
    pub api_keys: Vec<Spanned<Secret>>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_grace_s: Option<u64>,
    /// Seconds a client has to send a request's headers (and an idle keep-alive connection
    /// lives): slow-header clients must not hold connections forever.
    pub header_read_timeout_s: Option<u64>,
    /// Longest wait, in seconds, for the next piece of a request body.
    pub body_read_timeout_s: Option<u64>,
    /// Connections served at once; new ones past it get a 503. Keep it under the process's
    /// file-descriptor limit (each connection may also hold an upstream one).
    pub max_connections: Option<usize>,
}

impl ServerConfig {
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }

    pub fn shutdown_grace_s(&self) -> u64 {
        self.shutdown_grace_s.unwrap_or(DEFAULT_SHUTDOWN_GRACE_S)
    }

    pub fn header_read_timeout_s(&self) -> u64 {
        self.header_read_timeout_s
            .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_S)
            .max(1)
    }

    pub fn body_read_timeout_s(&self) -> u64 {
        self.body_read_timeout_s
            .unwrap_or(DEFAULT_BODY_READ_TIMEOUT_S)
            .max(1)
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .max(1)
    }
}
