//! The mutations: a deterministic random source ([`Rng`]) and [`mutate`], which turns a corpus
//! entry into a new input by a stack of byte flips, inserts, deletes, splices, truncations, chunk
//! repetitions, interesting integers and dictionary tokens. Pure: the same seed, corpus and
//! tokens give the same inputs, so a run can be replayed.

/// Largest input a mutation produces: bounded so that every target's work per input is too.
pub const MAX_INPUT: usize = 1 << 20;

/// SplitMix64: small, fast and good enough to pick mutations; deterministic for a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A length from 1 to `max`, small lengths more likely (half the time at most 8).
    fn length(&mut self, max: usize) -> usize {
        let cap = if self.one_in(2) { max.min(8) } else { max };
        1 + self.below(cap.max(1))
    }
}

/// FNV-1a of `bytes`: names saved inputs and tells outcomes apart.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Integers that sit on boundaries parsers check (or forget to), in every width.
const INTERESTING: [u64; 18] = [
    0,
    1,
    2,
    7,
    8,
    16,
    32,
    64,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x1000,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// One kind of mutation; [`mutate`] stacks several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Flip one bit.
    FlipBit,
    /// Set one byte to a random value.
    SetByte,
    /// Add or subtract a small number to a byte.
    AddByte,
    /// Overwrite 1, 2, 4 or 8 bytes with an interesting integer, either byte order.
    Interesting,
    /// Insert random bytes.
    Insert,
    /// Delete a range.
    Delete,
    /// Keep a prefix of this input and append a suffix of another corpus entry.
    Splice,
    /// Cut the input short.
    Truncate,
    /// Repeat a chunk several times in place.
    RepeatChunk,
    /// Copy a chunk over another place of the input.
    CopyChunk,
    /// Insert or overwrite with a token of the target's dictionary.
    Token,
}

impl Mutation {
    /// Every mutation, each picked with equal chance.
    pub const ALL: [Mutation; 11] = [
        Mutation::FlipBit,
        Mutation::SetByte,
        Mutation::AddByte,
        Mutation::Interesting,
        Mutation::Insert,
        Mutation::Delete,
        Mutation::Splice,
        Mutation::Truncate,
        Mutation::RepeatChunk,
        Mutation::CopyChunk,
        Mutation::Token,
    ];
}

/// A new input from `corpus[base]`: 1 to 16 stacked mutations (fewer more likely), never longer
/// than [`MAX_INPUT`]. `tokens` are the target's dictionary (may be empty).
pub fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], base: usize, tokens: &[&[u8]]) -> Vec<u8> {
    let mut input = corpus.get(base).cloned().unwrap_or_default();
    let stack = 1 << rng.below(5);
    for _ in 0..stack {
        let mutation = Mutation::ALL[rng.below(Mutation::ALL.len())];
        apply(rng, &mut input, mutation, corpus, tokens);
        input.truncate(MAX_INPUT);
    }
    input
}

/// Applies one mutation to `input` (a no-op when the input is too short for it).
pub fn apply(
    rng: &mut Rng,
    input: &mut Vec<u8>,
    mutation: Mutation,
    corpus: &[Vec<u8>],
    tokens: &[&[u8]],
) {
    let len = input.len();
    match mutation {
        Mutation::FlipBit if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        Mutation::SetByte if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.next_u64() as u8;
        }
        Mutation::AddByte if len > 0 => {
            let at = rng.below(len);
            let delta = 1 + rng.below(16) as u8;
            input[at] = if rng.one_in(2) {
                input[at].wrapping_add(delta)
            } else {
                input[at].wrapping_sub(delta)
            };
        }
        Mutation::Interesting if len > 0 => {
            let width = [1usize, 2, 4, 8][rng.below(4)].min(len);
            let value = INTERESTING[rng.below(INTERESTING.len())];
            // The value's low `width` bytes, in either byte order.
            let (le, be) = (value.to_le_bytes(), value.to_be_bytes());
            let bytes = if rng.one_in(2) {
                &le[..width]
            } else {
                &be[8 - width..]
            };
            let at = rng.below(len - width + 1);
            input[at..at + width].copy_from_slice(bytes);
        }
        Mutation::Insert => {
            let at = rng.below(len + 1);
            let count = rng.length(64);
            let bytes: Vec<u8> = (0..count).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        Mutation::Delete if len > 0 => {
            let at = rng.below(len);
            let count = rng.length(len - at);
            input.drain(at..at + count);
        }
        Mutation::Splice if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let keep = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(keep);
            input.extend_from_slice(&other[from..]);
        }
        Mutation::Truncate if len > 0 => {
            input.truncate(rng.below(len));
        }
        Mutation::RepeatChunk if len > 0 => {
            let at = rng.below(len);
            let size = rng.length((len - at).min(256));
            let most = if rng.one_in(8) { 4096 } else { 16 };
            let times = 1 + rng.below(most);
            let chunk = input[at..at + size].to_vec();
            let room = MAX_INPUT.saturating_sub(len) / size;
            let repeated = chunk.repeat(times.min(room));
            input.splice(at..at, repeated);
        }
        Mutation::CopyChunk if len > 1 => {
            let from = rng.below(len);
            let size = rng.length(len - from);
            let to = rng.below(len - size + 1);
            input.copy_within(from..from + size, to);
        }
        Mutation::Token if !tokens.is_empty() => {
            let token = tokens[rng.below(tokens.len())];
            let at = rng.below(len + 1);
            if rng.one_in(2) || at + token.len() > len {
                input.splice(at..at, token.iter().copied());
            } else {
                input[at..at + token.len()].copy_from_slice(token);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs_and_another_seed_others() {
        let corpus = vec![b"Package: hello\nVersion: 1\n".to_vec(), vec![0u8; 64]];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|i| mutate(&mut rng, &corpus, i % 2, &[b"Status:"]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn every_mutation_changes_something_and_stays_bounded() {
        let corpus = vec![
            b"0123456789abcdefghijklmnopqrstuvwxyz".to_vec(),
            b"XYZ".to_vec(),
        ];
        let mut rng = Rng::new(1);
        for mutation in Mutation::ALL {
            let changed = (0..50).any(|_| {
                let mut input = corpus[0].clone();
                apply(&mut rng, &mut input, mutation, &corpus, &[b"TOKEN"]);
                input != corpus[0]
            });
            assert!(changed, "{mutation:?} never changed the input");
        }
        // Stacked repetitions of a large input never pass the bound.
        let big = vec![vec![7u8; MAX_INPUT - 10]];
        for _ in 0..200 {
            assert!(mutate(&mut rng, &big, 0, &[]).len() <= MAX_INPUT);
        }
    }

    #[test]
    fn mutations_of_an_empty_input_do_not_panic() {
        let mut rng = Rng::new(3);
        for mutation in Mutation::ALL {
            for _ in 0..20 {
                let mut input = Vec::new();
                apply(&mut rng, &mut input, mutation, &[], &[]);
            }
        }
        assert!(mutate(&mut rng, &[], 0, &[]).len() <= 64 * 16);
    }

    #[test]
    fn interesting_integers_land_whole() {
        // Over many draws, each width's all-ones value appears in the input.
        let mut rng = Rng::new(11);
        let mut seen_u32_max = false;
        for _ in 0..2000 {
            let mut input = vec![0x11u8; 16];
            apply(&mut rng, &mut input, Mutation::Interesting, &[], &[]);
            seen_u32_max |= input.windows(4).any(|w| w == [0xff; 4])
                && !input.windows(5).any(|w| w == [0xff; 5]);
        }
        assert!(seen_u32_max);
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
