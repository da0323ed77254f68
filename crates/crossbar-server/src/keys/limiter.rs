//! The one interface a key's limits are counted through, whichever engine counts them: this
//! process ([`super::local::Local`]) or Redis shared by every replica
//! ([`super::redis::SharedLimiter`], which falls back to a local one it keeps in step).

use std::time::Duration;

use crossbar_core::error::{ErrorKind, Origin};
use crossbar_core::pricing::format_usd;
use crossbar_core::{Error, Result};
use crossbar_store::KeyLimits;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::calendar::Windows;

/// Where a key's requests per minute, tokens per minute and budgets are counted.
pub(crate) trait Limiter: Send + Sync + std::fmt::Debug {
    /// Counts a request against `rpm`, refusing it when the minute is full.
    fn admit_request(&self, rpm: u64, now: Instant) -> BoxFuture<'_, Result<()>>;

    /// Refuses when the last minute's tokens reached tokens-per-minute, then reserves
    /// `estimate` picodollars against every budget. Also says what the budgets had left
    /// before this request (the most it may cost), when the key has any. `now_ms` is this
    /// host's clock; a shared limiter uses the shared one.
    fn reserve(
        &self,
        limits: KeyLimits,
        estimate: u64,
        now: Instant,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<(Ticket, Option<u64>)>>;

    /// Replaces a reservation with the real cost and counts the request's tokens.
    fn settle(&self, ticket: Ticket, cost: u64, tokens: u64);

    /// What the key may still spend on one request before a budget is hit, in picodollars,
    /// as this replica last knew it.
    fn remaining(&self, limits: KeyLimits, now_ms: i64) -> Option<u64>;
}

/// Whose limits a limiter counts: a key's, or its team's (which every key of the team shares).
/// Decides where the spend so far is read from the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Key,
    Team,
}

/// What a reservation holds, and where.
#[derive(Debug)]
pub(crate) enum Ticket {
    /// In this process's counters.
    Local { estimate: u64, windows: Windows },
    /// In Redis, as the sorted-set member `member`.
    Shared {
        member: String,
        estimate: u64,
        windows: Windows,
    },
}

fn limited(message: String, code: &str, retry_after: Duration, quota: bool) -> Error {
    Error {
        kind: if quota {
            ErrorKind::QuotaExceeded
        } else {
            ErrorKind::RateLimited
        },
        origin: Origin::Client,
        retryable: false,
        message,
        param: None,
        code: Some(code.to_owned()),
        upstream_status: None,
        retry_after: Some(retry_after.max(Duration::from_secs(1))),
    }
}

pub(crate) fn rpm_error(rpm: u64, wait: Duration) -> Error {
    limited(
        format!("Rate limit reached: this key allows {rpm} requests per minute."),
        "rate_limit_requests",
        wait,
        false,
    )
}

pub(crate) fn tpm_error(tpm: u64, wait: Duration) -> Error {
    limited(
        format!("Rate limit reached: this key allows {tpm} tokens per minute."),
        "rate_limit_tokens",
        wait,
        false,
    )
}

/// A budget window: day (0), month (1) or total (2), as the counters index them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Day,
    Month,
    Total,
}

impl Window {
    pub(crate) const ALL: [Self; 3] = [Self::Day, Self::Month, Self::Total];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn budget(self, limits: &KeyLimits) -> Option<u64> {
        match self {
            Self::Day => limits.budget_day_pusd,
            Self::Month => limits.budget_month_pusd,
            Self::Total => limits.budget_total_pusd,
        }
    }

    /// The first ms of the window's ledger, for reading what was spent in it.
    pub(crate) fn since(self, windows: Windows) -> i64 {
        match self {
            Self::Day => windows.day_start,
            Self::Month => windows.month_start,
            Self::Total => 0,
        }
    }
}

/// Over a budget: says which, how much is committed, and when it resets (never, for total).
pub(crate) fn budget_error(
    window: Window,
    budget: u64,
    committed: u64,
    estimate: u64,
    windows: Windows,
    now_ms: i64,
) -> Error {
    let (label, resets_at) = match window {
        Window::Day => ("daily", Some(windows.day_end())),
        Window::Month => ("monthly", Some(windows.month_end())),
        Window::Total => ("total", None),
    };
    let message = format!(
        "Budget exceeded: this key's {label} budget is ${}; ${} is spent or reserved and this request is estimated at ${}.",
        format_usd(budget),
        format_usd(committed),
        format_usd(estimate),
    );
    let retry = resets_at.map_or(Duration::from_secs(86_400), |at| {
        Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0))
    });
    let mut error = limited(message, "budget_exceeded", retry, true);
    if resets_at.is_none() {
        // A total budget never resets: waiting will not help.
        error.retry_after = None;
    }
    error
}

pub(crate) fn has_budget(limits: &KeyLimits) -> bool {
    Window::ALL.iter().any(|w| w.budget(limits).is_some())
}
