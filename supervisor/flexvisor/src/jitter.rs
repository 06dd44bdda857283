//! A tiny xorshift generator for restart jitter and unique names. Not for
//! anything secret.

use std::time::{SystemTime, UNIX_EPOCH};

/// A seed from the clock and the pid.
pub fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    // One round of splitmix64 so close seeds differ in every bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Uniform in 0.0..1.0.
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_precision_loss)]
        let v = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stays_in_range() {
        let mut j = super::Jitter::new(super::seed());
        for _ in 0..1000 {
            let v = j.next_f64();
            assert!((0.0..1.0).contains(&v));
        }
    }
}
