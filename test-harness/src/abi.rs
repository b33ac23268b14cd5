//! Proxy-Wasm ABI 0.2.1 enumerations and the header-map wire format.

/// A `proxy_status_t` value as a host call returns it to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// OK (0).
    Ok = 0,
    /// NOT_FOUND (1).
    NotFound = 1,
    /// BAD_ARGUMENT (2).
    BadArgument = 2,
    /// SERIALIZATION_FAILURE (3).
    SerializationFailure = 3,
    /// PARSE_FAILURE (4).
    ParseFailure = 4,
    /// BAD_EXPRESSION (5); the Rust SDK cannot decode it.
    BadExpression = 5,
    /// INVALID_MEMORY_ACCESS (6); the Rust SDK cannot decode it.
    InvalidMemoryAccess = 6,
    /// EMPTY (7).
    Empty = 7,
    /// CAS_MISMATCH (8).
    CasMismatch = 8,
    /// RESULT_MISMATCH (9); the Rust SDK cannot decode it.
    ResultMismatch = 9,
    /// INTERNAL_FAILURE (10).
    InternalFailure = 10,
    /// BROKEN_CONNECTION (11); the Rust SDK cannot decode it.
    BrokenConnection = 11,
    /// UNIMPLEMENTED (12); the Rust SDK cannot decode it.
    Unimplemented = 12,
}

impl Status {
    /// The numeric value passed to the guest.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Decodes a numeric status.
    pub fn from_code(code: i32) -> Option<Status> {
        Some(match code {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::BadArgument,
            3 => Status::SerializationFailure,
            4 => Status::ParseFailure,
            5 => Status::BadExpression,
            6 => Status::InvalidMemoryAccess,
            7 => Status::Empty,
            8 => Status::CasMismatch,
            9 => Status::ResultMismatch,
            10 => Status::InternalFailure,
            11 => Status::BrokenConnection,
            12 => Status::Unimplemented,
            _ => return None,
        })
    }

    /// True for the statuses that the Rust SDK 0.2.x `Status` enum has no variant for.
    pub fn undecodable_by_rust_sdk(self) -> bool {
        matches!(self.code(), 5 | 6 | 9 | 11 | 12)
    }
}

/// The action a stream callback returns (`proxy_action_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// CONTINUE (0).
    Continue,
    /// PAUSE (1): StopAllIterationAndWatermark for headers, StopIterationAndBuffer for bodies.
    Pause,
    /// Any other value (Envoy treats it as a stop).
    Other(u32),
}

impl Action {
    /// Decodes the raw i32 returned by a callback.
    pub fn from_raw(raw: i32) -> Action {
        match raw {
            0 => Action::Continue,
            1 => Action::Pause,
            other => Action::Other(other as u32),
        }
    }
}

/// Log levels (`proxy_log_level_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// TRACE (0).
    Trace,
    /// DEBUG (1).
    Debug,
    /// INFO (2).
    Info,
    /// WARN (3).
    Warn,
    /// ERROR (4).
    Error,
    /// CRITICAL (5); the SDK panic hook logs here.
    Critical,
}

impl LogLevel {
    /// Decodes a level; values above 5 are invalid.
    pub fn from_raw(raw: i32) -> Option<LogLevel> {
        Some(match raw {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// Buffer types (`proxy_buffer_type_t`), plus Higress' Redis response buffer.
pub mod buffer {
    /// HTTP_REQUEST_BODY.
    pub const REQUEST_BODY: i32 = 0;
    /// HTTP_RESPONSE_BODY.
    pub const RESPONSE_BODY: i32 = 1;
    /// HTTP_CALL_RESPONSE_BODY.
    pub const CALL_RESPONSE_BODY: i32 = 4;
    /// GRPC_CALL_MESSAGE.
    pub const GRPC_MESSAGE: i32 = 5;
    /// VM_CONFIGURATION.
    pub const VM_CONFIGURATION: i32 = 6;
    /// PLUGIN_CONFIGURATION.
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    /// FOREIGN_FUNCTION_ARGUMENTS.
    pub const FOREIGN_ARGS: i32 = 8;
    /// Higress REDIS_CALL_RESPONSE.
    pub const REDIS_RESPONSE: i32 = 9;
}

/// Header map types (`proxy_map_type_t`).
pub mod map {
    /// HTTP_REQUEST_HEADERS.
    pub const REQUEST_HEADERS: i32 = 0;
    /// HTTP_REQUEST_TRAILERS.
    pub const REQUEST_TRAILERS: i32 = 1;
    /// HTTP_RESPONSE_HEADERS.
    pub const RESPONSE_HEADERS: i32 = 2;
    /// HTTP_RESPONSE_TRAILERS.
    pub const RESPONSE_TRAILERS: i32 = 3;
    /// GRPC_CALL_INITIAL_METADATA.
    pub const GRPC_INITIAL: i32 = 4;
    /// GRPC_CALL_TRAILING_METADATA.
    pub const GRPC_TRAILING: i32 = 5;
    /// HTTP_CALL_RESPONSE_HEADERS.
    pub const CALL_RESPONSE_HEADERS: i32 = 6;
    /// HTTP_CALL_RESPONSE_TRAILERS.
    pub const CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// An ordered list of header (name, value) pairs; values may be any bytes.
pub type Headers = Vec<(String, Vec<u8>)>;

/// Builds [`Headers`] from string pairs.
pub fn headers<K: AsRef<str>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_vec()))
        .collect()
}

/// The first value of `name` (case-insensitive) as lossy UTF-8.
pub fn header_value(headers: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// Serialises pairs in the ABI layout: count, (key_len, val_len)*, then NUL-terminated keys and values.
pub fn serialize_pairs(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn read_u32(data: &[u8], at: usize) -> Option<usize> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    let arr: [u8; 4] = bytes.try_into().ok()?;
    Some(u32::from_le_bytes(arr) as usize)
}

/// Parses the ABI pair layout. Malformed input, trailing bytes, more than 1024 pairs or more than
/// 1 MiB yield `None` (cpp-host then treats the map as empty). Empty input is an empty map.
pub fn deserialize_pairs(data: &[u8]) -> Option<Headers> {
    if data.is_empty() {
        return Some(Vec::new());
    }
    if data.len() > 1 << 20 {
        return None;
    }
    let count = read_u32(data, 0)?;
    if count > 1024 {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let base = 4 + i * 8;
        sizes.push((read_u32(data, base)?, read_u32(data, base + 4)?));
    }
    let mut pos = 4 + count * 8;
    let mut out = Vec::with_capacity(count);
    for (klen, vlen) in sizes {
        let key = data.get(pos..pos + klen)?;
        if data.get(pos + klen) != Some(&0) {
            return None;
        }
        pos += klen + 1;
        let val = data.get(pos..pos + vlen)?;
        if data.get(pos + vlen) != Some(&0) {
            return None;
        }
        pos += vlen + 1;
        out.push((String::from_utf8_lossy(key).into_owned(), val.to_vec()));
    }
    if pos != data.len() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_through_the_abi_layout() {
        let h = headers(&[(":path", "/v1"), ("x-a", "")]);
        assert_eq!(deserialize_pairs(&serialize_pairs(&h)), Some(h));
    }

    #[test]
    fn pairs_with_trailing_bytes_are_rejected() {
        let mut bytes = serialize_pairs(&headers(&[("a", "b")]));
        bytes.push(7);
        assert_eq!(deserialize_pairs(&bytes), None);
    }
}
