//! Admission: never caches a file larger than `bytes`, so one big file read once (a video,
//! a dump, a training shard) cannot flush the small files that are read again. What users
//! of mountpoint-s3, gcsfuse and rclone ask for ("cache by object size").
//!
//! The host reports each file's size as the mount last saw it (`file_size`, ABI 1.3). A
//! block of a file above the limit is refused; a file whose size is unknown (the simulator,
//! which has no files) is admitted.
//!
//! Parameters:
//! - `bytes=0`: the largest file cached, in bytes; 0 (the default) is a quarter of the
//!   cache's capacity (capacity × block size / 4), a rule that scales with the cache: a file
//!   that would take more than a quarter of it is not worth what it evicts. Without a block
//!   size (the simulator) and without `bytes`, everything is admitted.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Admission, Plugin, Rejected, export_plugin};

/// The size filter.
#[derive(Default)]
pub struct MaxSize {
    /// Largest file admitted, in bytes (`u64::MAX`: no limit), once known.
    limit: Option<u64>,
    /// `bytes` as given (0: derived from the cache).
    bytes: u64,
    capacity: u64,
}

impl MaxSize {
    /// The limit for `bytes` (0: a quarter of `capacity` blocks of `block_size` bytes).
    fn limit(bytes: u64, capacity: u64, block_size: Option<u64>) -> u64 {
        match (bytes, block_size) {
            (0, Some(bs)) => capacity.saturating_mul(bs) / 4,
            (0, None) => u64::MAX,
            (b, _) => b,
        }
    }
}

impl Plugin for MaxSize {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "bytes" => self.bytes = value.parse()?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.capacity = capacity;
        Ok(())
    }
}

impl Admission for MaxSize {
    fn admit(&mut self, _key: u64, file: u64, _block: u64) -> bool {
        // The block size is known once the plugin serves a cache (not yet in `init`).
        let limit = *self
            .limit
            .get_or_insert_with(|| Self::limit(self.bytes, self.capacity, kplug_sdk::block_size()));
        kplug_sdk::file_size(file).is_none_or(|size| size <= limit)
    }
}

export_plugin!(MaxSize, admission);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limit_is_a_quarter_of_the_cache() {
        assert_eq!(MaxSize::limit(0, 1024, Some(4096)), 1 << 20);
        assert_eq!(MaxSize::limit(0, 1024, None), u64::MAX);
        assert_eq!(MaxSize::limit(5, 1024, Some(4096)), 5);
        assert_eq!(MaxSize::limit(0, u64::MAX, Some(1 << 20)), u64::MAX / 4);
    }

    /// Natively there is no host: sizes are unknown, so everything is admitted.
    #[test]
    fn unknown_sizes_are_admitted() {
        let mut m = MaxSize::default();
        m.set_param("bytes", "1").unwrap();
        m.init(8).unwrap();
        assert!(m.admit(1, 1, 0));
    }

    /// Every parameter by its name: a valid value is taken, a malformed one and an unknown
    /// name are refused.
    #[test]
    fn parameters() {
        let mut m = MaxSize::default();
        m.set_param("bytes", "1048576").unwrap();
        assert_eq!(m.bytes, 1 << 20);
        assert!(m.set_param("bytes", "-1").is_err());
        assert!(m.set_param("bytes", "1M").is_err());
        assert!(m.set_param("size", "1").is_err());
    }
}
