//! `duet ask DIR LINE`: send one request to a served PROG and print its
//! reply. See [`super::served`] for why concurrent and killed clients never
//! get each other's replies.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use duet::fifo::Access;
use nix::poll::PollFlags;

use super::framing::{Framing, FramingArgs, trim_cr};
use super::served::{self, CTL, REPLY_PREFIX, Reply, Request};
use super::{Failure, parse_duration};

/// Send LINE to the program served in DIR and print its reply.
#[derive(Debug, Args)]
#[command(after_help = "Example: duet ask /tmp/calc '2+2'")]
pub struct AskArgs {
    /// The served directory.
    dir: PathBuf,
    /// The request line.
    line: String,
    #[command(flatten)]
    framing: FramingArgs,
    /// The limit for the reply (and, again, for the lock).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// How much longer than the reply's timeout a client waits for serve's
/// answer (serve always answers, with an error at the latest at the timeout).
const SERVE_SLACK: Duration = Duration::from_secs(2);

/// Runs `duet ask`.
pub fn run(args: AskArgs) -> Result<ExitCode, Failure> {
    let framing = args.framing.framing().map_err(|e| Failure::new(2, e))?;
    if args.line.contains('\n') {
        return Err(Failure::new(2, "LINE must be one line (no newline)"));
    }
    let dir = served::open_dir(&args.dir)?;
    let _lock = served::lock_asks(&dir, args.timeout)?;

    // The private reply FIFO; a leftover of the same name (a dead client
    // whose pid we now have) is replaced, and ids tell replies apart.
    let name = format!("{REPLY_PREFIX}{}", std::process::id());
    dir.remove_entry(&name).map_err(Failure::internal)?;
    let reply_fifo = dir.create_fifo(&name).map_err(Failure::internal)?;
    let mut reply_end = reply_fifo
        .open(Access::ReadWrite, true)
        .map_err(Failure::internal)?;

    let id = format!("{}-{}", std::process::id(), unique());
    let request = Request {
        id: id.clone(),
        line: args.line.clone(),
        framing: framing.clone(),
        timeout_ms: args.timeout.as_millis().min(u64::MAX as u128) as u64,
        reply: name,
    };
    let mut ctl = dir
        .existing_fifo(CTL)
        .and_then(|f| f.open(Access::Write, true))
        .map_err(|e| not_served(&args.dir, e))?;
    let mut line = serde_json::to_vec(&request).map_err(Failure::internal)?;
    line.push(b'\n');
    let deadline = Instant::now() + args.timeout + SERVE_SLACK;
    served::write_all_until(&mut ctl, &line, deadline)
        .map_err(|e| Failure::internal(format!("cannot send the request: {e}")))?;
    drop(ctl);

    let reply = read_reply(&mut reply_end, &id, deadline).map_err(|e| match e {
        None => Failure::new(
            super::TIMEOUT,
            format!(
                "no answer from the serve of {} within {}; is it stuck? see {}/log",
                args.dir.display(),
                super::duration::show(args.timeout + SERVE_SLACK),
                args.dir.display()
            ),
        ),
        Some(e) => Failure::internal(format!("cannot read the reply: {e}")),
    })?;
    print_reply(&reply.output, &framing)?;
    match reply.error.as_deref() {
        None => Ok(ExitCode::SUCCESS),
        Some("timeout") => Err(Failure::new(
            super::TIMEOUT,
            format!("{}; received {:?}", reply.message, reply.output),
        )),
        Some(_) => Err(Failure::new(1, reply.message)),
    }
}

/// A counter that makes ids unique within this process and across runs.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The error for a `ctl` FIFO nobody reads (or that is missing).
pub fn not_served(dir: &std::path::Path, e: duet::Error) -> Failure {
    Failure::new(
        1,
        format!(
            "nobody serves {} ({e}); start it with `duet serve {} -- PROG`",
            dir.display(),
            dir.display()
        ),
    )
}

/// Reads reply lines until the one for `id`. `Err(None)`: the deadline passed.
fn read_reply(
    end: &mut std::fs::File,
    id: &str,
    deadline: Instant,
) -> Result<Reply, Option<io::Error>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            match serde_json::from_slice::<Reply>(&line) {
                Ok(reply) if reply.id == id => return Ok(reply),
                Ok(reply) => log::info!("ask: ignoring a reply for {}", reply.id),
                Err(e) => log::warn!("ask: ignoring a malformed reply ({e})"),
            }
        }
        match end.read(&mut chunk) {
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !served::wait_for(end, PollFlags::POLLIN, deadline).map_err(Some)? {
                    return Err(None);
                }
            }
            Err(e) => return Err(Some(e)),
        }
    }
}

/// Prints a reply: line framings as lines ending in `\n` (a pty's `\r\n`
/// too), a quiet reply as it came.
fn print_reply(output: &str, framing: &Framing) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let result = if matches!(framing, Framing::QuietMs(_)) {
        out.write_all(output.as_bytes())
    } else {
        output
            .as_bytes()
            .split_inclusive(|&b| b == b'\n')
            .try_for_each(|line| {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                out.write_all(trim_cr(line))
                    .and_then(|()| out.write_all(b"\n"))
            })
    };
    result.and_then(|()| out.flush()).map_err(Failure::stdout)
}
