//! Per-tenant ingestion rate limiting: one token bucket per tenant, counted in bytes, with the
//! semantics of Go's `golang.org/x/time/rate` that Pyroscope's distributor uses. A bucket starts
//! full, refills at the tenant's rate up to its burst, and a request takes all the tokens it
//! needs or none; a request larger than the burst can never pass.

use std::time::Instant;

use hashbrown::HashMap;
use parking_lot::Mutex;

/// Buckets kept before idle (full) ones are dropped; a full bucket is the same as a new one.
const PRUNE_ABOVE: usize = 4096;

/// One token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second.
    rate: f64,
    /// Capacity.
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: usize, now: Instant) -> Self {
        Self { rate: rate.max(0.0), burst: burst as f64, tokens: burst as f64, last: now }
    }

    /// Refills for the time since the last call (never backwards) and caps at the burst.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if now > self.last {
            self.last = now;
        }
    }

    /// Applies a changed rate or burst (a reloaded override): tokens earned so far are kept at
    /// the old rate, then capped by the new burst.
    pub fn set_limits(&mut self, rate: f64, burst: usize, now: Instant) {
        let (rate, burst) = (rate.max(0.0), burst as f64);
        if rate != self.rate || burst != self.burst {
            self.advance(now);
            self.rate = rate;
            self.burst = burst;
            self.tokens = self.tokens.min(burst);
        }
    }

    /// Takes `n` tokens if they are all there; otherwise takes none.
    pub fn allow_n(&mut self, n: usize, now: Instant) -> bool {
        let n = n as f64;
        if n > self.burst {
            return false;
        }
        self.advance(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now` (it then carries no state worth keeping).
    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// The buckets of every tenant.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `tenant` may add `bytes` now under `rate` bytes/s and `burst` bytes; the tenant's
    /// limits are passed on every call so a reloaded override applies at once.
    pub fn allow(&self, tenant: &str, bytes: usize, rate: f64, burst: usize, now: Instant) -> bool {
        let mut buckets = self.buckets.lock();
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| !b.is_full_at(now));
        }
        let bucket = buckets.entry_ref(tenant).or_insert_with(|| TokenBucket::new(rate, burst, now));
        bucket.set_limits(rate, burst, now);
        bucket.allow_n(bytes, now)
    }
}

/// Byte counts the way Go's `humanize.IBytes` prints them ("4.0 MiB", "512 B"), for
/// Pyroscope's wording of the rate-limit error.
pub fn ibytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1024f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let v = (n as f64 / 1024f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    let unit = UNITS.get(e).copied().unwrap_or("B");
    if v < 10.0 { format!("{v:.1} {unit}") } else { format!("{v:.0} {unit}") }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn starts_full_and_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(4.0 * MIB as f64, 2 * MIB, t0);
        assert!(b.allow_n(2 * MIB, t0), "a new bucket holds the whole burst");
        assert!(!b.allow_n(1, t0), "then it is empty");
        // 4 MiB/s: after 100 ms there are 0.4 MiB.
        let t1 = t0 + Duration::from_millis(100);
        assert!(!b.allow_n(MIB / 2, t1), "0.5 MiB is more than the 0.4 MiB refilled");
        assert!(b.allow_n(MIB * 4 / 10 - 16, t1), "what was refilled can be taken");
        // Refill is capped at the burst however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(b.allow_n(2 * MIB, t2));
        assert!(!b.allow_n(1, t2));
    }

    #[test]
    fn refused_requests_take_nothing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 100, t0);
        assert!(!b.allow_n(101, t0), "over the burst is always refused");
        assert!(b.allow_n(60, t0));
        assert!(!b.allow_n(41, t0), "41 > 40 left");
        assert!(b.allow_n(40, t0), "the refusal did not consume tokens");
    }

    #[test]
    fn oversize_is_refused_even_when_full() {
        let t0 = Instant::now();
        let l = RateLimiter::new();
        assert!(!l.allow("t", 2 * MIB + 1, 1e12, 2 * MIB, t0 + Duration::from_secs(100)));
        assert!(l.allow("t", 2 * MIB, 1e12, 2 * MIB, t0));
    }

    #[test]
    fn tenants_are_independent_and_limits_follow_overrides() {
        let t0 = Instant::now();
        let l = RateLimiter::new();
        assert!(l.allow("a", 1000, 10.0, 1000, t0));
        assert!(!l.allow("a", 1, 10.0, 1000, t0));
        assert!(l.allow("b", 1000, 10.0, 1000, t0), "b has its own bucket");
        // A raised rate applies from the change on: 1 s at 1000 B/s refills 1000.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.allow("a", 10, 1000.0, 1000, t1), "10 tokens earned at the old rate");
        let t2 = t1 + Duration::from_millis(500);
        assert!(l.allow("a", 500, 1000.0, 1000, t2));
        // A lowered burst caps the tokens.
        let t3 = t2 + Duration::from_secs(10);
        assert!(!l.allow("a", 200, 1000.0, 100, t3));
        assert!(l.allow("a", 100, 1000.0, 100, t3));
    }

    #[test]
    fn humanized_bytes() {
        assert_eq!(ibytes(4 * MIB as u64), "4.0 MiB");
        assert_eq!(ibytes(2_621_440), "2.5 MiB");
        assert_eq!(ibytes(5), "5 B");
        assert_eq!(ibytes(1000), "1000 B");
        assert_eq!(ibytes(1024), "1.0 KiB");
        assert_eq!(ibytes(20 * MIB as u64), "20 MiB");
    }
}
