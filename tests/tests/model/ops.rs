//! The generated operations: [`Op`], whose [`Ix`]es pick existing state modulo its size
//! when the op runs, the bytes ops write ([`Data`]), the plugin modules and the ballast file
//! of the plugin ops, and the proptest strategies ([`any_op`]). Nothing here knows the state
//! of a case: the model resolves an op into a step (`model.rs`).

use std::fmt;

use proptest::prelude::*;

/// Names ops create entries with: few, so creates collide with existing entries and the
/// error paths (EEXIST, EISDIR, ENOTEMPTY...) are exercised as often as the success paths.
pub(crate) const NAMES: [&str; 6] = ["a", "b", "c", "d", "x", "y"];
/// Most descriptors an op sequence holds at once (beyond this, `Open` is skipped).
pub(crate) const MAX_HANDLES: usize = 6;
/// Page size of the test machines: offsets cluster around its multiples, where the kernel
/// page cache and any block cache split requests.
pub(crate) const PAGE: u64 = 4096;

/// Bytes to write: `len` bytes of a pattern seeded by `seed`, never zero (so holes, which
/// read as zeros, cannot be mistaken for written data) and different for each seed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Data {
    pub(crate) seed: u8,
    pub(crate) len: usize,
}

impl Data {
    pub(crate) fn bytes(self) -> Vec<u8> {
        (0..self.len)
            .map(|i| ((usize::from(self.seed) * 37 + i * 7) % 255 + 1) as u8)
            .collect()
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data{{seed:{},len:{}}}", self.seed, self.len)
    }
}

/// Picks existing state by index modulo its current size (so a shrunk sequence still picks
/// something); shrinks towards the first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ix(pub(crate) u8);

impl Ix {
    pub(crate) fn index(self, len: usize) -> usize {
        usize::from(self.0) % len
    }
}

impl fmt::Debug for Ix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ix({})", self.0)
    }
}

fn ix() -> impl Strategy<Value = Ix> {
    any::<u8>().prop_map(Ix)
}

/// Where a rename or link goes: onto an existing entry, or to a name in an existing directory
/// (which may exist too: the name pool is small).
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Existing(Ix),
    Fresh { parent: Ix, name: Ix },
}

/// A generated operation. Ixes pick existing state modulo its size at the time the op
/// runs; ops that need state that does not exist (a file when there is none) are skipped.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `open(O_WRONLY|O_CREAT|(excl ? O_EXCL : O_TRUNC))` of `NAMES[name]` in a directory.
    Create {
        parent: Ix,
        name: Ix,
        excl: bool,
    },
    Mkdir {
        parent: Ix,
        name: Ix,
    },
    /// `pwrite` through a fresh descriptor.
    Write {
        file: Ix,
        offset: u64,
        data: Data,
    },
    /// `write` through a fresh `O_APPEND` descriptor.
    Append {
        file: Ix,
        data: Data,
    },
    /// `pread` through a fresh descriptor.
    Read {
        file: Ix,
        offset: u64,
        len: usize,
    },
    /// `truncate(path)`.
    Truncate {
        file: Ix,
        len: u64,
    },
    /// `rename` of any entry (file or directory).
    Rename {
        src: Ix,
        dst: Target,
    },
    /// `link` of any entry (EPERM for a directory).
    Link {
        src: Ix,
        dst: Target,
    },
    /// `unlink` a file or `rmdir` a directory.
    Remove {
        entry: Ix,
    },
    /// Write through a shared mapping of the whole file, `msync(MS_SYNC)`, unmap.
    MmapWrite {
        file: Ix,
        offset: u64,
        data: Data,
    },
    /// `pwrite` of whole pages at a page-aligned offset through a fresh `O_DIRECT`
    /// descriptor, from a page-aligned buffer (valid on any Linux filesystem).
    DirectWrite {
        file: Ix,
        page: u64,
        pages: usize,
        seed: u8,
    },
    /// `pread` of whole pages at a page-aligned offset through a fresh `O_DIRECT` descriptor.
    DirectRead {
        file: Ix,
        page: u64,
        pages: usize,
    },
    /// Open a file read-write and hold the descriptor.
    Open {
        file: Ix,
    },
    Close {
        handle: Ix,
    },
    HandleRead {
        handle: Ix,
        offset: u64,
        len: usize,
    },
    HandleWrite {
        handle: Ix,
        offset: u64,
        data: Data,
    },
    HandleTruncate {
        handle: Ix,
        len: u64,
    },
    Fsync {
        handle: Ix,
        data_only: bool,
    },
    /// Write a valid eviction plugin (`module` picks one of [`Module`]) as one of
    /// [`VALID_PLUGINS`] into `.kplug/plugins/`.
    SwapPlugin {
        name: Ix,
        module: Ix,
    },
    /// Write a hostile eviction plugin (one of [`Hostile::ALL`]).
    DropFaulty {
        kind: Ix,
    },
    /// Remove a plugin file.
    RemovePlugin {
        plugin: Ix,
    },
    /// Read the ballast file: the whole cache is evicted.
    Churn,
    /// The write an object store allows (S3 mounts): `open(O_WRONLY|O_CREAT|(excl ?
    /// O_EXCL : O_TRUNC))` of `NAMES[name]` in a directory, `data` written from start to end
    /// in uneven chunks, `close`.
    Put {
        parent: Ix,
        name: Ix,
        excl: bool,
        data: Data,
    },
    /// `rename` of a file (S3 mounts: directories with files are not renamed).
    RenameFile {
        src: Ix,
        dst: Target,
    },
}

/// File names valid plugins are dropped as (a swap onto an existing name replaces it).
pub(crate) const VALID_PLUGINS: [&str; 2] = ["evict-a.wasm", "evict-b.wasm"];
/// The ballast file in the mount's root, twice the plugin mount's cache.
pub(crate) const BALLAST: &str = "ballast";
const BALLAST_LEN: usize = 2 << 20;

pub(crate) fn ballast() -> Vec<u8> {
    (0..BALLAST_LEN as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A valid eviction plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Module {
    /// `kplugfs policy export lru` (built with the SDK).
    SdkLru,
    /// policies/lru-wat (hand-written WAT).
    WatLru,
}

/// What `SwapPlugin`'s `module` picks from. The SDK module takes the (debug-built) daemon
/// ~0.5 s to compile, the WAT one a fraction of that: one swap in three loads the SDK one.
pub(crate) const MODULES: [Module; 3] = [Module::WatLru, Module::SdkLru, Module::WatLru];

/// An offset: small, around a page boundary, or anywhere in the first few pages.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..64u64,
        (1..4u64, 0..16u64).prop_map(|(p, d)| (p * PAGE + d).saturating_sub(8)),
        0..3 * PAGE + 100,
    ]
}

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![1..16usize, 1..2 * PAGE as usize + 100]
}

fn data() -> impl Strategy<Value = Data> {
    (any::<u8>(), length()).prop_map(|(seed, len)| Data { seed, len })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        ix().prop_map(Target::Existing),
        (ix(), ix()).prop_map(|(parent, name)| Target::Fresh { parent, name }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (ix(), ix(), any::<bool>()).prop_map(|(parent, name, excl)| Op::Create { parent, name, excl }),
        1 => (ix(), ix()).prop_map(|(parent, name)| Op::Mkdir { parent, name }),
        4 => (ix(), offset(), data()).prop_map(|(file, offset, data)| Op::Write { file, offset, data }),
        1 => (ix(), data()).prop_map(|(file, data)| Op::Append { file, data }),
        2 => (ix(), offset(), length()).prop_map(|(file, offset, len)| Op::Read { file, offset, len }),
        2 => (ix(), offset()).prop_map(|(file, len)| Op::Truncate { file, len }),
        3 => (ix(), target()).prop_map(|(src, dst)| Op::Rename { src, dst }),
        2 => (ix(), target()).prop_map(|(src, dst)| Op::Link { src, dst }),
        2 => ix().prop_map(|entry| Op::Remove { entry }),
        2 => (ix(), offset(), data()).prop_map(|(file, offset, data)| Op::MmapWrite { file, offset, data }),
        1 => (ix(), 0..4u64, 1..3usize, any::<u8>())
            .prop_map(|(file, page, pages, seed)| Op::DirectWrite { file, page, pages, seed }),
        1 => (ix(), 0..4u64, 1..3usize).prop_map(|(file, page, pages)| Op::DirectRead { file, page, pages }),
        2 => ix().prop_map(|file| Op::Open { file }),
        1 => ix().prop_map(|handle| Op::Close { handle }),
        2 => (ix(), offset(), length()).prop_map(|(handle, offset, len)| Op::HandleRead { handle, offset, len }),
        3 => (ix(), offset(), data()).prop_map(|(handle, offset, data)| Op::HandleWrite { handle, offset, data }),
        1 => (ix(), offset()).prop_map(|(handle, len)| Op::HandleTruncate { handle, len }),
        1 => (ix(), any::<bool>()).prop_map(|(handle, data_only)| Op::Fsync { handle, data_only }),
    ]
}

fn plugin_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (ix(), ix()).prop_map(|(name, module)| Op::SwapPlugin { name, module }),
        ix().prop_map(|kind| Op::DropFaulty { kind }),
        ix().prop_map(|plugin| Op::RemovePlugin { plugin }),
        Just(Op::Churn),
    ]
}

/// What a `Put` writes: nothing (an empty object), a few bytes, a few pages, or a few blocks
/// of the S3 model's 64 KiB-block cache.
fn put_data() -> impl Strategy<Value = Data> {
    let len = prop_oneof![
        1 => Just(0usize),
        3 => 1..64usize,
        4 => 1..3 * PAGE as usize + 100,
        1 => 100_000..300_000usize,
    ];
    (any::<u8>(), len).prop_map(|(seed, len)| Data { seed, len })
}

/// The ops of a case on an object-store mount: only what its semantics allow (whole-file
/// writes, reads, unlink, mkdir, rmdir, renames of files; `O_TRUNC` is a `Put` onto an
/// existing file).
pub(crate) fn any_s3_op() -> BoxedStrategy<Op> {
    prop_oneof![
        5 => (ix(), ix(), any::<bool>(), put_data())
            .prop_map(|(parent, name, excl, data)| Op::Put { parent, name, excl, data }),
        1 => (ix(), ix()).prop_map(|(parent, name)| Op::Mkdir { parent, name }),
        3 => (ix(), offset(), length()).prop_map(|(file, offset, len)| Op::Read { file, offset, len }),
        2 => ix().prop_map(|entry| Op::Remove { entry }),
        2 => (ix(), target()).prop_map(|(src, dst)| Op::RenameFile { src, dst }),
    ]
    .boxed()
}

/// The ops of a case: file ops, plus the plugin ops (about one in twelve) on a plugin mount.
pub(crate) fn any_op(plugins: bool) -> BoxedStrategy<Op> {
    if plugins {
        prop_oneof![11 => op(), 1 => plugin_op()].boxed()
    } else {
        op().boxed()
    }
}
