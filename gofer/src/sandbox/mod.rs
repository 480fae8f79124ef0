//! Self-confinement: what the gofer does to itself before it serves, so that a bug in it
//! cannot become a host compromise.

pub(crate) mod seccomp;
