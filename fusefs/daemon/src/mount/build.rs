//! Building a mount's filesystem: the data cache, the tree of its source (a backing
//! directory, or an object store), and the `.kplug` trees.

use std::sync::Arc;

use anyhow::{Context, Result};
use kplug_store::Store;

use super::{MountArgs, MountSource};
use crate::control::{self, Control, Owner};
use crate::data::blockcache::{BlockCache, BlockCacheConfig};
use crate::data::{Backend, DataCache, Passthrough};
use crate::fs::{FsConfig, KplugFs, LocalFs, ObjectConfig, ObjectFs, Tree};
use kplug_cache::{BuiltinPrefetch, CoreConfig, ReadaheadConfig};

/// Forwards the block cache's prefetch ranges to the kernel bridge.
pub struct BridgeHints(pub kplug_bridge::HintSink);

impl crate::data::blockcache::HintSink for BridgeHints {
    fn hint(&self, fd: std::os::fd::BorrowedFd<'_>, offset: u64, len: u64) {
        if let Err(e) = self.0.hint(fd, offset, len) {
            tracing::debug!("kernel hint failed: {e}");
        }
    }

    fn stats(&self) -> crate::data::blockcache::HintCounters {
        let s = self.0.stats();
        crate::data::blockcache::HintCounters {
            backend: self.0.backend().to_string(),
            forwarded: s.hints,
            bytes: s.bytes_requested,
            errors: s.errors,
        }
    }
}

/// A mount's filesystem: the router over the source's tree, and its control plane (absent
/// with `--cache-size 0`).
pub struct Built {
    /// The filesystem the FUSE adapter serves.
    pub fs: Arc<KplugFs>,
    /// `.kplug/`, when the mount has a block cache.
    pub control: Option<Arc<Control>>,
}

/// Build the filesystem of a mount of `source`.
pub fn build_fs(source: &MountSource, args: &MountArgs) -> Result<Built> {
    let backend = Arc::new(Backend::new(args.backend_latency));
    // The store is reached before anything is mounted: wrong credentials, a missing bucket
    // or an unreachable endpoint end `kplugfs mount` with one line.
    let (backing, store) = match source {
        MountSource::Dir(dir) => (Some(dir), None),
        MountSource::Store(url) => {
            let store = Store::open(url, &args.store.options)?;
            store
                .check()
                .with_context(|| format!("cannot mount {url}"))?;
            (None, Some(Arc::new(store)))
        }
    };
    let tree = |data: Arc<dyn DataCache>| -> Result<Arc<dyn Tree>> {
        Ok(match (backing, &store) {
            (Some(backing), _) => {
                let config = FsConfig {
                    kernel_cache: args.kernel_cache,
                    attr_ttl: args.attr_timeout,
                };
                Arc::new(LocalFs::new(backing, data, config).map_err(|e| anyhow::anyhow!("{e}"))?)
            }
            (None, store) => Arc::new(ObjectFs::new(
                store.clone().context("a store source opens its store")?,
                data,
                object_config(args),
            )),
        })
    };
    if args.cache_size == 0 {
        let main = tree(Arc::new(Passthrough::new(backend)))?;
        return Ok(Built {
            fs: Arc::new(KplugFs::new(main, args.attr_timeout)),
            control: None,
        });
    }
    let hints: Option<Arc<dyn crate::data::blockcache::HintSink>> = match args.kernel_hints {
        // Hints go to the page cache of local backing files: an object store has none.
        _ if store.is_some() => None,
        kplug_bridge::Mode::Off => None,
        mode => {
            let sink = kplug_bridge::HintSink::new(mode)
                .with_context(|| format!("--kernel-hints {mode}"))?;
            tracing::info!(backend = ?sink.backend(), "kernel hints");
            Some(Arc::new(BridgeHints(sink)))
        }
    };
    let cache = BlockCache::new(
        backend,
        BlockCacheConfig {
            block_size: args.block_size,
            capacity_bytes: args.cache_size,
            prefetch_threads: args.prefetch_threads,
            core: readahead_core(args.readahead_blocks),
        },
        hints,
    );
    let owner = Owner {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
    };
    let mut fs = KplugFs::new(tree(cache.clone())?, args.attr_timeout);
    let engine = kplug_engine::EngineConfig {
        // Plugins dropped before, here or by another mount or `kplugfs sim` run, are
        // deserialized, not compiled again (docs/plugin-abi.md, section 5).
        module_cache: kplug_engine::modcache::default_dir(),
        ..args.engine.clone()
    };
    let control =
        control::mount(&mut fs, cache, store, owner, engine).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Built {
        fs: Arc::new(fs),
        control: Some(control),
    })
}

/// How an object-store mount shows its objects.
fn object_config(args: &MountArgs) -> ObjectConfig {
    ObjectConfig {
        uid: args
            .store
            .uid
            .unwrap_or_else(|| nix::unistd::getuid().as_raw()),
        gid: args
            .store
            .gid
            .unwrap_or_else(|| nix::unistd::getgid().as_raw()),
        file_mode: args.store.file_mode,
        dir_mode: args.store.dir_mode,
        attr_ttl: args.attr_timeout,
        kernel_cache: args.kernel_cache,
    }
}

/// The cache core's settings for a readahead window of `blocks`: the built-in readahead
/// grows its window up to it, and one access may ask for that many blocks (the budget of
/// every prefetch policy, plugins included, is never below the core's default). 0 blocks:
/// no built-in prefetch (`builtin:none`).
fn readahead_core(blocks: u64) -> CoreConfig {
    let default = CoreConfig::default();
    CoreConfig {
        prefetch: if blocks == 0 {
            BuiltinPrefetch::None
        } else {
            BuiltinPrefetch::Readahead(ReadaheadConfig {
                max_window: blocks,
                ..ReadaheadConfig::default()
            })
        },
        prefetch_budget: default.prefetch_budget.max(blocks),
        ..default
    }
}
