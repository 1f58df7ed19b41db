//! Slows password guessing: after `limit` failures within `window` for an
//! account or for a client address, further attempts from that key are
//! refused until the oldest failure leaves the window. The caller passes
//! the time, so this stays pure and testable.
//!
//! An attempt is counted when it starts ([`LoginThrottle::begin`]), not
//! when its slow password hash has finished: a burst of parallel attempts
//! gets `limit` hashes, not one each. A success gives the account's
//! reservation back. Memory is bounded: keys are capped in length by the
//! caller and in number here.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Keys remembered at most; past it idle keys go, then arbitrary ones.
const MAX_KEYS: usize = 50_000;

#[derive(Default)]
struct Entry {
    failures: VecDeque<Instant>,
    /// Attempts refused during the current lockout and not yet taken.
    refused: u64,
    /// The current lockout's first refusal has been reported. Kept apart
    /// from `refused` so that taking the count mid-lockout (an allowed
    /// attempt finishing late) does not make a later refusal "first" again.
    announced: bool,
}

pub struct LoginThrottle {
    limit: usize,
    window: Duration,
    entries: HashMap<String, Entry>,
}

/// What [`LoginThrottle::begin`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead; the attempt is already counted as a failure until
    /// [`LoginThrottle::succeeded`] says otherwise.
    Allowed,
    /// Refused for this long. `first` is true for the first refusal of a
    /// lockout (the one worth an audit record of its own; the rest are
    /// counted).
    Throttled { wait: Duration, first: bool },
}

impl LoginThrottle {
    pub fn new(limit: usize, window: Duration) -> LoginThrottle {
        LoginThrottle {
            limit,
            window,
            entries: HashMap::new(),
        }
    }

    fn expire(&mut self, key: &str, now: Instant) {
        let window = self.window;
        if let Some(e) = self.entries.get_mut(key) {
            while e.failures.front().is_some_and(|t| now.duration_since(*t) >= window) {
                e.failures.pop_front();
            }
        }
    }

    /// How long `key` must wait before trying again; `None` if it may try now.
    pub fn wait(&mut self, key: &str, now: Instant) -> Option<Duration> {
        self.expire(key, now);
        let limit = self.limit;
        let e = self.entries.get_mut(key)?;
        if e.failures.len() >= limit {
            return Some(self.window - now.duration_since(e.failures[0]));
        }
        // Not locked: the next lockout is a new one.
        e.announced = false;
        // Refusals not yet taken keep the entry until they are.
        if e.failures.is_empty() && e.refused == 0 {
            self.entries.remove(key);
        }
        None
    }

    /// Starts an attempt under all of `keys`: refused if any is locked out,
    /// otherwise counted against each at once.
    pub fn begin(&mut self, keys: &[&str], now: Instant) -> Attempt {
        let wait = keys.iter().filter_map(|k| self.wait(k, now)).max();
        if let Some(wait) = wait {
            let mut first = false;
            for k in keys {
                if let Some(e) = self.entries.get_mut(*k) {
                    if e.failures.len() >= self.limit {
                        e.refused += 1;
                        first |= !std::mem::replace(&mut e.announced, true);
                    }
                }
            }
            return Attempt::Throttled { wait, first };
        }
        for k in keys {
            self.failed(k, now);
        }
        Attempt::Allowed
    }

    /// Attempts refused during `key`'s current lockout, and forgets them.
    pub fn take_refused(&mut self, key: &str) -> u64 {
        self.entries.get_mut(key).map_or(0, |e| std::mem::take(&mut e.refused))
    }

    pub fn failed(&mut self, key: &str, now: Instant) {
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(key) {
            let window = self.window;
            self.entries
                .retain(|_, e| e.failures.back().is_some_and(|t| now.duration_since(*t) < window));
            // A flood of live keys: forget a tenth of them rather than grow,
            // so the sweep runs once per thousands of new keys, not per key.
            if self.entries.len() >= MAX_KEYS {
                let victims: Vec<String> = self.entries.keys().take(MAX_KEYS / 10).cloned().collect();
                for v in victims {
                    self.entries.remove(&v);
                }
            }
        }
        let e = self.entries.entry(key.to_string()).or_default();
        e.failures.push_back(now);
        if e.failures.len() > self.limit {
            e.failures.pop_front();
        }
    }

    /// An attempt under `key` (an account) succeeded: its failures are
    /// forgotten.
    pub fn succeeded(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Gives back the reservation an attempt begun at `at` made under
    /// `key`, without forgetting the key's other failures (an address
    /// that is guessing other accounts stays counted).
    pub fn release(&mut self, key: &str, at: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            if let Some(i) = e.failures.iter().rposition(|t| *t == at) {
                e.failures.remove(i);
            }
            if e.failures.is_empty() {
                self.entries.remove(key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
        assert!(!t.entries.contains_key("bob"));
    }

    /// A burst of parallel attempts is counted as it starts: only `limit`
    /// of them go ahead, and one refusal per lockout is "first".
    #[test]
    fn attempts_are_reserved_before_they_run() {
        let mut t = LoginThrottle::new(5, Duration::from_secs(60));
        let now = Instant::now();
        let outcomes: Vec<Attempt> = (0..100)
            .map(|_| t.begin(&["account:carol", "address:x"], now))
            .collect();
        assert_eq!(outcomes.iter().filter(|a| **a == Attempt::Allowed).count(), 5);
        let firsts = outcomes
            .iter()
            .filter(|a| matches!(a, Attempt::Throttled { first: true, .. }))
            .count();
        assert_eq!(firsts, 1);
        assert_eq!(t.take_refused("account:carol"), 95);
        assert_eq!(t.take_refused("account:carol"), 0);
        // An allowed attempt that finishes mid-lockout takes the count; the
        // refusals after it are still the same lockout, never "first" again.
        let more = (0..10).map(|_| t.begin(&["account:carol", "address:x"], now));
        assert!(more
            .into_iter()
            .all(|a| matches!(a, Attempt::Throttled { first: false, .. })));
        assert_eq!(t.take_refused("account:carol"), 10);
        // Once the window has passed, the next lockout is announced again.
        let later = now + Duration::from_secs(61);
        for _ in 0..5 {
            assert_eq!(t.begin(&["account:carol", "address:x"], later), Attempt::Allowed);
        }
        assert!(matches!(
            t.begin(&["account:carol", "address:x"], later),
            Attempt::Throttled { first: true, .. }
        ));
        // A success gives the account back; the address keeps the others.
        let mut t = LoginThrottle::new(2, Duration::from_secs(60));
        assert_eq!(t.begin(&["account:a", "address:x"], now), Attempt::Allowed);
        t.succeeded("account:a");
        t.release("address:x", now);
        assert!(t.is_empty());
    }

    #[test]
    fn keys_are_bounded_in_number() {
        let mut t = LoginThrottle::new(5, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 1000) {
            t.failed(&format!("address:{i}"), now);
        }
        assert!(t.len() <= MAX_KEYS);
    }
}
