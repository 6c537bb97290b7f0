//! Bloom filter of an SSTable: ~10 bits per key, 7 probes, ~1% false positives.
//!
//! ```text
//! filter := bits[nbytes] k:u8          (k probes; nbits = 8 * nbytes, at least 64)
//! probe i of key: (h1 + i * h2) mod nbits, where h1, h2 are the low and high
//! 32 bits of BLAKE2b-64(key) read little-endian (h2 forced odd)
//! ```
//! Double hashing (Kirsch & Mitzenmacher): one hash per key, computed once per
//! lookup and reused for every table. Layout: docs/formats/sstable.md. BLAKE2b is
//! the v1 format's choice (the Python engine wrote these filters); it is
//! implemented here (RFC 7693, unkeyed, 8-byte digest) rather than pulled in.

/// Bits per key.
pub const BITS_PER_KEY: usize = 10;
/// Probes: round(BITS_PER_KEY * ln 2).
pub const PROBES: u8 = 7;

const IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

const SIGMA: [[usize; 16]; 12] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
];

#[inline(always)]
fn g(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

fn compress(h: &mut [u64; 8], block: &[u8; 128], t: u128, last: bool) {
    let mut m = [0u64; 16];
    for (i, w) in m.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&block[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(b);
    }
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    v[12] ^= t as u64;
    v[13] ^= (t >> 64) as u64;
    if last {
        v[14] = !v[14];
    }
    for s in &SIGMA {
        g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
        g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
        g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
        g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
        g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
        g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
        g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
        g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/// BLAKE2b with an 8-byte digest (Python's `hashlib.blake2b(data, digest_size=8)`), as a LE u64.
pub fn blake2b_64(data: &[u8]) -> u64 {
    let mut h = IV;
    h[0] ^= 0x0101_0000 ^ 8;
    let mut t: u128 = 0;
    let mut rest = data;
    while rest.len() > 128 {
        let mut block = [0u8; 128];
        block.copy_from_slice(&rest[..128]);
        t += 128;
        compress(&mut h, &block, t, false);
        rest = &rest[128..];
    }
    let mut block = [0u8; 128];
    block[..rest.len()].copy_from_slice(rest);
    t += rest.len() as u128;
    compress(&mut h, &block, t, true);
    h[0]
}

/// (h1, h2) of a key: compute once per lookup and ask every table's filter with it.
pub fn key_hashes(key: &[u8]) -> (u64, u64) {
    let h = blake2b_64(key);
    (h & 0xffff_ffff, (h >> 32) | 1)
}

/// The filter block for `keys` (without its CRC).
pub fn build_filter<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let hashes: Vec<u64> = keys.map(blake2b_64).collect();
    build_filter_from_hashes(&hashes)
}

/// The filter block for keys given by their [`blake2b_64`] hashes (without its CRC).
pub fn build_filter_from_hashes(hashes: &[u64]) -> Vec<u8> {
    let n = hashes.len();
    let nbytes = (n * BITS_PER_KEY).max(64).div_ceil(8);
    let nbits = (nbytes * 8) as u64;
    let mut bits = vec![0u8; nbytes + 1];
    for &h in hashes {
        let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
        for i in 0..PROBES as u64 {
            let pos = (h1 + i * h2) % nbits;
            bits[(pos >> 3) as usize] |= 1 << (pos & 7);
        }
    }
    bits[nbytes] = PROBES;
    bits
}

/// Whether a filter block (bits + k) may contain the key with these hashes.
pub fn may_contain(filter: &[u8], (h1, h2): (u64, u64)) -> bool {
    if filter.len() < 2 {
        return true;
    }
    let k = filter[filter.len() - 1] as u64;
    let bits = &filter[..filter.len() - 1];
    let nbits = bits.len() as u64 * 8;
    (0..k).all(|i| {
        let pos = (h1 + i * h2) % nbits;
        bits[(pos >> 3) as usize] & (1 << (pos & 7)) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake2b_64_matches_python_hashlib() {
        let hex = |h: u64| h.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(blake2b_64(b"")), "e4a6a0577479b2b4");
        assert_eq!(hex(blake2b_64(b"a")), "40f89e395b66422f");
        assert_eq!(hex(blake2b_64(b"abc")), "d8bb14d833d59559");
        assert_eq!(hex(blake2b_64(&[b'x'; 127])), "8e70a0af447c4ffc");
        assert_eq!(hex(blake2b_64(&[b'y'; 128])), "154f7ef96586c007");
        assert_eq!(hex(blake2b_64(&[b'z'; 129])), "398f33dd8b0cdcaf");
        assert_eq!(hex(blake2b_64(&b"key:12345".repeat(30))), "6c1b241ee36c598e");
    }

    #[test]
    fn filter_matches_python_and_the_worked_example() {
        let keys: Vec<&[u8]> = vec![b"a", b"b", b"hello"];
        let f = build_filter(keys.iter().copied());
        assert_eq!(f, [0xb1, 0x00, 0x06, 0x48, 0x84, 0x3f, 0x40, 0x01, 0x07]);
        for k in keys {
            assert!(may_contain(&f, key_hashes(k)));
        }
    }

    #[test]
    fn false_positive_rate_is_about_one_percent() {
        let keys: Vec<Vec<u8>> = (0..10_000).map(|i| format!("key:{i}").into_bytes()).collect();
        let f = build_filter(keys.iter().map(|k| k.as_slice()));
        let fp = (0..10_000)
            .filter(|i| may_contain(&f, key_hashes(format!("other:{i}").as_bytes())))
            .count();
        assert!(fp < 200, "{fp} false positives in 10k");
    }
}
