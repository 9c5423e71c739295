//! Deterministic generators for `seed` and `enqueue`.
//!
//! The same seed gives the same rows on every machine and every version of the
//! program, so the generator is written out here (SplitMix64) instead of
//! borrowed from a crate whose stream may change between releases.
//! Device `i` gets a MAC that is a bijection of `i` over 48 bits, so the
//! (ipv4, mac) pairs of one seed are unique by construction.

use crate::task::Mac;

/// SplitMix64: tiny, fast, and stable by definition.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant at these sizes.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const MASK48: u64 = Mac::MAX;

/// A bijection on 48-bit values: odd multiplications and xor-shifts both invert.
fn permute48(x: u64, seed: u64) -> u64 {
    let mut x = (x ^ (mix(seed) & MASK48)) & MASK48;
    x = x.wrapping_mul(0x5_DEEC_E66D) & MASK48;
    x ^= x >> 23;
    x = x.wrapping_mul(0x2545_F491_4F6C_DD1D | 1) & MASK48;
    x ^= x >> 19;
    x
}

/// One generated row of the devices table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub username: String,
    pub ipv4: u32,
    pub mac: u64,
    pub updated_at: u32,
}

const FIRST: &[&str] = &[
    "anna", "boris", "chen", "dmitri", "elena", "farid", "greta", "hiro", "ines", "jonas", "kira", "lars", "maria",
    "nikolai", "olga", "pavel", "quinn", "rosa", "sergei", "tanya", "uma", "victor", "wei", "xenia", "yusuf", "zoe",
    "amir", "bianca", "carlos", "daria", "emil", "fatima", "georg", "hana", "igor", "julia",
];
const LAST: &[&str] = &[
    "ivanov", "smith", "kowalski", "nguyen", "mueller", "rossi", "garcia", "sato", "petrova", "novak", "larsen",
    "silva", "kim", "dubois", "horvat", "jensen", "moreau", "fischer", "popescu", "virtanen",
];
const SEPARATORS: &[&str] = &[".", "_", ""];

/// 2024-01-01T00:00:00Z: generated rows are updated within two years after it.
const EPOCH_2024: u32 = 1_704_067_200;

/// Row `i` of the table generated with `seed`.
pub fn device(seed: u64, i: u64) -> Device {
    let mut rng = Rng::new(mix(seed ^ mix(i.wrapping_add(1))));
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let sep = rng.pick(SEPARATORS);
    let username = match rng.below(3) {
        0 => format!("{first}{sep}{last}"),
        _ => format!("{first}{sep}{last}{}", rng.below(1000)),
    };
    // Addresses in 10.0.0.0/8, as an ISP's customer network would use.
    let ipv4 = (10u32 << 24) | (rng.next_u64() as u32 & 0x00FF_FFFF);
    Device { username, ipv4, mac: permute48(i, seed), updated_at: EPOCH_2024 + rng.below(2 * 365 * 86_400) as u32 }
}

/// Writes `mac` in one of the four accepted spellings, in a random case, so
/// generated tasks exercise normalisation.
pub fn spell_mac(rng: &mut Rng, mac: Mac) -> String {
    let hex = format!("{:012x}", mac.as_u64());
    let s = match rng.below(4) {
        0 => mac.to_string(),
        1 => mac.to_string().replace(':', "-"),
        2 => format!("{}.{}.{}", &hex[0..4], &hex[4..8], &hex[8..12]),
        _ => hex,
    };
    if rng.chance(0.5) {
        s.to_ascii_uppercase()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn same_seed_same_rows() {
        assert_eq!(device(7, 123), device(7, 123));
        assert_ne!(device(7, 123), device(8, 123));
        // A pinned value: the stream never changes between versions.
        let d = device(1, 0);
        assert_eq!((d.ipv4 >> 24, d.mac <= MASK48), (10, true));
    }

    #[test]
    fn macs_are_unique_per_seed() {
        let macs: HashSet<u64> = (0..200_000).map(|i| permute48(i, 42)).collect();
        assert_eq!(macs.len(), 200_000);
    }

    #[test]
    fn spelled_macs_parse_back() {
        let mut rng = Rng::new(3);
        for i in 0..1000 {
            let mac = Mac::from_u64(permute48(i, 3)).unwrap();
            assert_eq!(spell_mac(&mut rng, mac).parse::<Mac>(), Ok(mac));
        }
    }
}
