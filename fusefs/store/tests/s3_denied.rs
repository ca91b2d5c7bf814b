//! Wrong credentials against the real S3 server (feature `s3-tests`). A test binary of its
//! own: it changes the process's environment, which no other test may read meanwhile.
#![cfg(feature = "s3-tests")]

use std::time::Duration;

use kplug_store::{Store, StoreError, StoreOptions};

#[test]
fn refused_credentials_fail_the_check_in_one_line() {
    kplugfs_s3test::env();
    let bucket = kplugfs_s3test::bucket("denied");
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe { std::env::set_var("AWS_SECRET_ACCESS_KEY", "not-the-secret") };
    let s = Store::open(
        &format!("s3://{bucket}"),
        &StoreOptions {
            retry_timeout: Duration::from_secs(1),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let e = s.check().unwrap_err();
    assert!(matches!(e, StoreError::Denied(_)), "{e:?}");
    assert_eq!(e.errno(), libc::EACCES);
    let line = e.to_string();
    assert!(!line.contains('\n') && !line.contains('<'), "{line}");
    assert!(line.contains("refused the credentials"), "{line}");
}
