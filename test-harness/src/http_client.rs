//! A small blocking HTTP/1.1 client (no TLS) used to forward callouts and upstream requests to real
//! servers on 127.0.0.1.

use crate::abi::Headers;
use crate::callout::{CalloutOutcome, CalloutRequest};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased, without hop-by-hop framing headers.
    pub headers: Headers,
    /// De-chunked body.
    pub body: Vec<u8>,
}

/// Sends one request (pseudo-headers `:method`, `:path`, `:authority` give the request line and Host).
pub fn send(
    addr: SocketAddr,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    timeout: Option<Duration>,
) -> std::io::Result<WireResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout.unwrap_or(Duration::from_secs(30)))?;
    stream.set_read_timeout(timeout.or(Some(Duration::from_secs(60))))?;
    let pseudo = |n: &str| crate::abi::header_value(headers, n);
    let method = pseudo(":method").unwrap_or_else(|| "GET".to_string());
    let path = pseudo(":path").unwrap_or_else(|| "/".to_string());
    let host = pseudo(":authority").unwrap_or_else(|| addr.to_string());
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        let skip = ["host", "connection", "content-length", "transfer-encoding"];
        if k.starts_with(':') || skip.contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        head.push_str(&format!("{k}: {}\r\n", String::from_utf8_lossy(v)));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    read_response(BufReader::new(stream))
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

fn read_response<R: BufRead>(mut r: R) -> std::io::Result<WireResponse> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("malformed status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed inside headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad("malformed header"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()));
    }
    let value = |n: &str| crate::abi::header_value(&headers, n);
    let chunked = value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        read_chunked(&mut r)?
    } else if let Some(len) = value("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut b = vec![0; len];
        r.read_exact(&mut b)?;
        b
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b)?;
        b
    };
    headers.retain(|(k, _)| k != "transfer-encoding" && k != "connection");
    Ok(WireResponse {
        status,
        headers,
        body,
    })
}

fn read_chunked<R: BufRead>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers (ignored) up to the blank line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        if let Some(dst) = body.get_mut(start..) {
            r.read_exact(dst)?;
        }
        line.clear();
        r.read_line(&mut line)?;
    }
}

/// Forwards a callout and maps transport errors to Envoy's synthesised shapes.
pub(crate) fn forward(addr: SocketAddr, req: &CalloutRequest) -> CalloutOutcome {
    let timeout = (!req.timeout.is_zero()).then_some(req.timeout);
    match send(addr, &req.headers, &req.body, timeout) {
        Ok(resp) => CalloutOutcome::Response {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
        },
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            CalloutOutcome::ConnectFailure
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            CalloutOutcome::Timeout
        }
        Err(_) => CalloutOutcome::Reset,
    }
}
