//! ABI 1.1 introspection imports, observed through what a plugin decides: admission
//! plugins whose answer depends on one figure, driven through a `CacheCore`.

mod common;

use common::*;
use kplug_abi::{Role, RoleSet};
use kplug_cache::{CacheCore, CoreConfig};
use kplug_engine::LoadError;

/// An admission plugin (ABI 1.1) importing `extra` and admitting when `body` is non-zero.
fn admit_if(imports: &str, body: &str) -> String {
    fill(
        ADMIT_TEMPLATE,
        &[
            ("{VERSION}", "0x10001"),
            ("{BODY}", body),
            ("(memory", &format!("{imports}\n  (memory")),
        ],
    )
}

fn admission_core(capacity: u64, text: &str) -> CacheCore<()> {
    let mut core = CacheCore::new(capacity, CoreConfig::default());
    core.install_plugin(load(text, capacity), RoleSet::of(&[Role::Admission]))
        .expect("install");
    core
}

#[test]
fn hit_ratio_follows_the_requests() {
    let text = admit_if(
        r#"(import "kplug" "hit_ratio" (func $hr (result f64)))"#,
        "(f64.gt (call $hr) (f64.const 0.5))",
    );
    let mut core = CacheCore::new(64, CoreConfig::default());
    // Built-in admission first: key 1 resident, then hit 9 times.
    for _ in 0..10 {
        core.request(1, || ());
    }
    assert_eq!(core.figures().hit_ratio(), 0.9);
    core.install_plugin(load(&text, 64), RoleSet::of(&[Role::Admission]))
        .unwrap();
    // Hit ratio 9/11 when key 2 misses: admitted.
    core.request(2, || ());
    assert!(core.contains(2));
    // A run of misses drags the ratio under 0.5: later keys are refused.
    for k in 100..120 {
        core.request(k, || ());
    }
    assert!(core.figures().hit_ratio() < 0.5);
    assert!(!core.contains(119));
    assert!(core.stats().admission_refusals > 0);
    assert_eq!(core.stats().faults, 0);
}

#[test]
fn sequentiality_is_per_file() {
    let text = admit_if(
        r#"(import "kplug" "sequentiality" (func $seq (param i64) (result f64)))"#,
        "(f64.gt (call $seq (local.get $file)) (f64.const 0.5))",
    );
    let mut core = admission_core(1024, &text);
    let key = |file: u64, block: u64| (file << 32) | block;
    for b in 0..40 {
        core.request(key(1, b), || ());
        core.request(key(2, (b * 7919) % 500), || ());
    }
    assert!(core.figures().sequentiality(1) > 0.9);
    assert!(core.figures().sequentiality(2) < 0.1);
    // The sequential file's blocks get in once its stream is established; the random
    // file's never do.
    assert!(core.contains(key(1, 39)));
    assert!((0..40).all(|b| !core.contains(key(2, (b * 7919) % 500))));
}

#[test]
fn backend_latency_pressure_and_logical_clock() {
    let lat = admit_if(
        r#"(import "kplug" "backend_latency_ns" (func $lat (result i64)))"#,
        "(i64.gt_u (call $lat) (i64.const 1000))",
    );
    let mut core = admission_core(8, &lat);
    core.request(1, || ());
    assert!(!core.contains(1), "no latency yet: refused");
    core.figures().set_backend_latency(2_000_000);
    core.request(2, || ());
    assert!(core.contains(2), "slow backend: admitted");

    let pressure = admit_if(
        r#"(import "kplug" "pressure" (func $p (result f64)))"#,
        "(f64.lt (call $p) (f64.const 0.5))",
    );
    let mut core = admission_core(4, &pressure);
    for k in 0..4 {
        core.request(k, || ());
    }
    assert_eq!(core.len(), 4, "filling: no pressure");
    for k in 10..20 {
        core.request(k, || ());
    }
    assert!(core.figures().pressure() >= 0.5);
    assert!(core.stats().admission_refusals > 0, "evicting: refused");

    let clock = admit_if(
        r#"(import "kplug" "now_ns" (func $now (result i64)))"#,
        "(i64.eqz (i64.rem_u (call $now) (i64.const 2000)))",
    );
    let mut core = CacheCore::new(64, CoreConfig::default());
    core.figures().use_logical_clock();
    core.install_plugin(load(&clock, 64), RoleSet::of(&[Role::Admission]))
        .unwrap();
    for k in 0..10 {
        core.request(k, || ());
    }
    // 1 µs per request: every other miss sees an even number of µs.
    assert_eq!(core.len(), 5);
}

#[test]
fn introspection_imports_are_type_checked() {
    let e = engine()
        .compile(
            "bad",
            &wat(&admit_if(
                r#"(import "kplug" "hit_ratio" (func $hr (result i64)))"#,
                "(i32.const 1)",
            )),
        )
        .unwrap_err();
    assert!(
        matches!(&e, LoadError::MistypedImport { name, .. } if name == "hit_ratio"),
        "{e}"
    );
    assert!(e.to_string().contains("f64"), "{e}");
}
