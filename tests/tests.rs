//! Integration tests.
mod channel;
