//! Crossbar's model layer: canonical chat and embedding types, wire dialects, providers, the
//! router that picks a deployment per call, and the configuration that describes them all.
//! Nothing here knows about the HTTP server or the CLI.

pub mod auth;
pub mod cache;
pub mod catalog;
pub mod chat;
pub mod client;
pub mod config;
pub mod dialects;
pub mod embeddings;
pub mod error;
pub mod framing;
pub mod guardrails;
pub mod images;
pub mod ingress;
pub mod kinds;
pub mod pricing;
pub mod provider;
pub mod reasoning_memory;
pub mod router;
pub mod runs;
pub mod shared_kv;
pub mod trace;

pub use client::{ChatStream, ModelClient};
pub use error::{Error, ErrorKind, Origin, Result};
