//! A tiny seeded pseudo-random generator (xorshift64*), so a run is reproducible from its seed.
//!
//! The simulator needs randomness for customer mixes, amounts and PIN blocks, never for security;
//! a few lines of our own keep runs identical across `rand` versions and platforms.

/// xorshift64* (Vigna): fast, 64-bit state, good enough for test traffic.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator for `seed`; any seed works (zero is remapped, xorshift must not start at 0).
    pub fn new(seed: u64) -> Self {
        // SplitMix64 step: spreads nearby seeds (1, 2, 3 …) over the whole state space.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// `true` with probability `percent` / 100.
    pub fn chance(&mut self, percent: u8) -> bool {
        self.below(100) < u64::from(percent)
    }

    /// `n` random hexadecimal digits (upper case).
    pub fn hex_digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789ABCDEF"[self.below(16) as usize]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_stay_in_range() {
        let (mut a, mut b) = (XorShift64::new(42), XorShift64::new(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(XorShift64::new(1).next_u64(), XorShift64::new(2).next_u64());
        let mut r = XorShift64::new(0);
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert_eq!(r.hex_digits(16).len(), 16);
    }
}
