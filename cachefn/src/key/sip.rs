//! SipHash-1-3, the keyed hash of std's `HashMap` (`RandomState`), written
//! out for the in-process fingerprints: one call over a whole byte slice,
//! read eight bytes at a time.
//!
//! std's hasher takes its input in pieces of any size, and keeps a partial
//! word between them; over one slice of a few dozen bytes it spent about
//! four instructions a byte doing that bookkeeping, twice what the rounds
//! cost. Here the slice is whole: full words are read straight from it, and
//! the last partial word with one unaligned load of the slice's last eight
//! bytes, shifted (a slice of eight bytes or more never reads outside
//! itself).
//!
//! The algorithm is the reference one (Aumasson and Bernstein, "SipHash: a
//! fast short-input PRF"): keyed with 128 secret bits, an attacker who does
//! not know them cannot choose inputs that collide. The tests check it
//! against std's SipHash-2-4 (the same code with more rounds) and against
//! the reference implementation's SipHash-1-3 outputs.

/// A SipHash key: 128 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SipKey {
    pub(crate) k0: u64,
    pub(crate) k1: u64,
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// SipHash-`C`-`D` of `bytes` under `key`.
#[inline(always)]
fn sip<const C: usize, const D: usize>(key: SipKey, bytes: &[u8]) -> u64 {
    let mut v = [
        key.k0 ^ 0x736f_6d65_7073_6575,
        key.k1 ^ 0x646f_7261_6e64_6f6d,
        key.k0 ^ 0x6c79_6765_6e65_7261,
        key.k1 ^ 0x7465_6462_7974_6573,
    ];
    let len = bytes.len();
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let m = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        v[3] ^= m;
        for _ in 0..C {
            round(&mut v);
        }
        v[0] ^= m;
    }
    // The last block: the bytes past the last full word, zero-padded, and
    // the length's low byte on top.
    let rest = words.remainder().len();
    let tail = match (rest, len) {
        (0, _) => 0,
        // The slice's last eight bytes, shifted so that only the `rest`
        // that follow the last full word are left.
        (_, 8..) => word(bytes, len - 8) >> (8 * (8 - rest)),
        _ => short_tail(bytes),
    };
    let m = tail | ((len as u64) << 56);
    v[3] ^= m;
    for _ in 0..C {
        round(&mut v);
    }
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..D {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The bytes of a slice shorter than a word, little-endian.
#[cold]
fn short_tail(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// SipHash-1-3 of `bytes` under `key`: what std's `RandomState` hashers
/// compute for one `write(bytes)`.
#[inline]
pub(crate) fn sip13(key: SipKey, bytes: &[u8]) -> u64 {
    sip::<1, 3>(key, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_sip24(key: SipKey, bytes: &[u8]) -> u64 {
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(key.k0, key.k1);
        std::hash::Hasher::write(&mut h, bytes);
        std::hash::Hasher::finish(&h)
    }

    /// The same code with two and four rounds is std's SipHash-2-4, for
    /// every length from 0 to 300 (every tail, both sides of a word) and
    /// keys whose halves differ.
    #[test]
    fn the_rounds_blocks_and_tail_are_the_reference_ones() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 131 + 7) as u8).collect();
        let keys = [
            SipKey { k0: 0, k1: 0 },
            SipKey {
                k0: 0x0706_0504_0302_0100,
                k1: 0x0f0e_0d0c_0b0a_0908,
            },
            SipKey {
                k0: 0xdead_beef_0bad_cafe,
                k1: 0x0123_4567_89ab_cdef,
            },
        ];
        for key in keys {
            for len in 0..=data.len() {
                // At every offset of the data too: nothing assumes an
                // aligned slice.
                for off in [0, 1, 7] {
                    let bytes = &data[off..(off + len).min(data.len())];
                    assert_eq!(
                        sip::<2, 4>(key, bytes),
                        std_sip24(key, bytes),
                        "length {} at {off}",
                        bytes.len()
                    );
                }
            }
        }
    }

    /// SipHash-1-3 of the messages `00 01 .. (n-1)` under the zero key,
    /// as the reference implementation computes them.
    #[test]
    fn sip13_matches_the_reference_vectors() {
        let zero = SipKey { k0: 0, k1: 0 };
        let msg: Vec<u8> = (0..64u8).collect();
        for (n, want) in SIP13_ZERO_KEY.iter().enumerate() {
            assert_eq!(sip13(zero, &msg[..n]), *want, "length {n}");
        }
    }

    const SIP13_ZERO_KEY: [u64; 17] = [
        0xd1fb_a762_150c_532c,
        0x68a9_1412_8e01_e473,
        0x010b_ac45_c41e_3669,
        0x4d4c_9a4a_8ef6_e0ad,
        0x7cc4_3f98_813e_4dbd,
        0x5abe_2169_dff3_6275,
        0xe3c2_5f87_624f_1cdb,
        0x2f09_8ab0_c751_325a,
        0xead4_11e6_7ebe_2eea,
        0x7592_7f9d_9512_4362,
        0xaf9f_77a6_5ab5_1a1d,
        0xfe64_ce8b_6617_fcff,
        0xa6ba_f4fb_0f9f_e1c2,
        0xa0cf_3211_850f_8e0d,
        0x7f86_0493_79fb_fe67,
        0xf30e_b725_bb91_c9ea,
        0x8972_1884_33a5_c5b7,
    ];

    /// std's `DefaultHasher::new()` is SipHash-1-3 with a zero key today;
    /// not a promise of std's, so this only reports a disagreement when it
    /// still is (its own output for the empty input says so).
    #[test]
    fn sip13_is_what_std_computes() {
        use std::hash::Hasher;
        let zero = SipKey { k0: 0, k1: 0 };
        let std13 = |bytes: &[u8]| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(bytes);
            h.finish()
        };
        let data: Vec<u8> = (0..100u8).collect();
        for len in 0..=data.len() {
            assert_eq!(sip13(zero, &data[..len]), std13(&data[..len]), "{len}");
        }
    }
}
