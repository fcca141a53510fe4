//! XXH3, 64-bit, seed 0, default secret: the hash Redis 8.4's DIGEST returns and its IFDEQ and
//! IFDNE options compare. Written out here (the scalar path of the reference xxHash 0.8) rather
//! than taken as a dependency: it is one short function, and the server needs nothing else of
//! the crate.

const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;
const PRIME_MX1: u64 = 0x1656_6791_9E37_79F9;
const PRIME_MX2: u64 = 0x9FB2_1C65_1E98_DF25;

/// The reference implementation's default secret (`XXH3_kSecret`).
const SECRET: [u8; 192] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
];

const STRIPE: usize = 64;
/// Stripes per block: each stripe moves 8 bytes further into the secret.
const STRIPES_PER_BLOCK: usize = (SECRET.len() - STRIPE) / 8;
const BLOCK: usize = STRIPE * STRIPES_PER_BLOCK;

/// XXH3-64 of `input` with seed 0: the value Redis prints as 16 hex digits.
pub fn xxh3_64(input: &[u8]) -> u64 {
    let len = input.len();
    let n = len as u64;
    match len {
        0 => avalanche64(le64(&SECRET, 56) ^ le64(&SECRET, 64)),
        1..=3 => {
            let combined = (u32::from(input[0]) << 16)
                | (u32::from(input[len >> 1]) << 24)
                | u32::from(input[len - 1])
                | ((len as u32) << 8);
            let flip = u64::from(le32(&SECRET, 0) ^ le32(&SECRET, 4));
            avalanche64(u64::from(combined) ^ flip)
        }
        4..=8 => {
            let value = u64::from(le32(input, len - 4)) + (u64::from(le32(input, 0)) << 32);
            let mut h = value ^ (le64(&SECRET, 8) ^ le64(&SECRET, 16));
            h ^= h.rotate_left(49) ^ h.rotate_left(24);
            h = h.wrapping_mul(PRIME_MX2);
            h ^= (h >> 35).wrapping_add(n);
            h = h.wrapping_mul(PRIME_MX2);
            h ^ (h >> 28)
        }
        9..=16 => {
            let lo = le64(input, 0) ^ (le64(&SECRET, 24) ^ le64(&SECRET, 32));
            let hi = le64(input, len - 8) ^ (le64(&SECRET, 40) ^ le64(&SECRET, 48));
            let acc = n
                .wrapping_add(lo.swap_bytes())
                .wrapping_add(hi)
                .wrapping_add(fold(lo, hi));
            avalanche(acc)
        }
        17..=128 => {
            let mut acc = n.wrapping_mul(PRIME64_1);
            // Pairs of 16-byte lanes from both ends, more of them the longer the input.
            for i in 0..(len - 1) / 32 + 1 {
                acc = acc
                    .wrapping_add(mix16(input, 16 * i, 32 * i))
                    .wrapping_add(mix16(input, len - 16 * (i + 1), 32 * i + 16));
            }
            avalanche(acc)
        }
        129..=240 => {
            let mut acc = n.wrapping_mul(PRIME64_1);
            for i in 0..8 {
                acc = acc.wrapping_add(mix16(input, 16 * i, 16 * i));
            }
            let mut acc = avalanche(acc);
            for i in 8..len / 16 {
                acc = acc.wrapping_add(mix16(input, 16 * i, 16 * (i - 8) + 3));
            }
            avalanche(acc.wrapping_add(mix16(input, len - 16, 136 - 17)))
        }
        _ => long(input),
    }
}

/// Inputs over 240 bytes: eight accumulators over 64-byte stripes, scrambled after each block.
fn long(input: &[u8]) -> u64 {
    let len = input.len();
    let mut acc = [
        PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1,
    ];
    let blocks = (len - 1) / BLOCK;
    for block in 0..blocks {
        for stripe in 0..STRIPES_PER_BLOCK {
            accumulate(&mut acc, input, block * BLOCK + stripe * STRIPE, stripe * 8);
        }
        for (i, a) in acc.iter_mut().enumerate() {
            let mut v = *a ^ (*a >> 47);
            v ^= le64(&SECRET, SECRET.len() - STRIPE + 8 * i);
            *a = v.wrapping_mul(PRIME32_1);
        }
    }
    let stripes = ((len - 1) - BLOCK * blocks) / STRIPE;
    for stripe in 0..stripes {
        accumulate(
            &mut acc,
            input,
            blocks * BLOCK + stripe * STRIPE,
            stripe * 8,
        );
    }
    accumulate(&mut acc, input, len - STRIPE, SECRET.len() - STRIPE - 7);
    let mut result = (len as u64).wrapping_mul(PRIME64_1);
    for i in 0..4 {
        let (a, b) = (acc[2 * i], acc[2 * i + 1]);
        result = result.wrapping_add(fold(
            a ^ le64(&SECRET, 11 + 16 * i),
            b ^ le64(&SECRET, 11 + 16 * i + 8),
        ));
    }
    avalanche(result)
}

/// Folds one 64-byte stripe of `input` at `at` into the accumulators, keyed at `key`.
fn accumulate(acc: &mut [u64; 8], input: &[u8], at: usize, key: usize) {
    for i in 0..8 {
        let data = le64(input, at + 8 * i);
        let keyed = data ^ le64(&SECRET, key + 8 * i);
        acc[i ^ 1] = acc[i ^ 1].wrapping_add(data);
        acc[i] = acc[i].wrapping_add((keyed & 0xFFFF_FFFF).wrapping_mul(keyed >> 32));
    }
}

fn mix16(input: &[u8], at: usize, key: usize) -> u64 {
    fold(
        le64(input, at) ^ le64(&SECRET, key),
        le64(input, at + 8) ^ le64(&SECRET, key + 8),
    )
}

/// The 128-bit product of `a` and `b`, its halves xored.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    product as u64 ^ (product >> 64) as u64
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(PRIME_MX1);
    h ^ (h >> 32)
}

fn avalanche64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(PRIME64_2);
    h ^= h >> 29;
    h = h.wrapping_mul(PRIME64_3);
    h ^ (h >> 32)
}

// Callers only read inside `bytes` (the length cases above guarantee it); a short read would be
// a bug here, and yields zeros rather than a panic.
fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        word.copy_from_slice(src);
    }
    u64::from_le_bytes(word)
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::xxh3_64;

    /// Reference values from libxxhash 0.8.1's `XXH3_64bits` over a fixed pattern, at every
    /// length where the algorithm changes path (0, 1-3, 4-8, 9-16, 17-128, 129-240, long inputs
    /// with and without a partial block or stripe).
    #[test]
    fn matches_the_reference_implementation() {
        let pattern: Vec<u8> = (0..5000usize)
            .map(|i| (((i * 131 + 7) * (i >> 3) + i) % 256) as u8)
            .collect();
        #[rustfmt::skip]
        let expected: &[(usize, u64)] = &[
            (0, 0x2d06800538d394c2), (1, 0xc44bdff4074eecdb), (2, 0xd6645fc3051a9457),
            (3, 0x5f4299fc161c9cbb), (4, 0x60dab036a58211f2), (5, 0xb075753a84ca0fbe),
            (7, 0x0cd2084a62406b69), (8, 0x3a1c2d7c85af88f8), (9, 0xd1f3ebe4faa765aa),
            (15, 0x8ea859f071f2ff3b), (16, 0x4d6004824b7b0c7b), (17, 0x93bec0d222336eed),
            (31, 0x0549843ad1d4a514), (32, 0x24f6253d129cf447), (33, 0xc4536ff57423992a),
            (64, 0xf7cfc64d38510553), (65, 0xdca7cde4d7c02ac5), (96, 0x04ee3332af249ec9),
            (97, 0xf9f2ad582c86d2a2), (127, 0xa602b93c3b418433), (128, 0xfc5034737d8d17d5),
            (129, 0xedb493b037f8fd0c), (130, 0x8a5e28f68b9abf2d), (143, 0xa53a49de8b82be18),
            (144, 0x616b3355c34aebfc), (200, 0xb7fb88183b603c37), (239, 0xd65bca44dde478fb),
            (240, 0x4fbe6f151507406a), (241, 0x88a4fb9aa29ec1fa), (255, 0x29d70ef637906f46),
            (256, 0x088538552d96f674), (257, 0x3a2681b1fd55de99), (1023, 0x7e97fbd54c7b857b),
            (1024, 0xf7a659605a18ff32), (1025, 0x85d079b817b20282), (1088, 0x25f163e76ecc9ff7),
            (2047, 0x216eb40852a7936e), (2048, 0xe425eb2d832026d1), (2049, 0x3c9e67cbb2d5b6bd),
            (4096, 0x9731a415e5ed7336), (4999, 0x4702aed2f809c79f),
        ];
        for &(len, want) in expected {
            assert_eq!(xxh3_64(&pattern[..len]), want, "length {len}");
        }
        // The example on Redis's DIGEST page.
        assert_eq!(xxh3_64(b"Hello world"), 0xb6acb9d84a38ff74);
    }
}
