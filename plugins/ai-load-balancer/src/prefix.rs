//! Prefix-cache keys: the prompt cut into fixed-size byte blocks, each block's hash chained with
//! the one before (so equal hash `i` means equal prompt up to the end of block `i`), seeded with
//! the model. Hashing is incremental over the message texts as they lie in the body (no joined
//! copy), stops after `max_blocks`, and ignores a trailing partial block.

use aigw_shared::llm::RequestView;

use crate::config::PrefixSettings;

const K: u64 = 0x517c_c1b7_2722_0a95;

/// Chained block hashing over pieces of text pushed in order.
#[derive(Debug, Clone)]
pub struct PrefixHasher {
    block_bytes: usize,
    max_blocks: usize,
    filled: usize,
    state: u64,
    prev: u64,
    hashes: Vec<u64>,
}

impl PrefixHasher {
    /// A hasher for `settings`, seeded with `seed` (the model: different models never share blocks).
    pub fn new(settings: &PrefixSettings, seed: &[u8]) -> Self {
        let mut prev: u64 = 0x9e37_79b9_7f4a_7c15;
        for &b in seed {
            prev = (prev.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        Self {
            block_bytes: settings.block_bytes.max(1),
            max_blocks: settings.max_blocks,
            filled: 0,
            state: 0,
            prev: mix(prev),
            hashes: Vec::new(),
        }
    }

    /// True once `max_blocks` blocks are hashed: later text changes nothing.
    pub fn is_full(&self) -> bool {
        self.hashes.len() >= self.max_blocks
    }

    /// Hash more prompt bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.is_full() {
            let take = (self.block_bytes - self.filled).min(bytes.len());
            let (head, tail) = bytes.split_at(take);
            let mut s = self.state;
            for &b in head {
                s = (s.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
            }
            self.state = s;
            self.filled += take;
            bytes = tail;
            if self.filled == self.block_bytes {
                self.prev = mix(self.prev ^ mix(self.state));
                self.hashes.push(self.prev);
                self.state = 0;
                self.filled = 0;
            }
        }
    }

    /// The chained hashes of the complete blocks, in prompt order.
    pub fn finish(self) -> Vec<u64> {
        self.hashes
    }
}

/// The block hashes of a request: every message as `role`, a unit separator, its text pieces and
/// a record separator, then completions prompts; seeded with the model.
pub fn request_hashes(view: &RequestView<'_>, settings: &PrefixSettings) -> Vec<u64> {
    let mut h = PrefixHasher::new(settings, view.model_str().as_bytes());
    for m in &view.messages {
        h.push(m.role.as_str().as_bytes());
        h.push(b"\x1f");
        for part in &m.content.parts {
            h.push(part.as_str().as_bytes());
        }
        h.push(b"\x1e");
        if h.is_full() {
            break;
        }
    }
    for input in &view.inputs {
        h.push(input.as_str().as_bytes());
        h.push(b"\x1e");
    }
    h.finish()
}

/// A 64-bit finaliser (splitmix64's), so nearby states spread over the table.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_shared::llm::Api;

    fn settings(block: usize, max: usize) -> PrefixSettings {
        PrefixSettings {
            block_bytes: block,
            max_blocks: max,
            table_slots: 1024,
            capacity_blocks: 1024,
        }
    }

    fn hashes(text: &[&[u8]], block: usize, max: usize) -> Vec<u64> {
        let mut h = PrefixHasher::new(&settings(block, max), b"m");
        for t in text {
            h.push(t);
        }
        h.finish()
    }

    #[test]
    fn the_split_of_the_input_into_pieces_does_not_change_the_hashes() {
        let whole = hashes(&[b"abcdefghijklmnopqrstuvwxyz"], 4, 100);
        let pieces = hashes(&[b"a", b"bcdefg", b"", b"hijklmnopqrstuvwx", b"yz"], 4, 100);
        assert_eq!(whole, pieces);
        assert_eq!(
            whole.len(),
            6,
            "26 bytes: six full blocks, the partial seventh ignored"
        );
    }

    #[test]
    fn equal_prefixes_share_their_leading_hashes_and_diverge_after() {
        let a = hashes(&[b"system prompt shared|user one, more"], 8, 100);
        let b = hashes(&[b"system prompt shared|user two, more"], 8, 100);
        assert_eq!(a[..3], b[..3], "the first 24 bytes are equal");
        assert_ne!(a[3], b[3]);
    }

    #[test]
    fn a_change_early_changes_every_later_hash() {
        let a = hashes(&[b"xxxxxxxxyyyyyyyyzzzzzzzz"], 8, 100);
        let b = hashes(&[b"Xxxxxxxxyyyyyyyyzzzzzzzz"], 8, 100);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y), "chained");
    }

    #[test]
    fn hashing_stops_at_the_block_limit() {
        let long = vec![b'a'; 10_000];
        assert_eq!(hashes(&[&long], 16, 5).len(), 5);
    }

    #[test]
    fn the_model_seeds_the_chain() {
        let s = settings(4, 10);
        let mut a = PrefixHasher::new(&s, b"m1");
        let mut b = PrefixHasher::new(&s, b"m2");
        a.push(b"abcd");
        b.push(b"abcd");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn chat_requests_hash_roles_and_texts_in_order() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hi"}]}"#;
        let view = RequestView::parse(Api::ChatCompletions, body).unwrap();
        let one = request_hashes(&view, &settings(8, 100));
        let body2 = br#"{"model":"m","messages":[{"role":"user","content":"You are a helpful assistant."},{"role":"user","content":"Hi"}]}"#;
        let view2 = RequestView::parse(Api::ChatCompletions, body2).unwrap();
        let two = request_hashes(&view2, &settings(8, 100));
        assert!(!one.is_empty());
        assert_ne!(one[0], two[0], "the role is part of the prompt");
    }
}
