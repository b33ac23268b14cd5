//! IP addresses: dotted IPv4 (`192.168.1.20`, each part 0–255, no leading zeros, not part of a
//! longer dotted number such as a version `1.2.3.4.5`) and IPv6 (hex groups joined by `:`:
//! eight groups, or fewer around one `::`, with at least one digit so `a::b::c` is not one).

use super::{before, Finding, Kind};

pub(super) fn find(bytes: &[u8], out: &mut Vec<Finding>) {
    v4(bytes, out);
    v6(bytes, out);
}

fn v4(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut i = 0;
    while i < bytes.len() {
        let Some(off) = bytes
            .get(i..)
            .and_then(|r| r.iter().position(u8::is_ascii_digit))
        else {
            return;
        };
        let start = i + off;
        let prev = before(bytes, start);
        let mut j = start;
        let mut parts = 0;
        let mut ok = !prev.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
        loop {
            let from = j;
            while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            let part = bytes.get(from..j).unwrap_or_default();
            let value = part.iter().fold(0u32, |a, &d| {
                a.saturating_mul(10).saturating_add(u32::from(d - b'0'))
            });
            if part.is_empty()
                || part.len() > 3
                || value > 255
                || (part.len() > 1 && part.first() == Some(&b'0'))
            {
                ok = false;
            }
            parts += 1;
            if parts < 4
                && bytes.get(j) == Some(&b'.')
                && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
            {
                j += 1;
                continue;
            }
            break;
        }
        let next = bytes.get(j).copied();
        let continues = next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            || (next == Some(b'.') && bytes.get(j + 1).is_some_and(u8::is_ascii_digit));
        if ok && parts == 4 && !continues {
            out.push(Finding {
                kind: Kind::IpAddress,
                start,
                end: j,
            });
        }
        // Skip the rest of this dotted number.
        while bytes
            .get(j)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        {
            j += 1;
        }
        i = j.max(start + 1);
    }
}

fn v6(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut search = 0;
    while let Some(off) = bytes.get(search..).and_then(|r| memchr::memchr(b':', r)) {
        let colon = search + off;
        // Walk back to the start of the hex-and-colon run.
        let mut start = colon;
        while before(bytes, start).is_some_and(|b| b.is_ascii_hexdigit() || b == b':') {
            start -= 1;
        }
        let mut end = colon;
        while bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_hexdigit() || *b == b':')
        {
            end += 1;
        }
        search = end.max(colon + 1);
        let glued = before(bytes, start)
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            || bytes
                .get(end)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let Some(text) = bytes.get(start..end) else {
            continue;
        };
        if !glued && is_v6(text) {
            out.push(Finding {
                kind: Kind::IpAddress,
                start,
                end,
            });
        }
    }
}

fn is_v6(text: &[u8]) -> bool {
    if !text.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let compressed = memchr::memmem::find_iter(text, b"::").count();
    if compressed > 1 || memchr::memmem::find(text, b":::").is_some() {
        return false;
    }
    let groups: Vec<&[u8]> = text
        .split(|b| *b == b':')
        .filter(|g| !g.is_empty())
        .collect();
    if groups.iter().any(|g| g.len() > 4) {
        return false;
    }
    let edges_ok = (text.first() != Some(&b':') || text.starts_with(b"::"))
        && (text.last() != Some(&b':') || text.ends_with(b"::"));
    edges_ok
        && if compressed == 1 {
            groups.len() >= 2 && groups.len() <= 7
        } else {
            groups.len() == 8
        }
}

#[cfg(test)]
mod tests {
    use super::super::tests::found;
    use super::super::Kind;

    fn ips(text: &str) -> Vec<&str> {
        found(text)
            .into_iter()
            .filter(|(k, _)| *k == Kind::IpAddress)
            .map(|(_, s)| s)
            .collect()
    }

    #[test]
    fn v4_and_v6_addresses_are_found() {
        assert_eq!(
            ips("from 192.168.1.20, to 8.8.8.8."),
            ["192.168.1.20", "8.8.8.8"]
        );
        assert_eq!(
            ips("host 2001:db8:85a3::8a2e:370:7334 and fe80::1 up"),
            ["2001:db8:85a3::8a2e:370:7334", "fe80::1"]
        );
        assert_eq!(
            ips("2001:0db8:0000:0000:0000:ff00:0042:8329"),
            ["2001:0db8:0000:0000:0000:ff00:0042:8329"]
        );
    }

    #[test]
    fn versions_times_and_out_of_range_parts_are_not_addresses() {
        for text in [
            "version 1.2.3",
            "v1.2.3.4",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.2.3.4",
            "at 12:30:45",
            "std::vec::Vec",
            "a::b::c",
            "1::2::3",
            "ratio 3:4",
        ] {
            assert_eq!(ips(text), Vec::<&str>::new(), "{text}");
        }
    }
}
