//! Integration tests.
mod fifo;
mod cli;
