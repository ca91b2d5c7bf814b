//! Names: keys with spaces, unicode (accents, CJK, an emoji), `%` (alone, and as a literal
//! `%20` that must not be decoded), `+` and `&` round-trip between the server and the
//! mount: objects written behind the mount list, look up and read under exactly their
//! keys; files and directories written, renamed and removed through the mount become
//! exactly the keys their names say on the server.

use std::fs;

use kplugfs_tests::s3::{S3Mount, TestBucket, listing};

const ODD: [&str; 8] = [
    "with space",
    "100% sure",
    "a%20b",
    "naïve café",
    "日本語",
    "emoji 🎉",
    "plus+and&amp",
    "trailing space ",
];

#[test]
fn odd_keys_round_trip() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("names");
    for (i, n) in ODD.iter().enumerate() {
        b.put(n, format!("object {i}").as_bytes());
        b.put(
            &format!("dir {n}/inner {n}"),
            format!("inner {i}").as_bytes(),
        );
    }
    let m = S3Mount::new(&b, &["--attr-timeout", "500ms"]);

    // Listing, lookup, read.
    let mut want: Vec<(String, bool, u64)> = vec![(".kplug".into(), true, 0)];
    for (i, n) in ODD.iter().enumerate() {
        want.push((n.to_string(), false, format!("object {i}").len() as u64));
        want.push((format!("dir {n}"), true, 0));
    }
    want.sort();
    assert_eq!(listing(&m.m("")), want);
    for (i, n) in ODD.iter().enumerate() {
        assert_eq!(fs::read(m.m(n)).unwrap(), format!("object {i}").as_bytes());
        assert_eq!(
            fs::read(m.m(&format!("dir {n}/inner {n}"))).unwrap(),
            format!("inner {i}").as_bytes(),
            "{n}"
        );
        assert_eq!(
            listing(&m.m(&format!("dir {n}"))),
            vec![(
                format!("inner {n}"),
                false,
                format!("inner {i}").len() as u64
            )]
        );
    }
    // `a%20b` is not `a b`, and `a b` does not exist.
    assert!(fs::metadata(m.m("a b")).is_err());

    // Write: new files and directories under odd names become exactly those keys.
    for (i, n) in ODD.iter().enumerate() {
        fs::write(m.m(&format!("new {n}")), format!("new {i}")).unwrap();
        fs::create_dir(m.m(&format!("made {n}"))).unwrap();
        fs::write(m.m(&format!("made {n}/f {n}")), format!("made {i}")).unwrap();
    }
    for (i, n) in ODD.iter().enumerate() {
        assert_eq!(
            b.get(&format!("new {n}")).as_deref(),
            Some(format!("new {i}").as_bytes()),
            "key {n:?}"
        );
        assert_eq!(
            b.get(&format!("made {n}/f {n}")).as_deref(),
            Some(format!("made {i}").as_bytes())
        );
    }

    // Rename and unlink under odd names.
    for n in ODD {
        fs::rename(m.m(&format!("new {n}")), m.m(&format!("renamed {n} ✓"))).unwrap();
    }
    fs::remove_file(m.m("renamed 日本語 ✓")).unwrap();
    fs::remove_file(m.m("made 100% sure/f 100% sure")).unwrap();
    fs::remove_dir(m.m("made 100% sure")).unwrap();
    let keys = b.keys("");
    for (i, n) in ODD.iter().enumerate() {
        assert!(!keys.contains(&format!("new {n}")), "{n}: old key left");
        let renamed = format!("renamed {n} ✓");
        if *n == "日本語" {
            assert!(!keys.contains(&renamed));
        } else {
            assert_eq!(
                b.get(&renamed).as_deref(),
                Some(format!("new {i}").as_bytes())
            );
            assert_eq!(
                fs::read(m.m(&renamed)).unwrap(),
                format!("new {i}").as_bytes()
            );
        }
    }
    assert!(!keys.iter().any(|k| k.starts_with("made 100% sure/")));
    assert!(fs::metadata(m.m("made 100% sure")).is_err());
    // Nothing was written under a decoded or re-encoded spelling.
    for k in &keys {
        assert!(
            !k.contains("%25") && !k.contains("a b"),
            "odd key on the server: {k:?}"
        );
    }
}
