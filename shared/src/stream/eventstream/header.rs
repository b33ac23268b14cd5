//! Event-stream headers: the ten typed value kinds, and their wire codec.

use super::EncodeError;

/// A typed header value (type codes 0..=9 on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false); no value bytes.
    Bool(bool),
    /// Type 2, one signed byte.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6, u16 length then bytes.
    Bytes(Vec<u8>),
    /// Type 7, u16 length then UTF-8.
    String(String),
    /// Type 8, milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9, 16 bytes.
    Uuid([u8; 16]),
}

impl HeaderValue {
    /// The wire type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Self::Bool(true) => 0,
            Self::Bool(false) => 1,
            Self::Byte(_) => 2,
            Self::Int16(_) => 3,
            Self::Int32(_) => 4,
            Self::Int64(_) => 5,
            Self::Bytes(_) => 6,
            Self::String(_) => 7,
            Self::Timestamp(_) => 8,
            Self::Uuid(_) => 9,
        }
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One named header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name (1..=255 bytes of UTF-8).
    pub name: String,
    /// The value.
    pub value: HeaderValue,
}

/// A cursor over the header section.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let past = "value runs past the header section";
        let end = self.pos.checked_add(n).ok_or(past)?;
        let out = self.bytes.get(self.pos..end).ok_or(past)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?
            .try_into()
            .map_err(|_| "value runs past the header section")
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.array::<1>()?[0])
    }

    fn u16_len(&mut self) -> Result<usize, &'static str> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }
}

pub(super) fn parse_headers(bytes: &[u8]) -> Result<Vec<Header>, &'static str> {
    let mut r = Reader { bytes, pos: 0 };
    let mut headers = Vec::new();
    while r.pos < bytes.len() {
        let name_len = usize::from(r.u8()?);
        if name_len == 0 {
            return Err("empty header name");
        }
        let name =
            std::str::from_utf8(r.take(name_len)?).map_err(|_| "header name is not UTF-8")?;
        let value = match r.u8()? {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(r.array()?)),
            3 => HeaderValue::Int16(i16::from_be_bytes(r.array()?)),
            4 => HeaderValue::Int32(i32::from_be_bytes(r.array()?)),
            5 => HeaderValue::Int64(i64::from_be_bytes(r.array()?)),
            6 => {
                let len = r.u16_len()?;
                HeaderValue::Bytes(r.take(len)?.to_vec())
            }
            7 => {
                let len = r.u16_len()?;
                let s =
                    std::str::from_utf8(r.take(len)?).map_err(|_| "string header is not UTF-8")?;
                HeaderValue::String(s.to_owned())
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(r.array()?)),
            9 => HeaderValue::Uuid(r.array()?),
            _ => return Err("unknown header value type"),
        };
        headers.push(Header {
            name: name.to_owned(),
            value,
        });
    }
    Ok(headers)
}

pub(super) fn encode_header(h: &Header, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let name_len = u8::try_from(h.name.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| EncodeError::HeaderName(h.name.clone()))?;
    out.push(name_len);
    out.extend_from_slice(h.name.as_bytes());
    out.push(h.value.type_code());
    let with_len = |bytes: &[u8], out: &mut Vec<u8>| -> Result<(), EncodeError> {
        let len = u16::try_from(bytes.len())
            .map_err(|_| EncodeError::HeaderValueTooLong(h.name.clone()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    };
    match &h.value {
        HeaderValue::Bool(_) => {}
        HeaderValue::Byte(v) => out.extend_from_slice(&v.to_be_bytes()),
        HeaderValue::Int16(v) => out.extend_from_slice(&v.to_be_bytes()),
        HeaderValue::Int32(v) => out.extend_from_slice(&v.to_be_bytes()),
        HeaderValue::Int64(v) | HeaderValue::Timestamp(v) => {
            out.extend_from_slice(&v.to_be_bytes())
        }
        HeaderValue::Bytes(b) => with_len(b, out)?,
        HeaderValue::String(s) => with_len(s.as_bytes(), out)?,
        HeaderValue::Uuid(u) => out.extend_from_slice(u),
    }
    Ok(())
}
