//! The bytes a replay's scratch files hold: a pattern that is a function of (file, offset)
//! alone, so every read can be verified without keeping a copy, and a trace's write can
//! rewrite the very bytes that are there.
//!
//! Design: `splitmix64` of `(file << 48) ^ (offset / 8)` for each 8-byte word: cheap enough
//! to recompute for every read, and different for every word of every file (splitmix64 is a
//! bijection), so bytes from the wrong file or offset do not pass for the right ones.
//! Changing it means bumping the pattern version of the scratch manifest (`scratch.rs`), so
//! that kept files of the old pattern are made again.

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Fills `buf` with the pattern of scratch file `file` at `offset`: the bytes of
/// `splitmix((file << 48) ^ word)` for each 8-byte word.
pub fn fill_pattern(file: u32, offset: u64, buf: &mut [u8]) {
    let word = |pos: u64| splitmix((u64::from(file) << 48) ^ (pos / 8)).to_le_bytes();
    // An unaligned head, whole words, a tail.
    let head = ((8 - offset % 8) % 8).min(buf.len() as u64) as usize;
    let (first, rest) = buf.split_at_mut(head);
    if head > 0 {
        let from = (offset % 8) as usize;
        first.copy_from_slice(&word(offset)[from..from + head]);
    }
    let mut pos = offset + head as u64;
    let mut chunks = rest.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&word(pos));
        pos += 8;
    }
    let tail = chunks.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&word(pos)[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_a_function_of_file_and_offset() {
        let mut a = vec![0u8; 100];
        fill_pattern(3, 5, &mut a);
        for start in 0..40 {
            for len in [0, 1, 3, 8, 13, 60 - start] {
                let mut b = vec![0u8; len];
                fill_pattern(3, 5 + start as u64, &mut b);
                assert_eq!(&a[start..start + len], &b[..], "{start} {len}");
            }
        }
        let mut c = vec![0u8; 100];
        fill_pattern(4, 5, &mut c);
        assert_ne!(a, c);
    }
}
