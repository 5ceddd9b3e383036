//! `duet send DIR LINE...`: the raw write half: lines for PROG's stdin,
//! under the same lock as `ask` so they never land in the middle of a
//! request, and without framing (PROG's output goes to `DIR/out`).
//!
//! The lines travel to serve as one raw request; serve writes them to PROG
//! between requests and answers once all of them went. So `send` exits 0
//! only when PROG got its lines, and otherwise says why (1: PROG ended or
//! the service stopped first; 124: they waited longer than `--timeout`
//! for their turn). Lines and their bytes pass exactly.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::args::parse_duration;
use crate::ask::Client;
use crate::exit::{Failure, TIMEOUT};
use crate::serve::protocol::{self, TIMED_OUT};

/// Write lines to the program served in DIR (its output goes to DIR/out).
#[derive(Debug, Args)]
#[command(after_help = "\
Exits 0 once the program got the lines; 1 when it ended (or the service
was stopped) first, 124 when they waited longer than --timeout.

Example: duet send /tmp/calc 'x=6' 'x*7' && duet recv /tmp/calc")]
pub struct SendArgs {
    /// The served directory.
    dir: PathBuf,
    /// The lines to send, each followed by a newline.
    #[arg(required = true)]
    lines: Vec<OsString>,
    /// The limit for taking the lock and for the lines to reach the program.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Runs `duet send`.
pub fn run(args: SendArgs) -> Result<ExitCode, Failure> {
    if args.lines.iter().any(|l| l.as_bytes().contains(&b'\n')) {
        return Err(Failure::new(2, "each LINE must be one line (no newline)"));
    }
    let dir = protocol::open_dir(&args.dir)?;
    let _lock = protocol::lock_asks(&dir, args.timeout)
        .map_err(|e| protocol::explain_stop(&dir, &args.dir, e))?;
    let mut client = Client::open(&dir, &args.dir, args.timeout, None)?;
    let joined = args
        .lines
        .iter()
        .map(|l| l.as_bytes())
        .collect::<Vec<_>>()
        .join(&b'\n');
    let reply = client.request(&joined, false, true)?;
    match reply.error.as_deref() {
        None => Ok(ExitCode::SUCCESS),
        Some(TIMED_OUT) => Err(Failure::new(
            TIMEOUT,
            format!("the lines were not delivered: {}", reply.message),
        )),
        Some(_) => Err(Failure::new(
            1,
            format!("the lines were not delivered: {}", reply.message),
        )),
    }
}
