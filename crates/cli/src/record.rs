//! `duet record FILE -- PROG ARGS`: a session with PROG, written as a
//! script that `duet script FILE` replays.
//!
//! duet's stdin (a terminal or a pipe) goes to PROG line by line; PROG's
//! stdout and stderr are shown on duet's stdout and stderr as they arrive.
//! From a pipe, each line is sent once PROG has been quiet for `--settle`
//! (100ms), so that the script waits for each reply (or prompt) as a
//! person at a terminal does.
//! The script says what happened, in order:
//!
//! - the header: `spawn` with PROG's words, `pty on` with `--pty`, the
//!   `timeout`;
//! - `sendline TEXT` for each input line (`send TEXT` for a last line
//!   without newline);
//! - `expect-line ^...$` for each complete line of output, the line as a
//!   literal, and `expect REGEX` for a partial line (a prompt) that is
//!   waiting when the next input line is sent; `stream stderr` and
//!   `stream stdout` before them when the stream changes;
//! - at the end of duet's stdin `close-stdin`; when PROG's output ends,
//!   `expect-eof` and `exit-status` with how PROG ended.
//!
//! On pipes stderr is `separate` (prompts on stderr, as python3's, are
//! recorded on their stream); on a pty it is the terminal, as in the
//! replay. A program that is still running `--timeout` after its input
//! ended is stopped; its script then ends without `exit-status`.
//!
//! One `poll` waits on duet's stdin and PROG's stdout and stderr; the
//! library reads both of PROG's streams (a read of one also takes what
//! waits on the other), and an observer says when anything arrived, so
//! that output already taken from a pipe is never left waiting for the
//! next `poll`.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};

use crate::args::Program;
use crate::exit::Failure;
use duet_script::duration;
use duet_script::{PTY_TERM, syntax};

/// Record a session with PROG as a script that replays green.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: duet record calc.duet -- bc -q   (type lines, then Ctrl-D)\n         \
    duet script calc.duet"
)]
pub struct RecordArgs {
    /// The script to write (replaced if it exists).
    file: PathBuf,
    /// Run PROG on a pseudo-terminal (`pty on` in the script).
    #[arg(long)]
    pty: bool,
    /// How long PROG may take to end once its input has ended; also the
    /// script's `timeout`.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = crate::args::parse_duration)]
    timeout: Duration,
    /// With stdin a pipe: send each line once PROG has been quiet for D,
    /// as a person types after the reply.
    #[arg(long, value_name = "D", default_value = "100ms", value_parser = crate::args::parse_duration)]
    settle: Duration,
    #[command(flatten)]
    program: Program,
}

/// Output of one stream not yet written as steps.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    eof: bool,
}

/// The script being written.
struct Recorder {
    lines: Vec<String>,
    /// The stream the expectations read, as the script stands.
    stream: syntax::Stream,
}

impl Recorder {
    fn step(&mut self, line: String) {
        self.lines.push(line);
    }

    fn on(&mut self, stream: syntax::Stream) {
        if self.stream != stream {
            self.stream = stream;
            self.lines.push(format!("stream {}", stream.name()));
        }
    }

    /// Complete lines of `pending` as `expect-line`; with `partial`, the
    /// rest too, as `expect`.
    fn output(&mut self, stream: syntax::Stream, pending: &mut Pending, partial: bool) {
        while let Some(i) = pending.bytes.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = pending.bytes.drain(..=i).collect();
            line.pop();
            while line.last() == Some(&b'\r') {
                line.pop();
            }
            self.on(stream);
            self.step(format!("expect-line ^{}$", syntax::regex_literal(&line)));
        }
        if partial && !pending.bytes.is_empty() {
            let rest = std::mem::take(&mut pending.bytes);
            self.on(stream);
            self.step(format!("expect {}", syntax::regex_literal(&rest)));
        }
    }
}

/// Runs `duet record`.
pub fn run(args: RecordArgs) -> Result<ExitCode, Failure> {
    let mut cmd = args.program.command();
    cmd.timeout(args.timeout).pty(args.pty);
    if args.pty {
        cmd.env("TERM", PTY_TERM);
    } else {
        cmd.stderr(duet::Stdio::piped());
    }
    let mut child = cmd.spawn()?;
    // Set whenever bytes arrive from PROG, whichever read took them.
    let arrived = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&arrived);
    child.set_observer(move |chunk| {
        if !matches!(chunk, duet::Observed::Sent(_)) {
            flag.store(true, Ordering::Relaxed);
        }
    });
    let words: Vec<String> = args
        .program
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut rec = Recorder {
        lines: vec![
            format!(
                "# Recorded with `duet record`; `duet script {}` replays it.",
                args.file.display()
            ),
            format!("spawn {}", syntax::quote_words(&words)),
        ],
        stream: syntax::Stream::Stdout,
    };
    if args.pty {
        rec.step("pty on".into());
    } else {
        rec.step("stderr separate".into());
    }
    rec.step(format!("timeout {}", duration::show(args.timeout)));

    let mut out = Pending::default();
    let mut err = Pending {
        eof: args.pty,
        ..Pending::default()
    };
    let stdin = io::stdin();
    // A person types after the reply; lines from a pipe are paced alike.
    let paced = !nix::unistd::isatty(&stdin).unwrap_or(false);
    let mut input = Vec::new();
    let mut stdin_open = true;
    let mut input_ended = false;
    let mut buf = vec![0u8; 65536];
    let mut last_activity = Instant::now();
    let mut ended_at: Option<Instant> = None;
    while !(out.eof && err.eof) {
        // What PROG wrote: shown, and kept until it makes steps.
        arrived.store(false, Ordering::Relaxed);
        let got_out = take(&mut child, syntax::Stream::Stdout, &mut out)?;
        let got_err = take(&mut child, syntax::Stream::Stderr, &mut err)?;
        if got_out || got_err {
            last_activity = Instant::now();
            rec.output(syntax::Stream::Stdout, &mut out, false);
            rec.output(syntax::Stream::Stderr, &mut err, false);
            continue;
        }
        if arrived.load(Ordering::Relaxed) {
            // A read of one stream took bytes of the other: take them now,
            // their pipe no longer shows them.
            continue;
        }
        if let Some(at) = ended_at
            && at.elapsed() >= args.timeout
        {
            break;
        }
        let settle_at = last_activity + args.settle;
        let settled = !paced || Instant::now() >= settle_at;
        if settled && ended_at.is_none() {
            // The next line of input: what was waiting becomes steps first.
            if let Some(i) = input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = input.drain(..=i).collect();
                rec.output(syntax::Stream::Stdout, &mut out, true);
                rec.output(syntax::Stream::Stderr, &mut err, true);
                let text = syntax::escape(&line[..line.len() - 1]);
                rec.step(if text.is_empty() {
                    "sendline".into()
                } else {
                    format!("sendline {text}")
                });
                if let Err(e) = child.send_bytes(&line) {
                    log::warn!("record: cannot send to PROG: {e}");
                }
                last_activity = Instant::now();
                continue;
            }
            if input_ended {
                rec.output(syntax::Stream::Stdout, &mut out, true);
                rec.output(syntax::Stream::Stderr, &mut err, true);
                if !input.is_empty() {
                    rec.step(format!("send {}", syntax::escape(&input)));
                    let _ = child.send_bytes(&input);
                    input.clear();
                }
                rec.step("close-stdin".into());
                let _ = child.close_stdin();
                ended_at = Some(Instant::now());
                continue;
            }
        }
        let pending_line = input.contains(&b'\n') || input_ended;
        let deadline = match ended_at {
            Some(at) => Some(at + args.timeout),
            None if pending_line => Some(settle_at),
            None => None,
        };
        let mut fds = Vec::with_capacity(3);
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if !out.eof
            && let Some(fd) = child.stdout_fd()
        {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        if !err.eof
            && let Some(fd) = child.stderr_fd()
        {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, duet::supervise::poll_timeout(deadline)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Failure::internal(format!("cannot wait: {e}"))),
        }
        let stdin_ready = stdin_open
            && fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
        drop(fds);
        if stdin_ready {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) => {
                    stdin_open = false;
                    input_ended = true;
                }
                Ok(n) => input.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(Failure::internal(format!("cannot read stdin: {e}"))),
            }
        }
    }
    rec.output(syntax::Stream::Stdout, &mut out, true);
    rec.output(syntax::Stream::Stderr, &mut err, true);
    let left = ended_at.map_or(args.timeout, |at| args.timeout.saturating_sub(at.elapsed()));
    if out.eof {
        rec.on(syntax::Stream::Stdout);
        rec.step("expect-eof".into());
    }
    match child.wait_timeout(left) {
        Ok(Some(status)) => rec.step(match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit-status {code}"),
            (None, Some(sig)) => match syntax::Sig::from_number(sig) {
                Some(s) => format!("exit-status {}", s.name),
                None => "exit-status any".into(),
            },
            _ => "exit-status any".into(),
        }),
        _ => {
            rec.step(format!(
                "# the program was still running {} after its input ended; duet stopped it",
                duration::show(args.timeout)
            ));
            let _ = child.terminate(Duration::from_secs(1));
        }
    }
    let mut text = rec.lines.join("\n");
    text.push('\n');
    std::fs::write(&args.file, text)
        .map_err(|e| Failure::internal(format!("cannot write {}: {e}", args.file.display())))?;
    eprintln!("duet: recorded {}", args.file.display());
    Ok(ExitCode::SUCCESS)
}

/// Takes what has arrived on `stream` (shown on duet's stream of the same
/// name) into `pending`; true when anything did, or the stream ended.
fn take(
    child: &mut duet::Child,
    stream: syntax::Stream,
    pending: &mut Pending,
) -> Result<bool, Failure> {
    if pending.eof {
        return Ok(false);
    }
    let got = match stream {
        syntax::Stream::Stdout => child.read_available(Duration::ZERO),
        syntax::Stream::Stderr => child.read_stderr_available(Duration::ZERO),
    };
    match got {
        Ok(bytes) if bytes.is_empty() => Ok(false),
        Ok(bytes) => {
            match stream {
                syntax::Stream::Stdout => show(&mut io::stdout(), &bytes),
                syntax::Stream::Stderr => show(&mut io::stderr(), &bytes),
            }
            pending.bytes.extend_from_slice(&bytes);
            Ok(true)
        }
        Err(e) if e.is_eof() => {
            pending.eof = true;
            Ok(true)
        }
        Err(e) => Err(Failure::internal(format!(
            "cannot read PROG's {}: {e}",
            stream.name()
        ))),
    }
}

/// Shows PROG's output on duet's own stream; a closed one is ignored.
fn show(stream: &mut impl Write, bytes: &[u8]) {
    let _ = stream.write_all(bytes).and_then(|()| stream.flush());
}
