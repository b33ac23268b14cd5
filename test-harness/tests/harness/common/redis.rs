//! A real `redis-server` for the Higress profile's `proxy_redis_call`s: started on a free
//! loopback port for one test (no persistence), stopped when dropped, and a forwarder that
//! sends each call's RESP bytes to it and frames one reply with `aigw_shared::resp`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aigw_harness::{Env, RedisCall, RedisReply};
use aigw_shared::resp::{self, DecodeError, Value};

/// A running `redis-server` (Debian package `redis-server`, installed by `make deps`).
pub struct RedisServer {
    child: Child,
    /// Its loopback port.
    pub port: u16,
}

impl RedisServer {
    /// Start one; panics (the test fails) when `redis-server` is missing or does not answer.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): `make deps` installs it (Debian package redis-server)")
            });
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.command(&["PING"]).ok() == Some(Value::Simple("PONG".into())) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run one command on a fresh connection.
    pub fn command(&self, args: &[&str]) -> Result<Value, String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        let bytes = exchange(&mut conn, &resp::command(args))?;
        resp::decode(&bytes).map_err(|e| e.to_string())
    }

    /// Answer `env`'s Redis calls from this server (one connection, as Envoy's client keeps).
    pub fn serve(&self, env: &Env) {
        let port = self.port;
        let mut conn: Option<TcpStream> = None;
        env.on_redis(move |call: &RedisCall| -> RedisReply {
            if conn.is_none() {
                conn = TcpStream::connect(("127.0.0.1", port)).ok();
            }
            let Some(c) = conn.as_mut() else {
                return Err(1); // unreachable: the call fails
            };
            exchange(c, &call.query).map_err(|_| {
                conn = None;
                1
            })
        });
    }
}

/// Send `query`, read exactly one reply.
fn exchange(conn: &mut TcpStream, query: &[u8]) -> Result<Vec<u8>, String> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    conn.write_all(query).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match resp::decode_prefix(&reply) {
            Ok((_, used)) if used == reply.len() => return Ok(reply),
            Ok(_) => return Err("bytes after the reply".into()),
            Err(DecodeError::Truncated) => {}
            Err(e) => return Err(e.to_string()),
        }
        let n = conn.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        reply.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
