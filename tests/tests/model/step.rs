//! An op resolved against the model's state: the [`Step`] both sides apply through their
//! one [`Side::apply`], and what it returns ([`Outcome`]), compared between the sides.

use std::fmt;

use kplugfs_tests::Hostile;

use crate::ops::{Data, Module};

/// An op resolved against the current state: paths relative to the case directory and
/// descriptor slots. This is what both sides apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Create {
        path: String,
        excl: bool,
    },
    Mkdir {
        path: String,
    },
    Write {
        path: String,
        offset: u64,
        data: Data,
    },
    Append {
        path: String,
        data: Data,
    },
    Read {
        path: String,
        offset: u64,
        len: usize,
    },
    Truncate {
        path: String,
        len: u64,
    },
    Rename {
        from: String,
        to: String,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    MmapWrite {
        path: String,
        offset: u64,
        data: Data,
    },
    DirectWrite {
        path: String,
        offset: u64,
        data: Data,
    },
    DirectRead {
        path: String,
        offset: u64,
        len: usize,
    },
    Open {
        path: String,
    },
    Close {
        handle: usize,
    },
    HandleRead {
        handle: usize,
        offset: u64,
        len: usize,
    },
    HandleWrite {
        handle: usize,
        offset: u64,
        data: Data,
    },
    HandleTruncate {
        handle: usize,
        len: u64,
    },
    Fsync {
        handle: usize,
        data_only: bool,
    },
    SwapPlugin {
        file: String,
        module: Module,
    },
    DropFaulty {
        file: String,
        kind: Hostile,
    },
    RemovePlugin {
        file: String,
    },
    Churn,
    Put {
        path: String,
        excl: bool,
        data: Data,
    },
}

/// What a step returned: success with maybe some bytes, or an errno.
#[derive(PartialEq, Eq)]
pub(crate) enum Reply {
    Done,
    Bytes(Vec<u8>),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Done => write!(f, "Done"),
            Reply::Bytes(b) => write!(f, "Bytes(len {})", b.len()),
        }
    }
}

pub(crate) type Outcome = Result<Reply, i32>;

/// One side of the comparison.
pub(crate) trait Side {
    fn apply(&mut self, step: &Step) -> Outcome;
}
