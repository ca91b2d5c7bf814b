//! The transform role (ABI 1.6) through the engine: honest modules stream whole outputs
//! across chunks and drains; hostile ones (trap mid-stream, infinite loop, an output length
//! past the buffer, a bomb over the cap, a lying size-preserving flag, buffers outside
//! memory) end in the precise error, and a fault leaves the instance `failed`.

use kplug_engine::{
    EngineConfig, Fault, LoadError, PluginEngine, PluginState, StreamError, TransformError,
    Transformer,
};

/// A module with the transform exports around `chunk` (the body of
/// `kplug_transform_chunk(len, last) -> i32`), buffers at 64 KiB and 128 KiB.
fn module(chunk: &str, extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 8)
          (global $pending (mut i32) (i32.const 0))
          (global $calls (mut i32) (i32.const 0))
          (func (export "kplug_abi_version") (result i32) i32.const 0x10006)
          (func (export "kplug_transform_in_buf") (result i32) i32.const 65536)
          (func (export "kplug_transform_out_buf") (result i32) i32.const 131072)
          (func (export "kplug_transform_begin") (param i64) (result i32)
            i32.const 0 global.set $pending i32.const 0)
          (func (export "kplug_transform_chunk") (param $len i32) (param $last i32) (result i32)
            (local $i i32) (local $n i32) (local $b i32)
            global.get $calls i32.const 1 i32.add global.set $calls
            {chunk})
          {extra})"#
    ))
    .unwrap()
}

/// Drops every `x`: output shorter than input, state-free.
const DROP_X: &str = r#"
    (block $done (loop $next
      local.get $i local.get $len i32.ge_u br_if $done
      (local.set $b (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
      (if (i32.ne (local.get $b) (i32.const 120)) (then
        (i32.store8 (i32.add (i32.const 131072) (local.get $n)) (local.get $b))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      br $next))
    local.get $n"#;

/// Every input byte becomes 8 `z`s, handed over 256 KiB at a time with the MORE bit.
const TIMES_8: &str = r#"
    (global.set $pending (i32.add (global.get $pending) (i32.mul (local.get $len) (i32.const 8))))
    (local.set $n (select (global.get $pending) (i32.const 262144)
        (i32.lt_u (global.get $pending) (i32.const 262144))))
    (memory.fill (i32.const 131072) (i32.const 122) (local.get $n))
    (global.set $pending (i32.sub (global.get $pending) (local.get $n)))
    (select (i32.or (local.get $n) (i32.const 0x40000000)) (local.get $n)
        (i32.gt_u (global.get $pending) (i32.const 0)))"#;

fn engine() -> PluginEngine {
    PluginEngine::new(EngineConfig::default()).unwrap()
}

fn load(bytes: &[u8]) -> Result<Transformer, LoadError> {
    let c = engine().compile("t", bytes)?;
    assert!(c.is_transform());
    c.instantiate_transform(&[])
}

fn run(t: &mut Transformer, input: &[u8], cap: u64) -> Result<Vec<u8>, TransformError> {
    let mut at = 0;
    let mut read = |buf: &mut [u8]| {
        // Short reads, as a real source gives.
        let n = buf.len().min(input.len() - at).min(10_000);
        buf[..n].copy_from_slice(&input[at..at + n]);
        at += n;
        Ok(n)
    };
    t.run(Some(input.len() as u64), cap, &mut read)
        .map(|(out, _)| out)
}

fn input(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"abcxdefx\n"[i % 9]).collect()
}

#[test]
fn a_filter_streams_across_chunks_and_repeats() {
    let mut t = load(&module(DROP_X, "")).unwrap();
    assert!(!t.size_preserving());
    for len in [0, 1, 65_535, 65_536, 65_537, 300_001] {
        let src = input(len);
        let want: Vec<u8> = src.iter().copied().filter(|&b| b != b'x').collect();
        assert_eq!(run(&mut t, &src, u64::MAX).unwrap(), want, "len {len}");
    }
    let (_, fig) = t
        .run(Some(3), 100, &mut {
            let mut done = false;
            move |b: &mut [u8]| {
                if done {
                    return Ok(0);
                }
                done = true;
                b[..3].copy_from_slice(b"axb");
                Ok(3)
            }
        })
        .unwrap();
    assert_eq!((fig.bytes_in, fig.bytes_out), (3, 2));
    assert_eq!(t.status().snapshot().state, PluginState::Active);
}

#[test]
fn pending_output_is_drained_and_the_cap_stops_a_bomb() {
    let mut t = load(&module(TIMES_8, "")).unwrap();
    let src = input(100_000);
    let out = run(&mut t, &src, u64::MAX).unwrap();
    assert_eq!(out.len(), 800_000);
    assert!(out.iter().all(|&b| b == b'z'));
    // Over the cap: an error for this stream only, the plugin stays in service.
    let e = run(&mut t, &src, 500_000).unwrap_err();
    assert!(
        matches!(
            e,
            TransformError::Stream(StreamError::OutputCap { cap: 500_000 })
        ),
        "{e}"
    );
    assert_eq!(run(&mut t, &input(10), u64::MAX).unwrap().len(), 80);
}

#[test]
fn a_trap_mid_stream_fails_the_instance() {
    let chunk =
        format!("(if (i32.eq (global.get $calls) (i32.const 3)) (then unreachable)) {DROP_X}");
    let mut t = load(&module(&chunk, "")).unwrap();
    let e = run(&mut t, &input(200_000), u64::MAX).unwrap_err();
    let TransformError::Fault(f) = e else {
        panic!("{e}")
    };
    assert!(matches!(f.fault, Fault::Trap(_)), "{f}");
    assert_eq!(t.status().snapshot().state, PluginState::Failed);
    assert!(t.is_failed());
    // Never used again, even for a stream it could have served.
    assert!(matches!(
        run(&mut t, b"ab", u64::MAX),
        Err(TransformError::Fault(_))
    ));
}

#[test]
fn an_infinite_loop_times_out() {
    let chunk = "(loop $l br $l) i32.const 0";
    let mut t = load(&module(chunk, "")).unwrap();
    let e = run(&mut t, b"abc", u64::MAX).unwrap_err();
    assert!(
        matches!(&e, TransformError::Fault(f) if f.fault == Fault::Timeout),
        "{e}"
    );
}

#[test]
fn an_output_length_past_the_buffer_is_a_fault() {
    let mut t = load(&module("i32.const 262145", "")).unwrap();
    let e = run(&mut t, b"abc", u64::MAX).unwrap_err();
    assert!(
        matches!(&e, TransformError::Fault(f) if matches!(f.fault, Fault::InvalidAnswer(_))),
        "{e}"
    );
}

#[test]
fn a_refused_stream_is_not_a_fault() {
    let mut t = load(&module("i32.const -5", "")).unwrap();
    let e = run(&mut t, b"abc", u64::MAX).unwrap_err();
    assert!(
        matches!(e, TransformError::Stream(StreamError::Refused(-5))),
        "{e}"
    );
    assert!(!t.is_failed());
}

#[test]
fn a_size_preserving_transform_must_keep_the_size() {
    let flags = r#"(func (export "kplug_transform_flags") (result i32) i32.const 1)"#;
    let mut t = load(&module(DROP_X, flags)).unwrap();
    assert!(t.size_preserving());
    // No `x`: the size is kept and all is well.
    assert_eq!(run(&mut t, b"abc", u64::MAX).unwrap(), b"abc");
    let e = run(&mut t, b"axc", u64::MAX).unwrap_err();
    assert!(
        matches!(&e, TransformError::Fault(f) if matches!(f.fault, Fault::InvalidAnswer(_))),
        "{e}"
    );
}

#[test]
fn buffers_outside_memory_and_mixed_roles_are_refused_at_load() {
    let bad = module(DROP_X, "").len(); // the honest module compiles
    assert!(bad > 0);
    let outside = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "kplug_abi_version") (result i32) i32.const 0x10006)
          (func (export "kplug_transform_in_buf") (result i32) i32.const 16)
          (func (export "kplug_transform_out_buf") (result i32) i32.const 32)
          (func (export "kplug_transform_begin") (param i64) (result i32) i32.const 0)
          (func (export "kplug_transform_chunk") (param i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let e = load(&outside).unwrap_err();
    assert!(
        matches!(
            &e,
            LoadError::Fault {
                hook: "kplug_transform_in_buf",
                ..
            }
        ),
        "{e}"
    );
    let mixed = module(
        DROP_X,
        r#"(func (export "kplug_admit") (param i64 i64 i64) (result i32) i32.const 1)"#,
    );
    assert_eq!(
        engine().compile("m", &mixed).unwrap_err(),
        LoadError::TransformWithRoles
    );
    let partial = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "kplug_abi_version") (result i32) i32.const 0x10006)
          (func (export "kplug_transform_chunk") (param i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    assert!(matches!(
        engine().compile("p", &partial).unwrap_err(),
        LoadError::MissingExport { .. }
    ));
}
