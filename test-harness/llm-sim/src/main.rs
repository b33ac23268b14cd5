//! `llm-sim` command line: parse flags, start the server, write the port file, and run until
//! SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;

use llm_sim::auth::{AwsKey, Credentials, PROVIDERS};
use llm_sim::fleet::{Fleet, FleetConfig, PodSpec};
use llm_sim::{Config, Defaults, Server};

const USAGE: &str = "usage: llm-sim [--listen ADDR:PORT] [--port-file FILE] [--latency-ms N] \
[--ttft-ms N] [--tokens-per-second N] [--require-key [PROVIDER=]KEY]... \
[--aws-access-key-id ID --aws-secret-key SECRET] [--quiet]

  --listen ADDR:PORT       address to listen on (default 127.0.0.1:0; port 0 picks a free port)
  --port-file FILE         write the bound port as decimal text to FILE once listening
  --latency-ms N           default delay before the response head (header x-sim-latency-ms)
  --ttft-ms N              default delay before the first token (header x-sim-ttft-ms)
  --tokens-per-second N    default generation speed, 0 = unpaced (header x-sim-tokens-per-second)
  --require-key KEY        require KEY from every provider, each in its own header
                           (openai: Authorization Bearer, anthropic: x-api-key, azure: api-key,
                           gemini: x-goog-api-key or key=, vertex: Authorization Bearer)
  --require-key P=KEY      require KEY from provider P only (openai, anthropic, azure, gemini,
                           vertex); repeatable, later flags win
  --aws-access-key-id ID   with --aws-secret-key: Bedrock requests must be SigV4-signed with
  --aws-secret-key SECRET  this key (service bedrock, any region)
  --quiet                  do not log one line per request to stderr

Fleet mode (simulated vLLM pods for the load balancer; the provider routes are not served):
  --fleet N                N pods, each on its own port (from --listen: port 0 = free ports,
                           else consecutive); --port-file then gets the ports joined by commas
  --fleet-speeds A,B,...   relative pod speeds, cycled (default 1)
  --fleet-cache-blocks N   KV-cache capacity per pod, in blocks (default 256)
  --fleet-block-tokens N   prompt tokens per block (default 16)
  --fleet-max-running N    requests running at once per pod; more wait (default 4)
  --fleet-prefill-us N     prefill time per uncached prompt token, microseconds (default 200)
  --fleet-decode-us N      time per output token, microseconds (default 5000)
  --fleet-base-us N        fixed time before the first token, microseconds (default 5000)
  --fleet-spread           every pod on pod 0's port, pod i on the i-th address after --listen's
                           (127.0.0.1, 127.0.0.2, ...); --port-file then gets that one port";

/// Parsed command line.
#[derive(Debug)]
struct Cli {
    config: Config,
    port_file: Option<String>,
    /// Fleet mode: the pod count, the pod template and the speeds.
    fleet: Option<(usize, PodSpec, Vec<f64>)>,
    /// Fleet pods share one port on consecutive addresses.
    fleet_spread: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Cli, String> {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut defaults = Defaults::default();
    let mut port_file = None;
    let mut log = true;
    let mut credentials = Credentials::default();
    let (mut aws_id, mut aws_secret) = (None, None);
    let mut fleet_n: Option<usize> = None;
    let mut pod = PodSpec::default();
    let mut speeds = Vec::new();
    let mut fleet_spread = false;
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
            "--require-key" => require_key(&mut credentials, &value("--require-key")?)?,
            "--aws-access-key-id" => aws_id = Some(value("--aws-access-key-id")?),
            "--aws-secret-key" => aws_secret = Some(value("--aws-secret-key")?),
            "--quiet" => log = false,
            "--fleet" => fleet_n = Some(count("--fleet", &value("--fleet")?)?),
            "--fleet-spread" => fleet_spread = true,
            "--fleet-speeds" => speeds = speed_list(&value("--fleet-speeds")?)?,
            "--fleet-cache-blocks" => {
                pod.cache_blocks = count("--fleet-cache-blocks", &value("--fleet-cache-blocks")?)?
            }
            "--fleet-block-tokens" => {
                pod.block_tokens = count("--fleet-block-tokens", &value("--fleet-block-tokens")?)?
            }
            "--fleet-max-running" => {
                pod.max_running = count("--fleet-max-running", &value("--fleet-max-running")?)?
            }
            "--fleet-prefill-us" => {
                pod.prefill_us_per_token =
                    number("--fleet-prefill-us", &value("--fleet-prefill-us")?)?
            }
            "--fleet-decode-us" => {
                pod.decode_us_per_token = number("--fleet-decode-us", &value("--fleet-decode-us")?)?
            }
            "--fleet-base-us" => {
                pod.base_us = number("--fleet-base-us", &value("--fleet-base-us")?)?
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    credentials.aws = match (aws_id, aws_secret) {
        (None, None) => None,
        (Some(access_key_id), Some(secret_access_key)) => Some(AwsKey {
            access_key_id,
            secret_access_key,
        }),
        _ => return Err("--aws-access-key-id and --aws-secret-key go together".to_string()),
    };
    Ok(Cli {
        config: Config {
            listen,
            defaults,
            log,
            credentials,
        },
        port_file,
        fleet: fleet_n.map(|n| (n, pod, speeds)),
        fleet_spread,
    })
}

/// A positive count (pods, blocks, slots).
fn count(name: &str, v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("{name}: {v:?} is not a count from 1 to 1000000")),
    }
}

/// Comma-separated positive speeds.
fn speed_list(v: &str) -> Result<Vec<f64>, String> {
    v.split(',')
        .map(|s| match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 && x <= 1000.0 => Ok(x),
            _ => Err(format!("--fleet-speeds: {s:?} is not a speed over 0")),
        })
        .collect()
}

/// `KEY` for every provider, or `PROVIDER=KEY` when the part before `=` names a provider.
fn require_key(creds: &mut Credentials, arg: &str) -> Result<(), String> {
    if arg.is_empty() {
        return Err("--require-key: the key is empty".to_string());
    }
    match arg.split_once('=') {
        Some((provider, key)) if PROVIDERS.contains(&provider) => {
            if key.is_empty() {
                return Err(format!("--require-key: the key for {provider} is empty"));
            }
            creds.require(provider, key);
        }
        _ => creds.require_everywhere(arg),
    }
    Ok(())
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
    if let Some((n, pod, speeds)) = &cli.fleet {
        return run_fleet(&cli, *n, pod, speeds).await;
    }
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

async fn run_fleet(cli: &Cli, n: usize, pod: &PodSpec, speeds: &[f64]) -> Result<(), String> {
    let mut config = FleetConfig::uniform(cli.config.listen, n, pod, speeds);
    config.log = cli.config.log;
    config.spread_addresses = cli.fleet_spread;
    let fleet = Fleet::start(config)
        .await
        .map_err(|e| format!("cannot start the fleet on {}: {e}", cli.config.listen))?;
    let mut ports: Vec<String> = fleet.addrs().iter().map(|a| a.port().to_string()).collect();
    if cli.fleet_spread {
        ports.truncate(1);
    }
    if let Some(path) = &cli.port_file {
        write_text_file(path, &ports.join(","))?;
    }
    for (pod, addr) in fleet.pods().iter().zip(fleet.addrs()) {
        eprintln!(
            "llm-sim: {} (speed {}) listening on {addr}",
            pod.spec.name, pod.spec.speed
        );
    }
    wait_for_signal().await?;
    eprintln!("llm-sim: shutting down the fleet");
    fleet.shutdown().await;
    Ok(())
}

/// Writes the port to a temporary file and renames it, so readers never see a partial number.
fn write_port_file(path: &str, port: u16) -> Result<(), String> {
    write_text_file(path, &port.to_string())
}

/// Writes `text` to a temporary file and renames it into place.
fn write_text_file(path: &str, text: &str) -> Result<(), String> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {tmp}: {e}"))?;
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
    fn require_key_applies_to_all_providers_or_to_the_named_one() {
        let cli = parse_args(args(&[
            "--require-key",
            "k=v",
            "--require-key",
            "anthropic=ak",
            "--aws-access-key-id",
            "AKID",
            "--aws-secret-key",
            "s",
        ]))
        .unwrap();
        let creds = cli.config.credentials;
        assert_eq!(creds.openai.as_deref(), Some("k=v"));
        assert_eq!(creds.anthropic.as_deref(), Some("ak"));
        assert_eq!(creds.aws.unwrap().access_key_id, "AKID");
        assert!(parse_args(args(&["--aws-secret-key", "s"]))
            .unwrap_err()
            .contains("go together"));
    }

    #[test]
    fn fleet_flags_make_a_pod_template_and_speeds() {
        let cli = parse_args(args(&[
            "--fleet",
            "3",
            "--fleet-speeds",
            "1,2",
            "--fleet-cache-blocks",
            "64",
            "--fleet-max-running",
            "2",
            "--fleet-prefill-us",
            "100",
        ]))
        .unwrap();
        let (n, pod, speeds) = cli.fleet.unwrap();
        assert_eq!((n, pod.cache_blocks, pod.max_running), (3, 64, 2));
        assert_eq!(pod.prefill_us_per_token, 100);
        assert_eq!(speeds, vec![1.0, 2.0]);
        assert!(
            parse_args(args(&[])).unwrap().fleet.is_none(),
            "off by default"
        );
        assert!(parse_args(args(&["--fleet", "0"]))
            .unwrap_err()
            .contains("--fleet"));
        assert!(parse_args(args(&["--fleet-speeds", "1,-1"]))
            .unwrap_err()
            .contains("--fleet-speeds"));
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
