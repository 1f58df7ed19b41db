//! Slows password guessing: after `limit` failures within `window` for an
//! account or for a client address, further attempts from that key are
//! refused until the oldest failure leaves the window. The caller passes
//! the time, so this stays pure and testable.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct LoginThrottle {
    limit: usize,
    window: Duration,
    failures: HashMap<String, VecDeque<Instant>>,
}

impl LoginThrottle {
    pub fn new(limit: usize, window: Duration) -> LoginThrottle {
        LoginThrottle {
            limit,
            window,
            failures: HashMap::new(),
        }
    }

    /// How long `key` must wait before trying again; `None` if it may try now.
    pub fn wait(&mut self, key: &str, now: Instant) -> Option<Duration> {
        let q = self.failures.get_mut(key)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            q.pop_front();
        }
        if q.is_empty() {
            self.failures.remove(key);
            return None;
        }
        (q.len() >= self.limit).then(|| self.window - now.duration_since(q[0]))
    }

    pub fn failed(&mut self, key: &str, now: Instant) {
        // Bound memory under a flood of distinct keys: forget the idle ones.
        if self.failures.len() > 100_000 {
            let window = self.window;
            self.failures
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = self.failures.entry(key.to_string()).or_default();
        q.push_back(now);
        if q.len() > self.limit {
            q.pop_front();
        }
    }

    pub fn succeeded(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_then_releases() {
        let mut t = LoginThrottle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(t.wait("alice", t0), None, "attempt {i}");
            t.failed("alice", t0 + Duration::from_secs(i));
        }
        let w = t.wait("alice", t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(w, Duration::from_secs(50));
        assert_eq!(t.wait("bob", t0), None, "other keys unaffected");
        assert_eq!(t.wait("alice", t0 + Duration::from_secs(61)), None);
        t.failed("bob", t0);
        t.succeeded("bob");
        assert!(!t.failures.contains_key("bob"));
    }
}
