//! What to remove when the data outgrows `maxmemory`: Redis's policies, approximated by sampling
//! as Redis does (a few random keys, the best candidate among them).

use std::fmt;
use std::str::FromStr;

/// Redis's `maxmemory-policy` values pocketkv implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    /// Remove nothing; refuse commands that would add data.
    #[default]
    NoEviction,
    /// The least recently used of a sample of all keys.
    AllKeysLru,
    /// Any key.
    AllKeysRandom,
    /// The least recently used of a sample of keys with an expiry time.
    VolatileLru,
    /// Any key with an expiry time.
    VolatileRandom,
    /// The key with the nearest expiry time in a sample.
    VolatileTtl,
}

/// Every policy with its Redis name.
const NAMES: &[(EvictionPolicy, &str)] = &[
    (EvictionPolicy::NoEviction, "noeviction"),
    (EvictionPolicy::AllKeysLru, "allkeys-lru"),
    (EvictionPolicy::AllKeysRandom, "allkeys-random"),
    (EvictionPolicy::VolatileLru, "volatile-lru"),
    (EvictionPolicy::VolatileRandom, "volatile-random"),
    (EvictionPolicy::VolatileTtl, "volatile-ttl"),
];

impl EvictionPolicy {
    /// True for the policies that only consider keys with an expiry time.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileRandom
                | EvictionPolicy::VolatileTtl
        )
    }

    /// The policy's Redis name, as CONFIG GET and INFO show it.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(policy, _)| *policy == self)
            .map_or("noeviction", |(_, name)| name)
    }
}

impl fmt::Display for EvictionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EvictionPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        NAMES
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(text))
            .map(|(policy, _)| *policy)
            .ok_or_else(|| {
                let names: Vec<&str> = NAMES.iter().map(|(_, name)| *name).collect();
                format!("one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (policy, name) in NAMES {
            assert_eq!(name.parse::<EvictionPolicy>(), Ok(*policy));
            assert_eq!(policy.to_string(), *name);
        }
        assert_eq!("ALLKEYS-LRU".parse(), Ok(EvictionPolicy::AllKeysLru));
        assert!("allkeys-lfu".parse::<EvictionPolicy>().is_err());
    }
}
