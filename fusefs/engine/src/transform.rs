//! A transform instance (ABI 1.6): runs one stream of bytes through a data-path plugin,
//! under limits that scale with the bytes, and validates everything it answers.
//!
//! ```text
//! Transformer::run(source size, output cap, read)
//!   kplug_transform_begin(size)
//!   loop: read up to 64 KiB into the plugin's input buffer
//!         kplug_transform_chunk(len, last) -> n | MORE      deadline: 5 + (len + 256 KiB)/4 KiB ticks
//!         take n bytes from the output buffer               n <= 256 KiB, else InvalidAnswer
//!         while MORE: kplug_transform_chunk(0, last)        output total <= cap, else OutputCap
//! ```
//!
//! The buffers' addresses are asked once at load and checked to lie in the plugin's memory
//! (memory never shrinks, so the check holds for life); the host copies in and out with
//! bounds-checked `Memory::read`/`write`, so no answer can make it touch anything else.
//!
//! **Limits.** The memory cap is the store's limiter, as for every plugin. The time budget
//! of a call is the epoch deadline of `state.rs` (CPU-aware, so a descheduled call is not
//! stopped), set per call from the bytes it handles ([`abi::TRANSFORM_BYTES_PER_TICK`]): an
//! honest transform never comes near it, an infinite loop stops within ~0.1 s. Transform
//! calls are not charged to the slow-call budget of cache hooks (`budget.rs`): nobody holds a
//! cache lock while a transform runs, and a view's reader waits for its own bytes only. The
//! output cap bounds a stream's output: a decompression bomb ends with
//! [`StreamError::OutputCap`], never an allocation the host cannot make.
//!
//! **Two kinds of failure.** A [`Fault`] (trap, timeout, memory cap, an answer outside the
//! ABI, a size-preserving transform changing the size) means the plugin cannot be trusted: its
//! status is `failed` and the caller stops using it. A [`StreamError`] is about one stream
//! (the plugin refused its input, the output went over the cap, the source could not be
//! read): that read fails, the plugin stays in service.

use std::time::Instant;

use kplug_abi::{self as abi, exports as exp};
use wasmtime::{Memory, Store, TypedFunc};

use crate::engine::{CompiledPlugin, PluginEngine};
use crate::error::{Fault, LoadError};
use crate::instance::{HookFault, arm, ask_buffer, ask_i32, classify, inst_err};
use crate::state::HostState;
use crate::status::{PluginStatus, StatusHandle};

/// Why one stream failed while the plugin stays in service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The plugin answered a negative code (bad input: not gzip, say).
    #[error("the transform refused the stream (code {0})")]
    Refused(i32),
    /// The output went over the cap (a decompression bomb).
    #[error("the output went over the cap of {cap} bytes")]
    OutputCap {
        /// The cap.
        cap: u64,
    },
    /// The source could not be read.
    #[error("reading the source: {0}")]
    Source(String),
    /// The output could not be kept (the spool file: no space left, say).
    #[error("keeping the output: {0}")]
    Sink(String),
}

/// A stream that did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransformError {
    /// The plugin faulted: it is `failed` and must not be used again.
    #[error("{0}")]
    Fault(HookFault),
    /// This stream failed; the plugin may serve others.
    #[error("{0}")]
    Stream(StreamError),
}

/// What one completed stream cost and produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFigures {
    /// Source bytes fed to the plugin.
    pub bytes_in: u64,
    /// Bytes it produced.
    pub bytes_out: u64,
    /// Records it counted in and out (`transform_records`).
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Wall time in the plugin's calls, ns.
    pub time_ns: u64,
}

/// One instance of a transform plugin: its own store, one stream at a time.
pub struct Transformer {
    store: Store<HostState>,
    memory: Memory,
    in_buf: usize,
    out_buf: usize,
    begin: TypedFunc<i64, i32>,
    chunk: TypedFunc<(i32, i32), i32>,
    size_preserving: bool,
    per_caller: bool,
    status: StatusHandle,
    failed: bool,
    _engine: PluginEngine,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transformer")
            .field("name", &self.status.name())
            .field("size_preserving", &self.size_preserving)
            .finish()
    }
}

impl CompiledPlugin {
    /// Instantiates a transform (ABI 1.6) with its `key=value` parameters. Refused when the
    /// module is not a transform or its buffers do not lie in its memory.
    pub fn instantiate_transform(&self, params: &[(&str, &str)]) -> Result<Transformer, LoadError> {
        if !self.is_transform() {
            return Err(LoadError::MissingExport {
                name: exp::TRANSFORM_CHUNK.name,
                role: None,
            });
        }
        let (mut store, instance, memory) = self.boot(params, 0)?;
        // A transform's buffers may not sit at address 0 either.
        let ask = |store: &mut Store<HostState>, f: &'static abi::Func, need: usize| {
            let at = ask_buffer(&instance, store, &memory, f, need, "buffer")?;
            if at == 0 {
                return Err(LoadError::Fault {
                    hook: f.name,
                    fault: Fault::InvalidAnswer(format!(
                        "buffer {at:#x}+{need} is outside the plugin's memory"
                    )),
                });
            }
            Ok(at as i32)
        };
        let in_buf = ask(&mut store, &exp::TRANSFORM_IN_BUF, abi::TRANSFORM_IN_BYTES)? as u32;
        let out_buf = ask(
            &mut store,
            &exp::TRANSFORM_OUT_BUF,
            abi::TRANSFORM_OUT_BYTES,
        )? as u32;
        let has_flags = instance
            .get_export(&mut store, exp::TRANSFORM_FLAGS.name)
            .is_some();
        let flags = match has_flags {
            true => ask_i32(&instance, &mut store, &exp::TRANSFORM_FLAGS)?,
            false => 0,
        };
        let size_preserving = flags & abi::TRANSFORM_SIZE_PRESERVING != 0;
        if self.is_per_caller() && !size_preserving {
            return Err(LoadError::Invalid(
                "a per-caller transform (it imports transform_uid) must be size-preserving: \
                 `stat` does not say who asks"
                    .into(),
            ));
        }
        if flags & !abi::TRANSFORM_SIZE_PRESERVING != 0 {
            return Err(LoadError::Fault {
                hook: exp::TRANSFORM_FLAGS.name,
                fault: Fault::InvalidAnswer(format!("unknown flags {flags:#x}")),
            });
        }
        let begin = instance
            .get_typed_func(&mut store, exp::TRANSFORM_BEGIN.name)
            .map_err(inst_err)?;
        let chunk = instance
            .get_typed_func(&mut store, exp::TRANSFORM_CHUNK.name)
            .map_err(inst_err)?;
        Ok(Transformer {
            store,
            memory,
            in_buf: in_buf as usize,
            out_buf: out_buf as usize,
            begin,
            chunk,
            size_preserving,
            per_caller: self.is_per_caller(),
            status: PluginStatus::new(self.name(), abi::RoleSet::EMPTY, false, false),
            failed: false,
            _engine: self.inner.engine.clone(),
        })
    }
}

impl Transformer {
    /// Whether the plugin promises output as long as its input (`kplug_transform_flags`).
    pub fn size_preserving(&self) -> bool {
        self.size_preserving
    }

    /// Whether the output depends on the reader (the plugin imports `transform_uid`).
    pub fn per_caller(&self) -> bool {
        self.per_caller
    }

    /// The reader of the next streams, as `transform_uid` reports it.
    pub fn set_caller(&mut self, uid: Option<u32>) {
        self.store.data_mut().caller_uid = uid.map_or(-1, i64::from);
    }

    /// The instance's status (state `failed` after a fault).
    pub fn status(&self) -> StatusHandle {
        self.status.clone()
    }

    /// Whether a fault ended the instance.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn fault(&mut self, hook: &'static str, fault: Fault) -> TransformError {
        let f = HookFault { hook, fault };
        self.failed = true;
        self.status.set_failed(f.to_string());
        TransformError::Fault(f)
    }

    /// One call, under a deadline of `bytes` worth of ticks; its wall time added to `time`.
    fn call<P: wasmtime::WasmParams>(
        &mut self,
        hook: &'static str,
        f: TypedFunc<P, i32>,
        params: P,
        bytes: u64,
        time: &mut u64,
    ) -> Result<i32, TransformError> {
        let ticks = abi::TRANSFORM_BASE_TICKS + bytes / abi::TRANSFORM_BYTES_PER_TICK;
        self.store.data_mut().set_deadline(ticks);
        arm(&mut self.store);
        let start = Instant::now();
        let r = f.call(&mut self.store, params);
        let ns = start.elapsed().as_nanos() as u64;
        *time += ns;
        self.status.add_sampled_time(ns);
        let calls = self.status.calls() + 1;
        self.status
            .calls
            .store(calls, std::sync::atomic::Ordering::Relaxed);
        r.map_err(|e| {
            let fault = classify(&self.store, e);
            self.fault(hook, fault)
        })
    }

    /// Run one stream: `read` fills the buffer it is given with the source's next bytes (0 at
    /// its end); `size` is the source's size if known. The whole output, or why there is none:
    /// a stream either completes or fails, never a part served as the whole.
    pub fn run(
        &mut self,
        size: Option<u64>,
        output_cap: u64,
        read: &mut dyn FnMut(&mut [u8]) -> std::io::Result<usize>,
    ) -> Result<(Vec<u8>, StreamFigures), TransformError> {
        let mut out = Vec::new();
        let fig = self.run_into(size, output_cap, read, &mut |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok((out, fig))
    }

    /// [`run`](Self::run), handing the output to `write` as it comes (in pieces of at most
    /// [`abi::TRANSFORM_OUT_BYTES`]) instead of keeping it: a caller can spill a large
    /// output to a file. A `write` error ends the stream with [`StreamError::Sink`].
    pub fn run_into(
        &mut self,
        size: Option<u64>,
        output_cap: u64,
        read: &mut dyn FnMut(&mut [u8]) -> std::io::Result<usize>,
        write: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<StreamFigures, TransformError> {
        if self.failed {
            return Err(TransformError::Fault(HookFault {
                hook: exp::TRANSFORM_CHUNK.name,
                fault: Fault::InvalidAnswer("the transform failed earlier".into()),
            }));
        }
        let mut fig = StreamFigures::default();
        self.store.data_mut().records = (0, 0);
        let size_arg = size.map_or(-1, |s| s.min(i64::MAX as u64) as i64);
        let code = self.call(
            exp::TRANSFORM_BEGIN.name,
            self.begin.clone(),
            size_arg,
            0,
            &mut fig.time_ns,
        )?;
        if code != 0 {
            return Err(TransformError::Stream(StreamError::Refused(code)));
        }
        let mut produced = 0u64;
        let mut piece = vec![0u8; abi::TRANSFORM_OUT_BYTES];
        let mut chunk = vec![0u8; abi::TRANSFORM_IN_BYTES];
        loop {
            // Fill the chunk: a short one is the source's end.
            let mut len = 0;
            while len < chunk.len() {
                match read(&mut chunk[len..]) {
                    Ok(0) => break,
                    Ok(n) => len += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(TransformError::Stream(StreamError::Source(e.to_string())));
                    }
                }
            }
            let last = len < chunk.len();
            fig.bytes_in += len as u64;
            self.memory
                .write(&mut self.store, self.in_buf, &chunk[..len])
                .expect("in bounds: checked at load, memory never shrinks");
            let mut feed = len as i32;
            loop {
                let bytes = feed as u64 + abi::TRANSFORM_OUT_BYTES as u64;
                let answer = self.call(
                    exp::TRANSFORM_CHUNK.name,
                    self.chunk.clone(),
                    (feed, last as i32),
                    bytes,
                    &mut fig.time_ns,
                )?;
                feed = 0;
                if answer < 0 {
                    return Err(TransformError::Stream(StreamError::Refused(answer)));
                }
                let more = answer & abi::TRANSFORM_MORE != 0;
                let n = (answer & !abi::TRANSFORM_MORE) as usize;
                if n > abi::TRANSFORM_OUT_BYTES {
                    return Err(self.fault(
                        exp::TRANSFORM_CHUNK.name,
                        Fault::InvalidAnswer(format!(
                            "answered {n} output bytes, more than the buffer's {}",
                            abi::TRANSFORM_OUT_BYTES
                        )),
                    ));
                }
                if produced + n as u64 > output_cap {
                    return Err(TransformError::Stream(StreamError::OutputCap {
                        cap: output_cap,
                    }));
                }
                self.memory
                    .read(&self.store, self.out_buf, &mut piece[..n])
                    .expect("in bounds: checked at load, memory never shrinks");
                if n > 0 {
                    write(&piece[..n])
                        .map_err(|e| TransformError::Stream(StreamError::Sink(e.to_string())))?;
                }
                produced += n as u64;
                if !more {
                    break;
                }
            }
            if last {
                break;
            }
        }
        fig.bytes_out = produced;
        (fig.records_in, fig.records_out) = self.store.data().records;
        if self.size_preserving && fig.bytes_out != fig.bytes_in {
            return Err(self.fault(
                exp::TRANSFORM_CHUNK.name,
                Fault::InvalidAnswer(format!(
                    "a size-preserving transform turned {} bytes into {}",
                    fig.bytes_in, fig.bytes_out
                )),
            ));
        }
        Ok(fig)
    }
}
