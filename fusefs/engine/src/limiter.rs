//! Memory and table caps of one plugin instance.
//!
//! wasmtime asks a store's `ResourceLimiter` before every memory or table
//! growth, including the initial allocation at instantiation. Answering
//! `Ok(false)` would make `memory.grow` return -1, which a well-behaved guest
//! may handle, but a Rust guest turns into an allocation-failure abort whose
//! trap says nothing about memory. We instead answer with an error carrying
//! [`LimitExceeded`]: wasmtime turns it into a trap of the current call, and
//! the `exceeded` flag (checked first, since the error may be wrapped in
//! context) lets `instance.rs` classify the fault as `Fault::MemoryLimit`.
//! The cap is on the whole linear memory, so it bounds what a plugin can make
//! the host allocate regardless of how it grows.

use wasmtime::ResourceLimiter;

/// The error a growth past the cap is turned into.
#[derive(Debug, thiserror::Error)]
#[error("{what} growth to {desired} past the limit of {limit}")]
pub(crate) struct LimitExceeded {
    what: &'static str,
    desired: usize,
    limit: usize,
}

/// Per-store limiter: caps linear memory in bytes and tables in elements.
pub(crate) struct Limiter {
    pub(crate) max_memory: usize,
    pub(crate) max_table: usize,
    /// Set when a growth was refused; never cleared (the plugin is disabled).
    pub(crate) exceeded: bool,
}

impl Limiter {
    pub(crate) fn new(max_memory: usize, max_table: usize) -> Self {
        Limiter {
            max_memory,
            max_table,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.exceeded = true;
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "memory",
                desired,
                limit: self.max_memory,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table {
            self.exceeded = true;
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "table",
                desired,
                limit: self.max_table,
            }));
        }
        Ok(true)
    }
}
