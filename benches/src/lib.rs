//! Benchmarks of lisafs-rs against raw syscalls and between transports (see README.md).
