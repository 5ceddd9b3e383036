//! `duet send DIR LINE...`: the raw write half: lines into `DIR/in`, under
//! the same lock as `ask` so they never land in the middle of a request.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use duet::fifo::Access;

use crate::args::parse_duration;
use crate::exit::Failure;
use crate::serve::protocol::{self, IN};

/// Write lines to the program served in DIR (its output goes to DIR/out).
#[derive(Debug, Args)]
#[command(after_help = "Example: duet send /tmp/calc 'x=6' 'x*7' && duet recv /tmp/calc")]
pub struct SendArgs {
    /// The served directory.
    dir: PathBuf,
    /// The lines to send, each followed by a newline.
    #[arg(required = true)]
    lines: Vec<String>,
    /// The limit for taking the lock and writing.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Runs `duet send`.
pub fn run(args: SendArgs) -> Result<ExitCode, Failure> {
    let dir = protocol::open_dir(&args.dir)?;
    let _lock = protocol::lock_asks(&dir, args.timeout)?;
    let mut input = dir
        .existing_fifo(IN)
        .and_then(|f| f.open(Access::Write, true))
        .map_err(|e| protocol::not_served(&args.dir, e))?;
    let mut bytes = Vec::new();
    for line in &args.lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    protocol::write_all_until(&mut input, &bytes, Instant::now() + args.timeout).map_err(|e| {
        Failure::new(
            crate::exit::TIMEOUT,
            format!("cannot write to {}/{IN}: {e}", args.dir.display()),
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
