//! One simulated vLLM-like pod, without the network: a prefix KV cache of limited capacity (LRU
//! over chained block hashes of the prompt's tokens), a queue in front of a fixed number of
//! running slots, time to first token from the uncached prompt tokens and the pod's speed, and
//! the load it reports (KV usage of running requests, waiting, running).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How a pod behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSpec {
    /// Name reported in `x-sim-pod`.
    pub name: String,
    /// Relative speed (an H100 pod 2.0 against an A100 pod 1.0): every duration is divided by it.
    pub speed: f64,
    /// KV-cache capacity in blocks.
    pub cache_blocks: usize,
    /// Prompt tokens per block.
    pub block_tokens: usize,
    /// Requests running at once; more wait in the queue.
    pub max_running: usize,
    /// Prefill time per uncached prompt token, µs.
    pub prefill_us_per_token: u64,
    /// Decode time per output token, µs.
    pub decode_us_per_token: u64,
    /// Fixed time before the first token, µs.
    pub base_us: u64,
}

impl Default for PodSpec {
    fn default() -> Self {
        Self {
            name: "pod-0".to_owned(),
            speed: 1.0,
            cache_blocks: 256,
            block_tokens: 16,
            max_running: 4,
            prefill_us_per_token: 200,
            decode_us_per_token: 5_000,
            base_us: 5_000,
        }
    }
}

/// What the pod reports about its load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Load {
    /// KV-cache blocks held by running requests (shared blocks once), as a fraction of the capacity.
    pub kv_cache_usage_perc: f64,
    /// Requests waiting for a slot.
    pub num_requests_waiting: u32,
    /// Requests running.
    pub num_requests_running: u32,
}

impl Load {
    /// The ORCA `endpoint-load-metrics` value in `TEXT` or `JSON` form, as vLLM writes it.
    pub fn orca(&self, json: bool) -> String {
        if json {
            format!(
                r#"JSON {{"named_metrics":{{"kv_cache_usage_perc":{},"num_requests_waiting":{},"num_requests_running":{}}}}}"#,
                self.kv_cache_usage_perc, self.num_requests_waiting, self.num_requests_running
            )
        } else {
            format!(
                "TEXT named_metrics.kv_cache_usage_perc={}, named_metrics.num_requests_waiting={}, named_metrics.num_requests_running={}",
                self.kv_cache_usage_perc, self.num_requests_waiting, self.num_requests_running
            )
        }
    }
}

/// What the pod has served.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PodStats {
    /// Requests prefilled.
    pub requests: u64,
    /// Prompt tokens seen.
    pub prompt_tokens: u64,
    /// Prompt tokens found in the KV cache.
    pub cached_tokens: u64,
}

/// A request admitted to a slot, prefill planned.
#[derive(Debug)]
pub struct Admission {
    /// Prompt tokens found in the cache (whole blocks).
    pub cached_tokens: usize,
    /// All prompt tokens.
    pub prompt_tokens: usize,
    /// Time to spend before the first token.
    pub prefill: Duration,
    blocks: Vec<u64>,
    /// The running slot, given back when the admission is dropped (`None` only if the slots'
    /// semaphore were closed, which it never is).
    _permit: Option<OwnedSemaphorePermit>,
}

/// A bounded LRU set of block hashes.
#[derive(Debug, Default)]
struct Lru {
    last_use: HashMap<u64, u64>,
    by_age: BTreeMap<u64, u64>,
    tick: u64,
}

impl Lru {
    fn contains(&self, h: u64) -> bool {
        self.last_use.contains_key(&h)
    }

    fn touch(&mut self, h: u64, capacity: usize) {
        self.tick += 1;
        if let Some(old) = self.last_use.insert(h, self.tick) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(self.tick, h);
        while self.last_use.len() > capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.last_use.remove(&oldest);
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    lru: Lru,
    waiting: u32,
    running: u32,
    /// Blocks referenced by running requests (a block shared by two is held once, as in vLLM).
    running_refs: HashMap<u64, u32>,
    stats: PodStats,
    forced: Option<Load>,
}

/// One pod.
#[derive(Debug)]
pub struct Pod {
    /// Its behaviour.
    pub spec: PodSpec,
    inner: Mutex<Inner>,
    slots: std::sync::Arc<Semaphore>,
}

impl Pod {
    /// A pod with an empty cache.
    pub fn new(spec: PodSpec) -> Self {
        let slots = std::sync::Arc::new(Semaphore::new(spec.max_running.max(1)));
        Self {
            spec,
            inner: Mutex::new(Inner::default()),
            slots,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue for a slot, then plan the prefill of a prompt with these block hashes.
    pub async fn admit(&self, hashes: &[u64], prompt_tokens: usize) -> Admission {
        self.lock().waiting += 1;
        let permit = std::sync::Arc::clone(&self.slots).acquire_owned().await;
        let mut inner = self.lock();
        inner.waiting = inner.waiting.saturating_sub(1);
        let cap = self.spec.cache_blocks;
        let matched = hashes
            .iter()
            .take_while(|h| inner.lru.contains(**h))
            .count();
        for &h in hashes {
            inner.lru.touch(h, cap);
        }
        let cached_tokens = (matched * self.spec.block_tokens).min(prompt_tokens);
        inner.running += 1;
        for &h in hashes {
            *inner.running_refs.entry(h).or_insert(0) += 1;
        }
        inner.stats.requests += 1;
        inner.stats.prompt_tokens += prompt_tokens as u64;
        inner.stats.cached_tokens += cached_tokens as u64;
        let uncached = (prompt_tokens - cached_tokens) as u64;
        let us = self.spec.base_us + uncached * self.spec.prefill_us_per_token;
        Admission {
            cached_tokens,
            prompt_tokens,
            prefill: self.scaled(us),
            blocks: hashes.to_vec(),
            _permit: permit.ok(),
        }
    }

    /// The request is done: its slot and blocks are free again.
    pub fn finish(&self, admission: Admission) {
        let mut inner = self.lock();
        inner.running = inner.running.saturating_sub(1);
        for h in &admission.blocks {
            if let Some(n) = inner.running_refs.get_mut(h) {
                *n -= 1;
                if *n == 0 {
                    inner.running_refs.remove(h);
                }
            }
        }
        drop(admission);
    }

    /// The answer is generated: its full blocks (the prompt's hashes continued over the answer,
    /// as `prompt_blocks` of the prompt plus the assistant message gives them) stay in the cache,
    /// as vLLM keeps completed blocks of generated tokens, so the next turn of the conversation
    /// finds its whole history.
    pub fn remember(&self, hashes: &[u64]) {
        let cap = self.spec.cache_blocks;
        let mut inner = self.lock();
        for &h in hashes {
            inner.lru.touch(h, cap);
        }
    }

    /// Time to decode `tokens` output tokens.
    pub fn decode_time(&self, tokens: u64) -> Duration {
        self.scaled(tokens.saturating_mul(self.spec.decode_us_per_token))
    }

    /// Per output token.
    pub fn per_token(&self) -> Duration {
        self.scaled(self.spec.decode_us_per_token)
    }

    fn scaled(&self, us: u64) -> Duration {
        let speed = if self.spec.speed > 0.0 {
            self.spec.speed
        } else {
            1.0
        };
        Duration::from_secs_f64(us as f64 / 1e6 / speed)
    }

    /// The load it reports now (or the forced one).
    pub fn load(&self) -> Load {
        let inner = self.lock();
        if let Some(forced) = inner.forced {
            return forced;
        }
        let cap = self.spec.cache_blocks.max(1) as f64;
        Load {
            kv_cache_usage_perc: ((inner.running_refs.len() as f64 / cap).min(1.0) * 1000.0)
                .round()
                / 1000.0,
            num_requests_waiting: inner.waiting,
            num_requests_running: inner.running,
        }
    }

    /// Report `load` instead of the real one until cleared (tests make a pod look saturated).
    pub fn force_load(&self, load: Option<Load>) {
        self.lock().forced = load;
    }

    /// What it has served.
    pub fn stats(&self) -> PodStats {
        self.lock().stats.clone()
    }

    /// Empty the cache and the counters (between benchmark rounds).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.lru = Lru::default();
        inner.stats = PodStats::default();
        inner.forced = None;
    }
}

/// Prompt tokens (whitespace-separated words, as everywhere in llm-sim) and the chained hashes
/// of their full blocks.
pub fn prompt_blocks(pieces: &[String], block_tokens: usize) -> (Vec<u64>, usize) {
    let block = block_tokens.max(1);
    let mut hashes = Vec::new();
    let mut prev: u64 = 0xcbf2_9ce4_8422_2325;
    let mut cur = prev;
    let mut in_block = 0;
    let mut tokens = 0;
    for word in pieces.iter().flat_map(|p| p.split_whitespace()) {
        tokens += 1;
        for b in word.bytes().chain(std::iter::once(b' ')) {
            cur = (cur ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        in_block += 1;
        if in_block == block {
            prev = (prev ^ cur)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
            hashes.push(prev);
            cur = prev;
            in_block = 0;
        }
    }
    (hashes, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, tag: &str) -> String {
        (0..n)
            .map(|i| format!("{tag}{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn spec(cache: usize) -> PodSpec {
        PodSpec {
            cache_blocks: cache,
            block_tokens: 4,
            max_running: 2,
            prefill_us_per_token: 1000,
            base_us: 0,
            ..PodSpec::default()
        }
    }

    #[tokio::test]
    async fn a_repeated_prompt_prefix_is_served_from_the_cache_and_prefills_faster() {
        let pod = Pod::new(spec(100));
        let (h1, t1) = prompt_blocks(&[words(40, "s"), words(8, "a")], 4);
        let a = pod.admit(&h1, t1).await;
        assert_eq!((a.cached_tokens, a.prompt_tokens), (0, 48));
        assert_eq!(a.prefill, Duration::from_millis(48));
        pod.finish(a);
        let (h2, t2) = prompt_blocks(&[words(40, "s"), words(8, "b")], 4);
        let b = pod.admit(&h2, t2).await;
        assert_eq!(
            b.cached_tokens, 40,
            "the shared 40 tokens, ten whole blocks"
        );
        assert_eq!(b.prefill, Duration::from_millis(8));
        pod.finish(b);
        assert_eq!(pod.stats().cached_tokens, 40);
    }

    #[tokio::test]
    async fn the_answer_stays_cached_for_the_next_turn() {
        let pod = Pod::new(spec(100));
        let turn1 = vec![words(40, "s"), words(8, "u")];
        let (h, t) = prompt_blocks(&turn1, 4);
        let a = pod.admit(&h, t).await;
        let mut with_answer = turn1.clone();
        with_answer.push(format!("assistant: {}", words(8, "a")));
        pod.remember(&prompt_blocks(&with_answer, 4).0);
        pod.finish(a);
        let mut turn2 = with_answer.clone();
        turn2.push(words(8, "v"));
        let (h2, t2) = prompt_blocks(&turn2, 4);
        let b = pod.admit(&h2, t2).await;
        // 40 + 8 + 9 (assistant: and 8 words) = 57 tokens: 14 whole blocks = 56.
        assert_eq!(b.cached_tokens, 56);
        pod.finish(b);
    }

    #[tokio::test]
    async fn the_cache_forgets_the_least_recently_used_blocks() {
        let pod = Pod::new(spec(10));
        let (old, t) = prompt_blocks(&[words(40, "old")], 4);
        pod.finish(pod.admit(&old, t).await);
        let (new, t2) = prompt_blocks(&[words(40, "new")], 4);
        pod.finish(pod.admit(&new, t2).await);
        let again = pod.admit(&old, t).await;
        assert_eq!(again.cached_tokens, 0, "ten blocks of capacity: evicted");
        pod.finish(again);
    }

    #[tokio::test]
    async fn a_faster_pod_prefills_in_less_time() {
        let pod = Pod::new(PodSpec {
            speed: 2.0,
            ..spec(100)
        });
        let (h, t) = prompt_blocks(&[words(20, "x")], 4);
        let a = pod.admit(&h, t).await;
        assert_eq!(a.prefill, Duration::from_millis(10));
        pod.finish(a);
    }

    #[tokio::test]
    async fn requests_beyond_the_running_slots_wait_and_are_reported_waiting() {
        let pod = std::sync::Arc::new(Pod::new(spec(100)));
        let (h, t) = prompt_blocks(&[words(8, "q")], 4);
        let a = pod.admit(&h, t).await;
        let b = pod.admit(&h, t).await;
        let p2 = pod.clone();
        let h2 = h.clone();
        let waiter = tokio::spawn(async move {
            let c = p2.admit(&h2, t).await;
            p2.finish(c);
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let load = pod.load();
        assert_eq!(
            (load.num_requests_running, load.num_requests_waiting),
            (2, 1)
        );
        assert!(load.kv_cache_usage_perc > 0.0);
        assert_eq!(
            load.kv_cache_usage_perc, 0.02,
            "two blocks shared by both: held once"
        );
        pod.finish(a);
        waiter.await.unwrap();
        pod.finish(b);
        assert_eq!(pod.load().num_requests_running, 0);
        assert_eq!(pod.load().kv_cache_usage_perc, 0.0);
    }

    #[test]
    fn load_reports_in_both_orca_forms() {
        let l = Load {
            kv_cache_usage_perc: 0.25,
            num_requests_waiting: 3,
            num_requests_running: 2,
        };
        assert_eq!(
            l.orca(false),
            "TEXT named_metrics.kv_cache_usage_perc=0.25, named_metrics.num_requests_waiting=3, named_metrics.num_requests_running=2"
        );
        let json: serde_json::Value =
            serde_json::from_str(l.orca(true).strip_prefix("JSON ").unwrap()).unwrap();
        assert_eq!(json["named_metrics"]["num_requests_waiting"], 3);
    }
}
