//! Regression tests: shrunk failures, kept by name, and fixed sequences that cover what
//! random cases reach rarely. Each runs on a fresh mount of its own.

use std::fs;

use kplugfs_tests::{Hostile, TestMount};

use crate::ops::{BALLAST, Data, Ix, Op, ballast};
use crate::{SMALL_CACHE, run_case};

/// Run fixed `ops` on a fresh mount and panic with the divergence, if any.
fn replay(ops: &[Op]) {
    replay_on(&[], false, ops);
}

fn replay_on(options: &[&str], plugins: bool, ops: &[Op]) {
    let mount = TestMount::with_backing(options, |b| {
        if plugins {
            fs::write(b.join(BALLAST), ballast()).unwrap();
        }
    });
    if let Err(e) = run_case(&mount, ops, plugins) {
        panic!("{e}");
    }
}

fn create(name: u8) -> Op {
    Op::Create {
        parent: Ix(0),
        name: Ix(name),
        excl: false,
    }
}

/// A page written with `O_DIRECT` (page-aligned offset, length and buffer, valid on the
/// backing ext4) fails through the mount with EINVAL: the daemon reopens the backing file with
/// the caller's `O_DIRECT` and `pwrite`s the request from an unaligned buffer.
#[test]
fn regression_odirect_write_of_a_page() {
    replay(&[
        create(0),
        Op::DirectWrite {
            file: Ix(0),
            page: 0,
            pages: 1,
            seed: 0,
        },
    ]);
}

/// Every plugin op once, in an order that covers each transition: a hostile plugin serving
/// until a churn evicts, a swap replacing a failed one, removing the active and an inactive
/// plugin; file data checked throughout.
#[test]
fn plugin_ops_in_sequence() {
    let write = |seed| Op::Write {
        file: Ix(0),
        offset: 100,
        data: Data { seed, len: 9000 },
    };
    let mut ops = vec![create(0), write(1)];
    for (k, _) in Hostile::ALL.iter().enumerate() {
        ops.extend([
            Op::SwapPlugin {
                name: Ix(k as u8),
                module: Ix(k as u8),
            },
            Op::Churn,
            write(2 + k as u8),
            Op::DropFaulty { kind: Ix(k as u8) },
            Op::Churn,
            create(1),
            write(7),
            Op::SwapPlugin {
                name: Ix(1),
                module: Ix(0),
            },
            Op::DropFaulty {
                kind: Ix(k as u8 + 1),
            },
            Op::RemovePlugin { plugin: Ix(0) },
            Op::Churn,
            Op::RemovePlugin { plugin: Ix(1) },
        ]);
    }
    replay_on(&SMALL_CACHE, true, &ops);
}
