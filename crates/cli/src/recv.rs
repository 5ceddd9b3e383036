//! `duet recv DIR`: the raw read half: one line from `DIR/out`.
//!
//! It reads byte by byte so that it never takes more than its line from the
//! FIFO: the next line stays there for the next reader, as with the shell's
//! `read`. Output no `ask` claimed is what `out` carries (see
//! [`crate::serve::protocol`]).

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use duet::fifo::Access;
use duet_script::duration;
use nix::poll::PollFlags;

use crate::args::parse_duration;
use crate::exit::Failure;
use crate::serve::protocol::{self, OUT};

/// Read one line of the served program's output from DIR/out.
#[derive(Debug, Args)]
#[command(after_help = "Example: duet send /tmp/calc '2+2' && duet recv /tmp/calc --timeout 2s")]
pub struct RecvArgs {
    /// The served directory.
    dir: PathBuf,
    /// How long to wait for the line.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Runs `duet recv`.
pub fn run(args: RecvArgs) -> Result<ExitCode, Failure> {
    let dir = protocol::open_dir(&args.dir)?;
    if !protocol::is_alive(&dir)? {
        return Err(Failure::new(
            1,
            format!(
                "nobody serves {}; start it with `duet serve`",
                args.dir.display()
            ),
        ));
    }
    let mut out = dir
        .existing_fifo(OUT)
        .and_then(|f| f.open(Access::Read, true))
        .map_err(Failure::internal)?;
    let deadline = Instant::now() + args.timeout;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match out.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            Ok(_) => {
                // Every writer is gone: only when serve itself ended.
                if line.is_empty() {
                    return Err(Failure::new(1, "the service ended"));
                }
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let ready = protocol::wait_for(&out, PollFlags::POLLIN, deadline)
                    .map_err(|e| Failure::internal(format!("poll: {e}")))?;
                if !ready {
                    let got = if line.is_empty() {
                        "nothing arrived".to_string()
                    } else {
                        format!("received {:?}", String::from_utf8_lossy(&line))
                    };
                    return Err(Failure::new(
                        crate::exit::TIMEOUT,
                        format!(
                            "timed out after {} waiting for a line in {}/{OUT}; {got}",
                            duration::show(args.timeout),
                            args.dir.display()
                        ),
                    ));
                }
            }
            Err(e) => return Err(Failure::internal(format!("cannot read {OUT}: {e}"))),
        }
    }
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(crate::framing::trim_cr(&line))
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
        .map_err(Failure::stdout)?;
    Ok(ExitCode::SUCCESS)
}
