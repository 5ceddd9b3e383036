//! Test support shared by the workspace's tests and benches (not
//! published): [`sshd`], a real OpenSSH server on 127.0.0.1 that the remote
//! tests and the remote benchmark rows talk to.
#![deny(unsafe_code, missing_docs, missing_debug_implementations)]

pub mod sshd;
