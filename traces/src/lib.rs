//! Streaming readers and writers for block and object I/O traces.
