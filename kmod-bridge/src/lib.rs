//! Forwards prefetch hints to the kernel page cache of backing files (kernel module or readahead(2)).
