//! Set-user/group-ID bits on a real mount, which the daemon drops itself
//! (`FUSE_HANDLE_KILLPRIV_V2`): a write or truncate by a caller without `CAP_FSETID` drops
//! them as on any Linux filesystem, root keeps them, and small writes no longer cost a
//! `getxattr` round trip each.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kplugfs_tests::TestMount;

/// Run `sh -c script` as nobody (no capabilities); it must succeed.
fn nobody_runs(script: &str) {
    let out = kplugfs_tests::as_nobody(script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode_of(m: &TestMount, name: &str) -> u32 {
    fs::metadata(m.b(name)).unwrap().mode() & 0o7777
}

fn file_with_mode(m: &TestMount, name: &str, mode: u32) {
    fs::write(m.m(name), b"hello").unwrap();
    fs::set_permissions(m.m(name), fs::Permissions::from_mode(mode)).unwrap();
    assert_eq!(mode_of(m, name), mode);
}

#[test]
fn writes_and_truncates_by_other_users_drop_set_id_bits() {
    let m = TestMount::new(&[]);
    fs::set_permissions(m.m(""), fs::Permissions::from_mode(0o777)).unwrap();
    // (mode before, mode after a write by nobody): set-user-ID always goes, set-group-ID
    // only from a group-executable file (without group execute it marks mandatory locking).
    for (before, after) in [
        (0o4777, 0o777),
        (0o6777, 0o777),
        (0o2767, 0o2767),
        (0o2777, 0o777),
    ] {
        let name = format!("w{before:o}");
        file_with_mode(&m, &name, before);
        nobody_runs(&format!("printf x >> {}", m.m(&name).display()));
        assert_eq!(mode_of(&m, &name), after, "{name} after a write by nobody");
        assert_eq!(fs::read(m.b(&name)).unwrap(), b"hellox");
    }
    // Truncation by nobody, through a path and through an open descriptor.
    file_with_mode(&m, "t", 0o6777);
    nobody_runs(&format!("truncate -s 2 {}", m.m("t").display()));
    assert_eq!(mode_of(&m, "t"), 0o777);
    assert_eq!(fs::read(m.b("t")).unwrap(), b"he");
    file_with_mode(&m, "o", 0o4777);
    nobody_runs(&format!(": > {}", m.m("o").display()));
    assert_eq!(mode_of(&m, "o"), 0o777);
    assert_eq!(fs::metadata(m.b("o")).unwrap().len(), 0);
    // Root (CAP_FSETID) keeps them on write and truncate.
    file_with_mode(&m, "r", 0o6777);
    fs::OpenOptions::new()
        .append(true)
        .open(m.m("r"))
        .unwrap()
        .write_all(b"!")
        .unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(m.m("r"))
        .unwrap()
        .set_len(1)
        .unwrap();
    assert_eq!(mode_of(&m, "r"), 0o6777);
    // What the mount shows agrees with the backing file.
    for name in ["w4777", "w2767", "t", "r"] {
        assert_eq!(
            fs::metadata(m.m(name)).unwrap().mode() & 0o7777,
            mode_of(&m, name)
        );
    }
}

#[test]
fn small_writes_cost_one_request_each() {
    let m = TestMount::new(&[]);
    let fuse_count = |op: &str| -> u64 {
        let s: serde_json::Value =
            serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap();
        s["fuse"][op]["count"].as_u64().unwrap_or(0)
    };
    let getxattr_before = fuse_count("getxattr");
    let writes_before = fuse_count("write");
    let mut f = fs::File::create(m.m("small")).unwrap();
    for i in 0..256u32 {
        f.write_all(&[i as u8; 4096]).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let writes = fuse_count("write") - writes_before;
    let getxattrs = fuse_count("getxattr") - getxattr_before;
    assert!(writes >= 256, "{writes} write requests for 256 writes");
    // Without FUSE_HANDLE_KILLPRIV_V2 the kernel asks for security.capability before every
    // write (256 here); with it, once per inode at most.
    assert!(
        getxattrs <= 2,
        "{getxattrs} getxattr requests for 256 writes"
    );
    assert_eq!(fs::metadata(m.b("small")).unwrap().len(), 256 * 4096);
}
