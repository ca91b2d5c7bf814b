//! Guest SDK for writing kplugfs policy plugins in Rust (no_std, wasm32-unknown-unknown).
