//! RESP (the Redis serialization protocol, version 2): commands encoded as arrays of bulk
//! strings, and replies decoded into [`Value`] — for Higress's `proxy_redis_call`, which takes a
//! command's bytes and hands back the reply's bytes.
//!
//! A reply comes from a server we do not control, so decoding is bounded: nesting depth
//! ([`MAX_DEPTH`]) and element counts are checked against the bytes actually present, and every
//! malformed or truncated reply is an error, never a panic.

/// Arrays nested deeper than this are refused.
pub const MAX_DEPTH: usize = 8;

/// One decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`: the server refused the command.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` bytes, or the null bulk string (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n` values, or the null array (`*-1`).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The integer of an `Int`, or of a bulk string holding a decimal integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The elements of a (non-null) array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(Some(items)) => Some(items),
            _ => None,
        }
    }
}

/// Why a reply could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the reply does.
    #[error("truncated RESP reply")]
    Truncated,
    /// Not RESP (or a RESP3 type this decoder does not read).
    #[error("malformed RESP reply: {0}")]
    Malformed(&'static str),
    /// Arrays nested deeper than [`MAX_DEPTH`].
    #[error("RESP reply nested too deep")]
    TooDeep,
}

/// Encode a command (`["EVAL", script, "1", key, …]`) as a RESP array of bulk strings.
pub fn command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let len: usize = args.iter().map(|a| a.as_ref().len() + 16).sum();
    let mut c = Command::with_capacity(len);
    for a in args {
        c.arg(a.as_ref());
    }
    c.finish()
}

/// Room kept before a [`Command`]'s arguments for the array header (`*<count>\r\n`).
const HEAD_ROOM: usize = 24;

/// A command written straight into its bytes, argument by argument: numbers are formatted in
/// place, nothing is collected first. The array header, which needs the count, is written last
/// into room kept for it.
#[derive(Debug)]
pub struct Command {
    out: Vec<u8>,
    args: usize,
}

impl Command {
    /// An empty command with room for about `capacity` bytes of arguments.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(HEAD_ROOM + capacity);
        out.resize(HEAD_ROOM, 0);
        Self { out, args: 0 }
    }

    /// Append one argument.
    pub fn arg(&mut self, a: &[u8]) -> &mut Self {
        self.out.push(b'$');
        self.out
            .extend_from_slice(Decimal::new(a.len() as u64, false).as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(a);
        self.out.extend_from_slice(b"\r\n");
        self.args += 1;
        self
    }

    /// Append an integer argument (its decimal text).
    pub fn int(&mut self, n: i64) -> &mut Self {
        self.arg(Decimal::new(n.unsigned_abs(), n < 0).as_bytes())
    }

    /// Append an unsigned integer argument.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        self.arg(Decimal::new(n, false).as_bytes())
    }

    /// The command's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let count = Decimal::new(self.args as u64, false);
        let digits = count.as_bytes();
        // `*`, at most 20 digits, CRLF: the header fits the room kept.
        let start = HEAD_ROOM.saturating_sub(digits.len() + 3);
        let mut at = start;
        for part in [&b"*"[..], digits, b"\r\n"] {
            if let Some(room) = self.out.get_mut(at..at + part.len()) {
                room.copy_from_slice(part);
            }
            at += part.len();
        }
        self.out.drain(..start);
        self.out
    }
}

/// A number's decimal text, in a stack buffer (20 digits and a sign at most).
struct Decimal {
    buf: [u8; 21],
    start: usize,
}

impl Decimal {
    fn new(mut n: u64, negative: bool) -> Self {
        let mut buf = [0u8; 21];
        let mut start = buf.len();
        for slot in buf.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            start -= 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if negative && start > 0 {
            start -= 1;
            if let Some(sign) = buf.get_mut(start) {
                *sign = b'-';
            }
        }
        Self { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// Decode one whole reply; bytes after it are an error.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(DecodeError::Malformed("bytes after the reply"));
    }
    Ok(value)
}

/// Decode the reply at the start of `bytes`; returns it and the bytes it took (for a reader
/// that frames replies on a connection).
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut pos = 0;
    let value = value_at(bytes, &mut pos, 0)?;
    Ok((value, pos))
}

/// The line at `*pos` (without its CRLF), moving `*pos` past it.
fn line<'a>(bytes: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DecodeError> {
    let rest = bytes.get(*pos..).ok_or(DecodeError::Truncated)?;
    let end = memchr::memmem::find(rest, b"\r\n").ok_or(DecodeError::Truncated)?;
    let text = rest.get(..end).ok_or(DecodeError::Truncated)?;
    *pos += end + 2;
    Ok(text)
}

fn number(text: &[u8]) -> Result<i64, DecodeError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(DecodeError::Malformed("not a number"))
}

fn value_at(bytes: &[u8], pos: &mut usize, depth: usize) -> Result<Value, DecodeError> {
    let kind = *bytes.get(*pos).ok_or(DecodeError::Truncated)?;
    *pos += 1;
    let text = line(bytes, pos)?;
    match kind {
        b'+' => Ok(Value::Simple(String::from_utf8_lossy(text).into_owned())),
        b'-' => Ok(Value::Error(String::from_utf8_lossy(text).into_owned())),
        b':' => Ok(Value::Int(number(text)?)),
        b'$' => {
            let n = number(text)?;
            if n == -1 {
                return Ok(Value::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|_| DecodeError::Malformed("bulk length"))?;
            let end = pos.checked_add(n).ok_or(DecodeError::Truncated)?;
            let data = bytes.get(*pos..end).ok_or(DecodeError::Truncated)?;
            if bytes.get(end..end + 2) != Some(b"\r\n".as_slice()) {
                return Err(if bytes.len() < end + 2 {
                    DecodeError::Truncated
                } else {
                    DecodeError::Malformed("bulk string not ended by CRLF")
                });
            }
            *pos = end + 2;
            Ok(Value::Bulk(Some(data.to_vec())))
        }
        b'*' => {
            let n = number(text)?;
            if n == -1 {
                return Ok(Value::Array(None));
            }
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep);
            }
            let n = usize::try_from(n).map_err(|_| DecodeError::Malformed("array length"))?;
            // Every element takes at least 3 bytes: a count larger than what is left is a lie
            // (and must not size an allocation).
            let left = bytes.len().saturating_sub(*pos);
            if n > left / 3 {
                return Err(DecodeError::Truncated);
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(value_at(bytes, pos, depth + 1)?);
            }
            Ok(Value::Array(Some(items)))
        }
        _ => Err(DecodeError::Malformed("unknown type byte")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_an_array_of_bulk_strings() {
        let bytes = command(&["EVAL", "return 1", "0"]);
        assert_eq!(
            bytes,
            b"*3\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n0\r\n".to_vec()
        );
    }

    #[test]
    fn numbers_are_written_as_their_decimal_text_and_the_count_comes_first() {
        let mut c = Command::with_capacity(0);
        c.int(0).int(-7).int(i64::MIN).uint(u64::MAX).arg(b"");
        let mut many = Command::with_capacity(0);
        for _ in 0..12 {
            many.arg(b"x");
        }
        assert_eq!(
            c.finish(),
            b"*5\r\n$1\r\n0\r\n$2\r\n-7\r\n$20\r\n-9223372036854775808\r\n\
              $20\r\n18446744073709551615\r\n$0\r\n\r\n"
                .to_vec()
        );
        assert_eq!(many.finish(), command(&["x"; 12]));
        assert!(command(&["x"; 12]).starts_with(b"*12\r\n$1\r\nx\r\n"));
        assert_eq!(Command::with_capacity(8).finish(), b"*0\r\n".to_vec());
    }

    #[test]
    fn replies_of_every_type_decode() {
        assert_eq!(decode(b"+OK\r\n"), Ok(Value::Simple("OK".into())));
        assert_eq!(
            decode(b"-NOSCRIPT x\r\n"),
            Ok(Value::Error("NOSCRIPT x".into()))
        );
        assert_eq!(decode(b":-42\r\n"), Ok(Value::Int(-42)));
        assert_eq!(decode(b"$-1\r\n"), Ok(Value::Bulk(None)));
        assert_eq!(
            decode(b"$5\r\na\r\nbc\r\n"),
            Ok(Value::Bulk(Some(b"a\r\nbc".to_vec())))
        );
        assert_eq!(
            decode(b"*3\r\n:1\r\n*1\r\n$1\r\n7\r\n*-1\r\n"),
            Ok(Value::Array(Some(vec![
                Value::Int(1),
                Value::Array(Some(vec![Value::Bulk(Some(b"7".to_vec()))])),
                Value::Array(None),
            ])))
        );
    }

    #[test]
    fn every_truncation_of_a_reply_is_an_error_not_a_panic() {
        let whole = b"*4\r\n:1\r\n$3\r\nabc\r\n+OK\r\n*2\r\n:5\r\n-ERR no\r\n";
        assert!(decode(whole).is_ok());
        for cut in 0..whole.len() {
            let part = whole.get(..cut).unwrap_or_default();
            assert!(decode(part).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn hostile_replies_are_refused() {
        // A huge announced array with nothing behind it must not allocate.
        assert_eq!(decode(b"*99999999\r\n"), Err(DecodeError::Truncated));
        // Past usize on wasm32: malformed there, truncated on 64-bit; an error either way.
        assert!(decode(b"*999999999999\r\n").is_err());
        assert!(decode(b"$-5\r\n").is_err());
        assert!(decode(b"$3\r\nabcXY").is_err());
        assert!(decode(b"?x\r\n").is_err());
        assert!(decode(b":1\r\n:2\r\n").is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert_eq!(decode(deep.as_bytes()), Err(DecodeError::TooDeep));
    }

    #[test]
    fn integers_come_from_ints_and_numeric_bulk_strings() {
        assert_eq!(Value::Int(3).as_int(), Some(3));
        assert_eq!(Value::Bulk(Some(b"12".to_vec())).as_int(), Some(12));
        assert_eq!(Value::Bulk(None).as_int(), None);
    }

    #[test]
    fn a_prefix_reports_the_bytes_it_took() {
        let (v, used) = decode_prefix(b":1\r\n+OK\r\n").unwrap_or((Value::Int(0), 0));
        assert_eq!((v, used), (Value::Int(1), 4));
    }
}
