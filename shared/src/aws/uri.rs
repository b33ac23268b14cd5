//! The URI rules of SigV4 canonical requests: RFC 3986 percent-encoding of everything but the
//! unreserved characters, path normalization, and the sorted canonical query string.

/// How the request path becomes the canonical URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathMode {
    /// Every AWS service except S3 (Bedrock included): remove `.`/`..` and empty segments, then
    /// percent-encode each segment of the path *as sent on the wire*, so an already-encoded `%3A`
    /// becomes `%253A` (the "double encoding" the SDKs do).
    #[default]
    Normalized,
    /// S3: the path is decoded once and encoded once, segments kept as they are.
    S3,
}

/// Is `b` an RFC 3986 unreserved character (`A-Z a-z 0-9 - . _ ~`)?
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encode `bytes` with uppercase hex, keeping unreserved characters (and `/` unless
/// `encode_slash`).
pub fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0x0F] {
                out.push(char::from(
                    HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits is kept literally. `+` is not a space.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// The canonical URI of `path` (no query).
pub fn canonical_path(path: &str, mode: PathMode) -> String {
    match mode {
        PathMode::S3 => {
            let encoded = uri_encode(&percent_decode(path), false);
            if encoded.starts_with('/') {
                encoded
            } else {
                format!("/{encoded}")
            }
        }
        PathMode::Normalized => {
            let segments = normalize_segments(path);
            let mut out = String::with_capacity(path.len() + 8);
            for segment in &segments.names {
                out.push('/');
                out.push_str(&uri_encode(segment.as_bytes(), true));
            }
            if segments.names.is_empty() || segments.trailing_slash {
                out.push('/');
            }
            out
        }
    }
}

struct Segments<'a> {
    names: Vec<&'a str>,
    trailing_slash: bool,
}

/// RFC 3986 dot-segment removal, also dropping empty segments (`//` collapses to `/`).
fn normalize_segments(path: &str) -> Segments<'_> {
    let mut names: Vec<&str> = Vec::new();
    let mut trailing_slash = path.ends_with('/');
    for segment in path.split('/') {
        match segment {
            "" => {}
            "." => trailing_slash = true,
            ".." => {
                names.pop();
                trailing_slash = true;
            }
            name => {
                names.push(name);
                trailing_slash = false;
            }
        }
    }
    trailing_slash |= path.ends_with('/');
    Segments {
        names,
        trailing_slash,
    }
}

/// The canonical query string: every `name=value` pair decoded once and re-encoded strictly,
/// sorted by name then value, joined with `&`. A parameter without `=` gets an empty value.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(name), true),
                uri_encode(&percent_decode(value), true),
            )
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}
