//! Counters and small records in proxy-wasm shared data, updated with compare-and-swap so that
//! every worker VM of a plugin sees one consistent value.

use crate::host::{Host, HostError};

/// How often a compare-and-swap update is retried before giving up.
pub const CAS_RETRIES: usize = 16;

/// The version passed when creating a key: non-zero (0 turns the check off) and the last a host
/// counter reaches (Envoy's starts at 1 and counts every write of the VM id's data), so it matches
/// no existing key in practice.
const CREATE_CAS: u32 = u32::MAX;

/// The version to write with after reading `cas`: the read's version, or for a key that was
/// absent, one that makes a concurrent creation a mismatch (see [`update`]).
pub fn write_cas(cas: Option<u32>) -> u32 {
    cas.unwrap_or(CREATE_CAS)
}

/// Read a signed 64-bit counter (0 when absent or malformed).
pub fn read_counter(host: &dyn Host, key: &str) -> Result<i64, HostError> {
    let (value, _) = host.shared_data(key)?;
    Ok(value.as_deref().map(decode_i64).unwrap_or(0))
}

/// Add `delta` to a counter atomically across workers; returns the new value.
pub fn add_counter(host: &dyn Host, key: &str, delta: i64) -> Result<i64, HostError> {
    update(host, key, |current| {
        let now = current.map(decode_i64).unwrap_or(0).saturating_add(delta);
        (now.to_le_bytes().to_vec(), now)
    })
}

/// Read-modify-write a record with compare-and-swap, retrying on conflicts.
///
/// `f` gets the current bytes (if any) and returns the bytes to store plus a value to hand back.
pub fn update<T>(
    host: &dyn Host,
    key: &str,
    mut f: impl FnMut(Option<&[u8]>) -> (Vec<u8>, T),
) -> Result<T, HostError> {
    for _ in 0..CAS_RETRIES {
        let (current, cas) = host.shared_data(key)?;
        let (next, out) = f(current.as_deref());
        // Nothing changed (a refusal, a zero delta): no write, no contention with other workers;
        // the value read is the answer, as of that read.
        if current.as_deref() == Some(next.as_slice()) {
            return Ok(out);
        }
        // A missing key has no version. Envoy ignores cas when it inserts, but checks a non-zero
        // one against a key that exists: so a create passes a version no write hands out (not
        // 0, which means "no check"). Another worker that created the key since our read makes
        // this a mismatch, and the retry reads its value, instead of overwriting it.
        match host.set_shared_data(key, &next, Some(write_cas(cas))) {
            Ok(()) => return Ok(out),
            Err(HostError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(HostError::CasMismatch)
}

fn decode_i64(bytes: &[u8]) -> i64 {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_le_bytes)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    #[test]
    fn counters_add_up_across_workers_sharing_one_store() {
        let a = MockHost::default();
        let b = MockHost {
            shared: a.shared.clone(),
            ..MockHost::default()
        };
        assert_eq!(add_counter(&a, "k", 5).unwrap(), 5);
        assert_eq!(add_counter(&b, "k", -2).unwrap(), 3);
        assert_eq!(read_counter(&a, "k").unwrap(), 3);
    }

    #[test]
    fn two_workers_creating_one_key_at_once_both_count() {
        let a = MockHost::default();
        let b = MockHost {
            shared: a.shared.clone(),
            ..MockHost::default()
        };
        let mut first = true;
        let total = update(&a, "k", |current| {
            if std::mem::take(&mut first) {
                // Worker b creates the key between a's read (nothing there) and a's write.
                assert_eq!(add_counter(&b, "k", 5).unwrap(), 5);
            }
            let now = current.map(decode_i64).unwrap_or(0) + 1;
            (now.to_le_bytes().to_vec(), now)
        })
        .unwrap();
        assert_eq!(total, 6, "a retried on b's value instead of overwriting it");
        assert_eq!(read_counter(&a, "k").unwrap(), 6);
    }

    #[test]
    fn an_update_that_changes_nothing_does_not_write() {
        let host = MockHost::default();
        add_counter(&host, "k", 5).unwrap();
        let (_, before) = host.shared_data("k").unwrap();
        assert_eq!(add_counter(&host, "k", 0).unwrap(), 5);
        let (_, after) = host.shared_data("k").unwrap();
        assert_eq!(before, after, "the version did not move: no write");
        add_counter(&host, "k", 1).unwrap();
        assert_ne!(host.shared_data("k").unwrap().1, after);
    }

    #[test]
    fn update_retries_after_a_concurrent_write() {
        let host = MockHost::default();
        host.set_shared_data("k", &1i64.to_le_bytes(), None)
            .unwrap();
        let other = MockHost {
            shared: host.shared.clone(),
            ..MockHost::default()
        };
        let mut first = true;
        let out = update(&host, "k", |cur| {
            if first {
                // Another worker writes between our read and our write.
                first = false;
                other
                    .set_shared_data("k", &10i64.to_le_bytes(), None)
                    .unwrap();
            }
            let v = cur.map(decode_i64).unwrap_or(0) + 1;
            (v.to_le_bytes().to_vec(), v)
        })
        .unwrap();
        assert_eq!(out, 11, "the retry saw the other worker's write");
    }

    #[test]
    fn shared_data_is_unsupported_on_apisix() {
        let host = MockHost::new(crate::host::Capabilities::APISIX);
        assert_eq!(add_counter(&host, "k", 1), Err(HostError::Unsupported));
    }
}
