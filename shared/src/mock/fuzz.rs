//! Bounded, deterministic mutation fuzzing for tests: a fixed-seed generator and a mutator that
//! flips bytes, drops or repeats ranges, inserts chosen pieces and cuts inputs short. Seeded from
//! real samples, it reaches the decoders' and translators' error paths in a test run of a second;
//! `AIGW_FUZZ_ROUNDS` raises the rounds for a longer local run.

/// A xorshift generator: fast, deterministic, so a failing round reproduces.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
        }
    }
}

/// Rounds per seed: `AIGW_FUZZ_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("AIGW_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One to four random edits of `input`; insertions pick from `pieces` (e.g. `{`, `"`, `\n\n`)
/// or random bytes when `pieces` is empty.
pub fn mutate(rng: &mut Rng, input: &[u8], pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let len = out.len();
        let at = rng.below(len.max(1)).min(len);
        match rng.below(5) {
            0 if len > 0 => {
                if let Some(b) = out.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let end = at.saturating_add(rng.below(48)).min(len);
                out.drain(at..end);
            }
            2 => {
                let end = at.saturating_add(rng.below(48)).min(len);
                let piece = out.get(at..end).unwrap_or_default().to_vec();
                out.splice(at..at, piece);
            }
            3 => {
                let piece: Vec<u8> = match pieces.get(rng.below(pieces.len())) {
                    Some(p) if !pieces.is_empty() => p.to_vec(),
                    _ => (0..rng.below(16)).map(|_| rng.next_u64() as u8).collect(),
                };
                out.splice(at..at, piece);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// `input` cut into random chunks of 1 to `max` bytes (one empty chunk for an empty input).
pub fn chunks(rng: &mut Rng, input: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = rng.below(max).saturating_add(1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head.to_vec());
        rest = tail;
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutants_and_chunks_cover_the_input() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let sample = b"{\"model\":\"m\",\"messages\":[]}";
        for _ in 0..50 {
            assert_eq!(
                mutate(&mut a, sample, &[b"{"]),
                mutate(&mut b, sample, &[b"{"])
            );
        }
        let parts = chunks(&mut a, sample, 5);
        assert!(parts.iter().all(|p| (1..=5).contains(&p.len())));
        assert_eq!(parts.concat(), sample.to_vec());
    }
}
