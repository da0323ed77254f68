//! The guardrails over a streamed answer's text: a sliding window. The last [`STREAM_WINDOW`]
//! bytes of text are held back, so a finding split across deltas (`bob@exa` + `mple.com`) is
//! whole before any of it leaves; what comes before the window is checked, masked and released.
//! A finding that reaches into the window is held with it. A `block` ends the stream (the
//! caller sends the dialect's error event, never a clean end).
//!
//! Bound: a finding longer than the window (a PEM private key) can be cut at the window's edge,
//! and its first part released as it was; every built-in pattern but private keys is shorter.

use std::sync::Arc;

use super::{Blocked, Findings, Rules, Verdict, verdict};

/// Bytes of text held back: longer than any built-in detector's match but private keys.
pub const STREAM_WINDOW: usize = 256;

/// One stream's window.
#[derive(Debug)]
pub struct StreamGuard {
    rules: Arc<Rules>,
    held: String,
    window: usize,
}

impl StreamGuard {
    pub fn new(rules: Arc<Rules>) -> Self {
        Self::with_window(rules, STREAM_WINDOW)
    }

    /// A guard holding back `window` bytes (tests use small ones).
    pub fn with_window(rules: Arc<Rules>, window: usize) -> Self {
        Self {
            rules,
            held: String::new(),
            window,
        }
    }

    /// Takes one text delta: the text now safe to send (masked; empty while the window fills)
    /// and what was found in it, or the block.
    pub fn push(&mut self, delta: &str) -> Result<(String, Findings), Blocked> {
        self.held.push_str(delta);
        let Some(mut release) = self.held.len().checked_sub(self.window) else {
            return Ok((String::new(), Findings::default()));
        };
        while !self.held.is_char_boundary(release) {
            release -= 1;
        }
        let found = self.rules.scan(&self.held);
        // A finding across the edge stays whole in the window.
        if let Some(start) = found
            .iter()
            .filter(|(range, ..)| range.start < release && range.end > release)
            .map(|(range, ..)| range.start)
            .min()
        {
            release = start;
        }
        let released: Vec<_> = found
            .into_iter()
            .filter(|(range, ..)| range.end <= release)
            .collect();
        let out = take(&self.held[..release], &released)?;
        self.held.drain(..release);
        Ok(out)
    }

    /// Releases all that is held (before a non-text event, and at the end).
    pub fn flush(&mut self) -> Result<(String, Findings), Blocked> {
        let held = std::mem::take(&mut self.held);
        let found = self.rules.scan(&held);
        take(&held, &found)
    }
}

fn take(text: &str, found: &[super::Found]) -> Result<(String, Findings), Blocked> {
    match verdict(text, found) {
        Verdict::Pass { text, findings } => Ok((text.into_owned(), findings)),
        Verdict::Block { detector, findings } => Err(Blocked { detector, findings }),
    }
}
