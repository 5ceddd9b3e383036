//! Integration tests.
mod fifo;
