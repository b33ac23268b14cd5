//! The exact tier: answers in the host's shared data (every worker sees them), in a fixed number
//! of slots so that memory stays bounded — Envoy never frees shared data. A key's slot is its
//! hash modulo `exactSlots`; a record carries the key it answers, so a slot taken over by another
//! key is a miss, and the newer answer replaces the older one (a direct-mapped cache).

use aigw_shared::host::{Host, HostError};

use crate::entry::Entry;

/// Shared-data key prefix.
pub const PREFIX: &str = "aigw.semantic_cache:";

/// The shared-data key of `key`'s (hex SHA-256) slot among `slots`.
pub fn slot_key(key: &str, slots: u32) -> String {
    let head = key.get(..16).unwrap_or(key);
    let n = u64::from_str_radix(head, 16).unwrap_or(0);
    let slot = n % u64::from(slots.max(1));
    format!("{PREFIX}{slot}")
}

/// The answer for `key` still valid at `now_ns`, if its slot holds one.
pub fn lookup(
    host: &dyn Host,
    key: &str,
    slots: u32,
    now_ns: u64,
) -> Result<Option<Entry>, HostError> {
    let (bytes, _) = host.shared_data(&slot_key(key, slots))?;
    Ok(bytes.and_then(|b| Entry::from_record(&b, now_ns, key)))
}

/// Store `entry` for `key` until `expires_ns`, replacing whatever the slot held.
pub fn store(
    host: &dyn Host,
    key: &str,
    slots: u32,
    entry: &Entry,
    expires_ns: u64,
) -> Result<(), HostError> {
    host.set_shared_data(
        &slot_key(key, slots),
        &entry.to_record(expires_ns, key),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_shared::mock::MockHost;

    fn entry(text: &str) -> Entry {
        Entry {
            model: "m".into(),
            text: text.into(),
            input_tokens: 1,
            output_tokens: 1,
            estimated: false,
            at: 0,
        }
    }

    #[test]
    fn keys_spread_over_the_slots_and_stay_in_them() {
        assert_eq!(slot_key("00000000000000ff", 16), format!("{PREFIX}15"));
        assert_eq!(slot_key("0000000000000010aa", 16), format!("{PREFIX}0"));
        assert_eq!(
            slot_key("zz", 16),
            format!("{PREFIX}0"),
            "not hex: slot 0, no panic"
        );
        assert_eq!(slot_key("ff", 0), format!("{PREFIX}0"));
    }

    #[test]
    fn a_slot_answers_only_its_own_key_and_the_newer_answer_wins() {
        let host = MockHost::default();
        let (a, b) = ("0000000000000001aaaa", "0000000000000011bbbb"); // same slot of 16
        store(&host, a, 16, &entry("A"), 100).unwrap();
        assert_eq!(lookup(&host, a, 16, 50).unwrap(), Some(entry("A")));
        assert_eq!(lookup(&host, b, 16, 50).unwrap(), None);
        store(&host, b, 16, &entry("B"), 100).unwrap();
        assert_eq!(lookup(&host, a, 16, 50).unwrap(), None, "taken over");
        assert_eq!(lookup(&host, b, 16, 50).unwrap(), Some(entry("B")));
        assert_eq!(lookup(&host, b, 16, 100).unwrap(), None, "expired");
    }
}
