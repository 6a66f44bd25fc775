//! Counter-based randomness (spec §0): the draw for element `e` of tensor
//! `t` of model `i` is a pure function of `(seed, model id, tensor name, e)`,
//! so results do not depend on threads, chunking, visiting order or the
//! order the models are listed in.

/// SplitMix64's finaliser: a bijective 64-bit mix.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a string (FNV-1a, then mixed): model ids and tensor names.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// The key of one model's stream in one tensor.
pub fn stream_key(seed: u64, model_id: u64, tensor_hash: u64) -> u64 {
    mix64(mix64(mix64(seed) ^ model_id) ^ tensor_hash)
}

/// The uniform draw in `[0, 1)` for element `index` of a stream (53 random bits).
pub fn uniform(stream: u64, index: u64) -> f64 {
    (mix64(stream ^ mix64(index)) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}
