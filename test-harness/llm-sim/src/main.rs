//! `llm-sim` command line: parse flags, start the server, write the port file, and run until
//! SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;

use llm_sim::{Config, Defaults, Server};

const USAGE: &str = "usage: llm-sim [--listen ADDR:PORT] [--port-file FILE] [--latency-ms N] \
[--ttft-ms N] [--tokens-per-second N] [--quiet]

  --listen ADDR:PORT       address to listen on (default 127.0.0.1:0; port 0 picks a free port)
  --port-file FILE         write the bound port as decimal text to FILE once listening
  --latency-ms N           default delay before the response head (header x-sim-latency-ms)
  --ttft-ms N              default delay before the first token (header x-sim-ttft-ms)
  --tokens-per-second N    default generation speed, 0 = unpaced (header x-sim-tokens-per-second)
  --quiet                  do not log one line per request to stderr";

/// Parsed command line.
#[derive(Debug)]
struct Cli {
    config: Config,
    port_file: Option<String>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Cli, String> {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut defaults = Defaults::default();
    let mut port_file = None;
    let mut log = true;
    let mut args = args;
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v
                    .parse()
                    .map_err(|_| format!("--listen: {v:?} is not ADDR:PORT"))?;
            }
            "--port-file" => port_file = Some(value("--port-file")?),
            "--latency-ms" => {
                defaults.latency_ms = number("--latency-ms", &value("--latency-ms")?)?
            }
            "--ttft-ms" => defaults.ttft_ms = number("--ttft-ms", &value("--ttft-ms")?)?,
            "--tokens-per-second" => {
                defaults.tokens_per_second =
                    number("--tokens-per-second", &value("--tokens-per-second")?)?
            }
            "--quiet" => log = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Cli {
        config: Config {
            listen,
            defaults,
            log,
        },
        port_file,
    })
}

fn number(name: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{name}: {v:?} is not a non-negative integer"))
}

fn main() -> ExitCode {
    let cli = match parse_args(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("llm-sim: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("llm-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("llm-sim: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let listen = cli.config.listen;
    let server = Server::start(cli.config)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = server.addr();
    if let Some(path) = &cli.port_file {
        write_port_file(path, addr.port())?;
    }
    eprintln!("llm-sim: listening on {addr}");
    wait_for_signal().await?;
    eprintln!("llm-sim: shutting down");
    server.shutdown().await;
    Ok(())
}

/// Writes the port to a temporary file and renames it, so readers never see a partial number.
fn write_port_file(path: &str, port: u16) -> Result<(), String> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, port.to_string()).map_err(|e| format!("cannot write {tmp}: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {tmp} to {path}: {e}"))
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn flags_set_listen_address_port_file_and_default_knobs() {
        let cli = parse_args(args(&[
            "--listen",
            "127.0.0.1:9",
            "--port-file",
            "p",
            "--latency-ms",
            "1",
            "--ttft-ms",
            "2",
            "--tokens-per-second",
            "3",
        ]))
        .unwrap();
        assert_eq!(cli.config.listen.port(), 9);
        assert_eq!(cli.port_file.as_deref(), Some("p"));
        assert_eq!(cli.config.defaults.tokens_per_second, 3);
        assert_eq!(cli.config.defaults.ttft_ms, 2);
    }

    #[test]
    fn bad_flags_are_reported_by_name() {
        assert!(parse_args(args(&["--latency-ms", "x"]))
            .unwrap_err()
            .contains("--latency-ms"));
        assert!(parse_args(args(&["--bogus"]))
            .unwrap_err()
            .contains("--bogus"));
        assert!(parse_args(args(&["--listen"]))
            .unwrap_err()
            .contains("needs a value"));
    }
}
