//! Deterministic hashing and pseudo-randomness derived from request content, so that the same
//! request gets the same ids, fragment boundaries and embeddings on every run.

use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// FNV-1a, chosen over `DefaultHasher` because its output is specified and stable across
/// toolchains: embedding vectors must not change when the compiler does.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An RNG for one purpose (`salt`) of one request (`seed`).
pub(crate) fn rng(seed: u64, salt: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

pub(crate) fn alphanumeric(rng: &mut impl Rng, len: usize) -> String {
    rng.sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub(crate) fn hex(rng: &mut impl Rng, len: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..len)
        .map(|_| char::from(DIGITS[rng.random_range(0..DIGITS.len())]))
        .collect()
}

/// A UUID-shaped (8-4-4-4-12 hex) string.
pub(crate) fn uuid(rng: &mut impl Rng) -> String {
    let digits = hex(rng, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &digits[..8],
        &digits[8..12],
        &digits[12..16],
        &digits[16..20],
        &digits[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn derived_values_are_deterministic_and_shaped() {
        let a = alphanumeric(&mut rng(7, 1), 24);
        assert_eq!(a, alphanumeric(&mut rng(7, 1), 24));
        assert_ne!(a, alphanumeric(&mut rng(7, 2), 24));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()) && a.len() == 24);
        let id = uuid(&mut rng(1, 1));
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
