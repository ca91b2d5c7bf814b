//! Shuttle tests of the block cache live in `tests/`; this crate exists to build kplugfs with
//! its `shuttle` feature apart from the rest of the workspace.
