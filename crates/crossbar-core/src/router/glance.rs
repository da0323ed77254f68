//! What a routing decision reads of each deployment, kept beside its locked live state so that
//! ranking 1,000 deployments takes no lock: every change to the live state goes through
//! [`LiveGuard`], which publishes these figures before it releases the lock.
//!
//! Each figure is one atomic word, so a decision racing an update may see some figures from
//! before it and some from after; ranking is a heuristic over moving averages, and a decision
//! that follows an update (in one task, or after the update's lock was released) sees all of it.

use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Live, expectations};

/// `None`: a NaN payload no arithmetic produces.
const NONE: u64 = u64::MAX;

fn store(slot: &AtomicU64, value: Option<f64>) {
    slot.store(value.map_or(NONE, f64::to_bits), Ordering::Relaxed);
}

fn load(slot: &AtomicU64) -> Option<f64> {
    let bits = slot.load(Ordering::Relaxed);
    (bits != NONE).then(|| f64::from_bits(bits))
}

/// The live figures ranking uses, published on every change.
#[derive(Debug)]
pub(crate) struct Glance {
    calibration: AtomicU64,
    output_tokens: AtomicU64,
    /// Expected milliseconds, for non-streams then streams.
    expected_ms: [AtomicU64; 2],
    /// Share of failing calls, for non-streams then streams.
    failure: [AtomicU64; 2],
}

/// One deployment's figures for one decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    pub calibration: Option<f64>,
    pub output_tokens: Option<f64>,
    pub expected_ms: Option<f64>,
    pub failure: f64,
}

impl Glance {
    pub fn of(live: &Live) -> Self {
        let glance = Self {
            calibration: AtomicU64::new(NONE),
            output_tokens: AtomicU64::new(NONE),
            expected_ms: [AtomicU64::new(NONE), AtomicU64::new(NONE)],
            failure: [AtomicU64::new(NONE), AtomicU64::new(NONE)],
        };
        glance.publish(live);
        glance
    }

    fn publish(&self, live: &Live) {
        store(&self.calibration, live.stats.calibration);
        store(&self.output_tokens, live.stats.output_tokens);
        for stream in [false, true] {
            let (expected, failure) = expectations(live, stream);
            store(&self.expected_ms[usize::from(stream)], expected);
            store(&self.failure[usize::from(stream)], Some(failure));
        }
    }

    pub fn read(&self, stream: bool) -> Seen {
        Seen {
            calibration: load(&self.calibration),
            output_tokens: load(&self.output_tokens),
            expected_ms: load(&self.expected_ms[usize::from(stream)]),
            failure: load(&self.failure[usize::from(stream)]).unwrap_or(0.0),
        }
    }

    pub fn calibration(&self) -> Option<f64> {
        load(&self.calibration)
    }
}

/// A deployment's locked live state. Written through, it publishes the [`Glance`] when it is
/// dropped, before the lock is released.
pub(crate) struct LiveGuard<'a> {
    live: MutexGuard<'a, Live>,
    glance: &'a Glance,
    changed: bool,
}

impl<'a> LiveGuard<'a> {
    pub fn new(live: MutexGuard<'a, Live>, glance: &'a Glance) -> Self {
        Self {
            live,
            glance,
            changed: false,
        }
    }
}

impl Deref for LiveGuard<'_> {
    type Target = Live;

    fn deref(&self) -> &Live {
        &self.live
    }
}

impl DerefMut for LiveGuard<'_> {
    fn deref_mut(&mut self) -> &mut Live {
        self.changed = true;
        &mut self.live
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        if self.changed {
            self.glance.publish(&self.live);
        }
    }
}
