//! The one random-number generator of a training run.
//!
//! Shuffling, batch sampling and dropout masks all draw from generators of
//! this type, so a run is a pure function of its seed, and the generator's
//! whole state (four `u64`s) goes into checkpoints: a resumed run draws the
//! same numbers as an uninterrupted one. The algorithm is xoshiro256++
//! seeded through SplitMix64 (Blackman and Vigna).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s }
    }

    /// An independent generator for a named purpose (`"shuffle"`,
    /// `"dropout"`, an objective's name), derived from a seed.
    pub fn derived(seed: u64, purpose: &str) -> Self {
        // FNV-1a over the purpose, mixed into the seed.
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        for b in purpose.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        Rng::new(seed ^ h.rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, n) without modulo bias (Lemire's method); `n > 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as u64
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }

    /// A dropout keep-mask already scaled by `1 / (1 - p)`: each element is
    /// 0 with probability `p`, else `1 / (1 - p)` (inverted dropout, as
    /// torch does).
    pub fn dropout_mask(&mut self, n: usize, p: f32) -> Vec<f32> {
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        (0..n)
            .map(|_| if self.next_f32() < p { 0.0 } else { scale })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_resumable() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // A copy of the state (a checkpoint) continues the same stream.
        let saved = serde_json::to_string(&a).unwrap();
        let mut restored: Rng = serde_json::from_str(&saved).unwrap();
        assert_eq!(a.next_u64(), restored.next_u64());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert_ne!(
            Rng::derived(42, "shuffle").next_u64(),
            Rng::derived(42, "dropout").next_u64()
        );
    }

    #[test]
    fn shuffle_is_a_permutation_and_below_is_in_range() {
        let mut r = Rng::new(7);
        let mut v: Vec<u32> = (0..100).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
        for n in [1u64, 2, 3, 7, 1000] {
            for _ in 0..100 {
                assert!(r.below(n) < n);
            }
        }
    }

    #[test]
    fn dropout_mask_rate_and_scale() {
        let mut r = Rng::new(3);
        let m = r.dropout_mask(100_000, 0.1);
        let zeros = m.iter().filter(|&&x| x == 0.0).count() as f64 / m.len() as f64;
        assert!((zeros - 0.1).abs() < 0.01, "{zeros}");
        assert!(m.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.9).abs() < 1e-6));
        let mean = m.iter().map(|&x| x as f64).sum::<f64>() / m.len() as f64;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
    }
}
