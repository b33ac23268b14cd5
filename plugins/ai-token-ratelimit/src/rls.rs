//! The `rls` backend's wire format: Envoy's RateLimitService (`envoy.service.ratelimit.v3`,
//! `ShouldRateLimit`), encoded and decoded by hand (a few fields of protobuf need no codegen).
//!
//! One descriptor per limit: entries `rule=<name>`, `measure=<input|output|total|cost|requests>`,
//! then one entry per key (`<key>=<value>`, e.g. `header:x-team=a`); the limit travels as the
//! descriptor's `limit` override (`requests_per_unit`, `unit`), the amount as its `hits_addend`.
//! The service counts; the plugin reads `overall_code` and each status's remaining count and
//! time to reset for its headers.

use crate::config::{Limit, Period};
use crate::measure::Measure;

/// The gRPC service and method.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// The method.
pub const METHOD: &str = "ShouldRateLimit";

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, u64::from(field << 3));
    varint(out, v);
}

/// The name of a measure in descriptor entries.
pub fn measure_name(m: Measure) -> &'static str {
    match m {
        Measure::Input => "input",
        Measure::Output => "output",
        Measure::Total => "total",
        Measure::Cost => "cost",
        Measure::Requests => "requests",
    }
}

fn unit(p: Period) -> u64 {
    match p {
        Period::Second => 1,
        Period::Minute => 2,
        Period::Hour => 3,
        Period::Day => 4,
    }
}

/// One descriptor: the entries, the limit, the hits to add (whole units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor<'a> {
    /// `(key, value)` entries in order.
    pub entries: Vec<(&'a str, &'a str)>,
    /// The limit sent as the override.
    pub limit: &'a Limit,
    /// Units this request adds.
    pub hits: u64,
}

/// A serialised `RateLimitRequest` for `domain` and `descriptors`.
pub fn encode_request(domain: &str, descriptors: &[Descriptor<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, domain.as_bytes());
    for d in descriptors {
        let mut desc = Vec::new();
        for (k, v) in &d.entries {
            let mut entry = Vec::new();
            bytes_field(&mut entry, 1, k.as_bytes());
            bytes_field(&mut entry, 2, v.as_bytes());
            bytes_field(&mut desc, 1, &entry);
        }
        let mut limit = Vec::new();
        varint_field(&mut limit, 1, d.limit.capacity.min(u64::from(u32::MAX)));
        varint_field(&mut limit, 2, unit(d.limit.per));
        bytes_field(&mut desc, 2, &limit);
        let mut hits = Vec::new();
        varint_field(&mut hits, 1, d.hits);
        bytes_field(&mut desc, 3, &hits);
        bytes_field(&mut out, 2, &desc);
    }
    out
}

/// One protobuf field: number and value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Iterate the fields of a message; stops (returning what it read) at malformed input.
fn fields(mut data: &[u8]) -> Option<Vec<(u32, Value<'_>)>> {
    fn read_varint(data: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = data.split_first()?;
            *data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let key = read_varint(&mut data)?;
        let field = u32::try_from(key >> 3).ok()?;
        match key & 7 {
            0 => out.push((field, Value::Varint(read_varint(&mut data)?))),
            1 => data = data.get(8..)?,
            2 => {
                let len = usize::try_from(read_varint(&mut data)?).ok()?;
                let (value, rest) = data.split_at_checked(len)?;
                data = rest;
                out.push((field, Value::Bytes(value)));
            }
            5 => data = data.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

/// One descriptor's status in the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescriptorStatus {
    /// Over its limit.
    pub over: bool,
    /// The limit the service applied (`requests_per_unit`), if it said.
    pub limit: Option<u64>,
    /// Units left in the current window.
    pub remaining: u64,
    /// Nanoseconds until the window resets.
    pub reset_ns: u64,
}

/// A decoded `RateLimitResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// `overall_code == OVER_LIMIT`.
    pub over: bool,
    /// `overall_code` was OK or OVER_LIMIT (UNKNOWN means the service could not decide).
    pub known: bool,
    /// One status per descriptor sent, in order (when the service gave them).
    pub statuses: Vec<DescriptorStatus>,
}

fn duration_ns(data: &[u8]) -> u64 {
    let mut ns = 0u64;
    for (f, v) in fields(data).unwrap_or_default() {
        match (f, v) {
            (1, Value::Varint(s)) => ns = ns.saturating_add(s.saturating_mul(1_000_000_000)),
            (2, Value::Varint(n)) => ns = ns.saturating_add(n & 0xffff_ffff),
            _ => {}
        }
    }
    ns
}

/// Decode a `RateLimitResponse`; `None` when it is not one.
pub fn decode_response(data: &[u8]) -> Option<Answer> {
    let mut answer = Answer::default();
    for (f, v) in fields(data)? {
        match (f, v) {
            (1, Value::Varint(code)) => {
                answer.known = code == 1 || code == 2;
                answer.over = code == 2;
            }
            (2, Value::Bytes(status)) => {
                let mut s = DescriptorStatus::default();
                for (f, v) in fields(status)? {
                    match (f, v) {
                        (1, Value::Varint(code)) => s.over = code == 2,
                        (2, Value::Bytes(limit)) => {
                            for (f, v) in fields(limit)? {
                                if let (1, Value::Varint(n)) = (f, v) {
                                    s.limit = Some(n);
                                }
                            }
                        }
                        (3, Value::Varint(n)) => s.remaining = n,
                        (4, Value::Bytes(d)) => s.reset_ns = duration_ns(d),
                        _ => {}
                    }
                }
                answer.statuses.push(s);
            }
            _ => {}
        }
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> Limit {
        Limit {
            measure: Measure::Total,
            limit: 1000,
            capacity: 1000,
            per: Period::Minute,
        }
    }

    #[test]
    fn a_request_encodes_domain_entries_limit_and_hits() {
        let l = limit();
        let d = Descriptor {
            entries: vec![("rule", "r"), ("measure", "total")],
            limit: &l,
            hits: 300,
        };
        let bytes = encode_request("aigw", &[d]);
        // domain "aigw"
        assert_eq!(&bytes[..6], b"\x0a\x04aigw");
        let top = fields(&bytes).unwrap();
        assert_eq!(top.len(), 2);
        let Value::Bytes(desc) = top[1].1 else {
            panic!("descriptor")
        };
        let inner = fields(desc).unwrap();
        let numbers: Vec<u32> = inner.iter().map(|(f, _)| *f).collect();
        assert_eq!(numbers, [1, 1, 2, 3]);
        let Value::Bytes(limit) = inner[2].1 else {
            panic!("limit")
        };
        assert_eq!(limit, [0x08, 0xe8, 0x07, 0x10, 0x02], "1000 per MINUTE");
        let Value::Bytes(hits) = inner[3].1 else {
            panic!("hits")
        };
        assert_eq!(hits, [0x08, 0xac, 0x02], "300");
    }

    #[test]
    fn an_answer_decodes_codes_remaining_and_reset() {
        // overall OVER_LIMIT; one status: OVER_LIMIT, limit 1000, remaining 7, reset 12.5 s.
        let mut status = Vec::new();
        varint_field(&mut status, 1, 2);
        let mut l = Vec::new();
        varint_field(&mut l, 1, 1000);
        varint_field(&mut l, 2, 2);
        bytes_field(&mut status, 2, &l);
        varint_field(&mut status, 3, 7);
        let mut d = Vec::new();
        varint_field(&mut d, 1, 12);
        varint_field(&mut d, 2, 500_000_000);
        bytes_field(&mut status, 4, &d);
        let mut msg = Vec::new();
        varint_field(&mut msg, 1, 2);
        bytes_field(&mut msg, 2, &status);
        bytes_field(&mut msg, 3, b"\x0a\x01x"); // a header to add: skipped
        let a = decode_response(&msg).unwrap();
        assert!(a.over && a.known);
        assert_eq!(
            a.statuses,
            vec![DescriptorStatus {
                over: true,
                limit: Some(1000),
                remaining: 7,
                reset_ns: 12_500_000_000
            }]
        );
        assert_eq!(decode_response(b""), Some(Answer::default()));
        assert_eq!(decode_response(b"\x0a\xff"), None, "a length past the end");
    }
}
