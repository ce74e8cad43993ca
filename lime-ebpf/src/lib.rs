#![no_std]
//! Placeholder library target: lets `lime-userspace` declare a build-dependency on this
//! crate so Cargo rebuilds the embedded eBPF object when it changes.
