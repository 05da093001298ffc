//! Time as the bench counts it: nanoseconds since the run started, in a `u64`.
//!
//! Below every stage: the sender stamps probes with it, matching and recording
//! compare it, the report turns it back into seconds.

use std::time::{Duration, Instant};

/// `d` in nanoseconds, saturating (no run comes near 584 years).
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since `start`.
#[inline]
pub(crate) fn since(start: Instant) -> u64 {
    nanos(start.elapsed())
}
