//! A one-entry memo for work a gateway repeats with the same input exchange after exchange: a
//! route mostly serves one model, a caller presents the same API key. No host calls.

use std::fmt;

/// The value computed for the last key asked for. A key longer than the memo's bound is not
/// kept (its value is computed each time it is asked for), so that a key as long as a request
/// body does not stay in memory. Its `Debug` shows no key: keys can be credentials.
#[derive(Clone)]
pub struct LastKey<V> {
    max_key: usize,
    /// The last key (`None` when it was over the bound) and its value.
    last: Option<(Option<String>, V)>,
}

impl<V> LastKey<V> {
    /// An empty memo that keeps keys of up to `max_key` bytes.
    pub const fn new(max_key: usize) -> Self {
        LastKey {
            max_key,
            last: None,
        }
    }

    /// The value of `key`: the one kept when `key` is the last key asked for, else
    /// `compute(key)`, which is then kept.
    pub fn get(&mut self, key: &str, compute: impl FnOnce(&str) -> V) -> &V {
        if !matches!(&self.last, Some((Some(last), _)) if last == key) {
            self.last = None;
        }
        let max_key = self.max_key;
        let (_, value) = self.last.get_or_insert_with(|| {
            let kept = (key.len() <= max_key).then(|| key.to_string());
            (kept, compute(key))
        });
        value
    }
}

impl<V> fmt::Debug for LastKey<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LastKey { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_per_change_of_key() {
        let mut memo = LastKey::new(4);
        let calls = std::cell::Cell::new(0);
        let ask = |memo: &mut LastKey<usize>, key: &str| {
            *memo.get(key, |k| {
                calls.set(calls.get() + 1);
                k.len() * 10
            })
        };
        for (key, value) in [
            ("ab", 20),
            ("ab", 20),
            ("abc", 30),
            ("ab", 20),
            ("", 0),
            ("", 0),
        ] {
            assert_eq!(ask(&mut memo, key), value, "{key:?}");
        }
        assert_eq!(calls.get(), 4);
        // Over the bound: computed every time, and the key is not kept.
        assert_eq!(ask(&mut memo, "abcde"), 50);
        assert_eq!(ask(&mut memo, "abcde"), 50);
        assert_eq!(calls.get(), 6);
        assert!(memo.last.as_ref().is_some_and(|(key, _)| key.is_none()));
        assert_eq!(ask(&mut memo, ""), 0);
        assert_eq!(calls.get(), 7);
        assert_eq!(format!("{memo:?}"), "LastKey { .. }");
    }
}
