//! Deadlines on the tokio clock.

use std::time::Duration;

use tokio::time::Instant;

/// `start + d`, or about 30 years after `start` when that is past what an `Instant` holds (as
/// `tokio::time::sleep` does for a wait too long to add).
pub(crate) fn instant_after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365 * 30))
}
