//! Counted permits for things a client holds open (live log streams, and later event streams):
//! at most `per_key` at once for one key (a user) and `total` in all. A permit is given back
//! when it is dropped, that is when the stream ends or its client goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Held {
    total: usize,
    by_key: HashMap<String, usize>,
}

pub struct Permits {
    per_key: usize,
    total: usize,
    held: Arc<Mutex<Held>>,
}

/// One thing held open.
pub struct Permit {
    key: String,
    held: Arc<Mutex<Held>>,
}

impl Permits {
    pub fn new(per_key: usize, total: usize) -> Permits {
        Permits { per_key, total, held: Arc::default() }
    }

    /// A permit for `key`, or `None` if it or everyone holds as many as allowed.
    pub fn try_acquire(&self, key: &str) -> Option<Permit> {
        let mut held = self.held.lock().ok()?;
        let mine = held.by_key.get(key).copied().unwrap_or(0);
        if mine >= self.per_key || held.total >= self.total {
            return None;
        }
        held.total += 1;
        *held.by_key.entry(key.to_owned()).or_default() += 1;
        Some(Permit { key: key.to_owned(), held: self.held.clone() })
    }

    pub fn limits(&self) -> (usize, usize) {
        (self.per_key, self.total)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            held.total = held.total.saturating_sub(1);
            if let Some(count) = held.by_key.get_mut(&self.key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    held.by_key.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_capped_per_key_and_in_all_and_given_back() {
        let permits = Permits::new(2, 3);
        let a1 = permits.try_acquire("a").unwrap();
        let _a2 = permits.try_acquire("a").unwrap();
        assert!(permits.try_acquire("a").is_none());
        let _b1 = permits.try_acquire("b").unwrap();
        assert!(permits.try_acquire("c").is_none(), "three in all");
        drop(a1);
        assert!(permits.try_acquire("a").is_some());
    }
}
