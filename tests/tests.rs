//! Integration tests.
mod cli;
mod fifo;
