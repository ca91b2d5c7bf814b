//! Helpers shared by the CLI tests (each test file includes this module).

use std::path::{Path, PathBuf};
use std::process::Output;

/// The stdout of a command that must succeed (its stderr in the failure message).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The files under `dir`, at any depth, sorted.
#[allow(dead_code)] // not every test file walks a directory
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(files_under(&p));
        } else {
            v.push(p);
        }
    }
    v.sort();
    v
}
