//! Fleet mode: N simulated vLLM-like pods ([`pod::Pod`]), each on its own loopback port, each
//! answering OpenAI chat and completions requests (JSON or SSE) with a time to first token that
//! grows with the uncached prompt tokens and the queue, and an ORCA `endpoint-load-metrics`
//! header on every response. Control paths per pod: `GET /_sim/health`, `GET /_sim/fleet`
//! (name, stats, load), `POST /_sim/fleet/reset` (empty cache and counters),
//! `POST /_sim/fleet/load?waiting=N&kv=F` (report this load until `DELETE /_sim/fleet/load`).

mod http;
pub mod pod;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use pod::{Load, Pod, PodSpec, PodStats};

/// How to start a fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Where pod `i` listens: this address with port 0 (free ports), or port `+ i` when non-zero.
    pub listen: SocketAddr,
    /// One spec per pod.
    pub pods: Vec<PodSpec>,
    /// Log one line per request.
    pub log: bool,
    /// Every pod on pod 0's port, pod `i` on the IPv4 address `i` after `listen`'s
    /// (127.0.0.1, 127.0.0.2, …: all loopback on Linux), so one port names the whole fleet.
    pub spread_addresses: bool,
}

impl FleetConfig {
    /// `n` pods of `template`, named `pod-0`…, with speeds from `speeds` (cycled; 1.0 when empty).
    pub fn uniform(listen: SocketAddr, n: usize, template: &PodSpec, speeds: &[f64]) -> Self {
        let pods = (0..n)
            .map(|i| PodSpec {
                name: format!("pod-{i}"),
                speed: if speeds.is_empty() {
                    1.0
                } else {
                    speeds.get(i % speeds.len()).copied().unwrap_or(1.0)
                },
                ..template.clone()
            })
            .collect();
        Self {
            listen,
            pods,
            log: false,
            spread_addresses: false,
        }
    }
}

/// Pod `i`'s address when the pods share one port: the IPv4 address `i` after `base`'s.
fn spread(base: SocketAddr, port: u16, i: usize) -> io::Result<SocketAddr> {
    let SocketAddr::V4(v4) = base else {
        return Err(io::Error::other(
            "spread addresses need an IPv4 --listen address",
        ));
    };
    let next = u32::from(*v4.ip())
        .checked_add(u32::try_from(i).map_err(io::Error::other)?)
        .ok_or_else(|| io::Error::other("address out of range"))?;
    Ok(SocketAddr::from((std::net::Ipv4Addr::from(next), port)))
}

/// A running fleet.
#[derive(Debug)]
pub struct Fleet {
    addrs: Vec<SocketAddr>,
    pods: Vec<Arc<Pod>>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Bind every pod and start serving on the current tokio runtime.
    pub async fn start(config: FleetConfig) -> io::Result<Fleet> {
        let mut fleet = Fleet {
            addrs: Vec::new(),
            pods: Vec::new(),
            stops: Vec::new(),
            tasks: Vec::new(),
        };
        for (i, spec) in config.pods.into_iter().enumerate() {
            let mut addr = config.listen;
            if config.spread_addresses && i > 0 {
                addr = spread(
                    config.listen,
                    fleet.addrs.first().map_or(0, |a| a.port()),
                    i,
                )?;
            } else if addr.port() != 0 {
                let port = u16::try_from(usize::from(addr.port()) + i)
                    .map_err(|_| io::Error::other("port out of range"))?;
                addr.set_port(port);
            }
            let listener = TcpListener::bind(addr).await?;
            let bound = listener.local_addr()?;
            let pod = Arc::new(Pod::new(spec));
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(http::serve(listener, Arc::clone(&pod), config.log, stopped));
            fleet.addrs.push(bound);
            fleet.pods.push(pod);
            fleet.stops.push(stop);
            fleet.tasks.push(task);
        }
        Ok(fleet)
    }

    /// The pods' bound addresses, in pod order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The pods, in order.
    pub fn pods(&self) -> &[Arc<Pod>] {
        &self.pods
    }

    /// Stop every pod.
    pub async fn shutdown(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
