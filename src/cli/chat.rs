//! `duet chat`: each line of duet's stdin is a request, PROG's reply goes to
//! stdout.
//!
//! Replies are framed by `--lines N` (default 1), `--until REGEX` or
//! `--quiet D`. Line replies are printed line by line as they arrive, with
//! `\n` line ends (a pty's `\r\n` becomes `\n`); a quiet reply is copied as
//! bytes. Output PROG writes that no request asked for (a banner, say) is
//! read as part of the next reply: start such programs quietly (`bc -q`) or
//! frame with `--quiet`.
//!
//! When stdin ends, PROG's stdin is closed and duet waits up to `--timeout`
//! for it to exit, then exits with its status. If PROG closes its output
//! while a reply is awaited (a `quit` request), what it wrote is printed and
//! duet exits with PROG's status. A reply that does not complete in time is
//! a timeout: duet says what it waited for and what arrived, and exits 124.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use regex::Regex;

use super::framing::{Framing, FramingArgs};
use super::{Failure, Program, exit_code, parse_duration};

/// Talk to PROG one request line at a time.
#[derive(Debug, Args)]
#[command(after_help = "Example: printf '2+2\\n3*3\\n' | duet chat -- bc -q")]
pub struct ChatArgs {
    /// Run PROG on a pseudo-terminal (for programs that buffer on pipes).
    #[arg(long)]
    pty: bool,
    #[command(flatten)]
    framing: FramingArgs,
    /// The limit for each reply (e.g. 5s).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    program: Program,
}

/// Runs `duet chat`.
pub fn run(args: ChatArgs) -> Result<ExitCode, Failure> {
    let framing = args.framing.framing().map_err(|e| Failure::new(2, e))?;
    let until = match &framing {
        Framing::Until(re) => Some(Regex::new(re).map_err(|e| Failure::new(2, e))?),
        _ => None,
    };
    let mut cmd = args.program.command();
    cmd.timeout(args.timeout).pty(args.pty);
    let mut child = cmd.spawn()?;
    log::info!("chat: started {} (pid {})", args.program.name(), child.id());

    let stdin = io::stdin();
    let mut out = io::stdout().lock();
    // Requests are bytes: a line that is not UTF-8 goes to PROG as it is.
    let mut request = Vec::new();
    loop {
        request.clear();
        let n = stdin
            .lock()
            .read_until(b'\n', &mut request)
            .map_err(|e| Failure::internal(format!("cannot read stdin: {e}")))?;
        if n == 0 {
            break;
        }
        let end = request.len()
            - request
                .iter()
                .rev()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
        request.truncate(end);
        request.push(b'\n');
        if let Err(e) = child.send_bytes(&request) {
            log::info!(
                "chat: {} no longer reads its input: {e}",
                args.program.name()
            );
            break;
        }
        let shown = String::from_utf8_lossy(&request[..end]);
        let reply = Reply {
            framing: &framing,
            until: until.as_ref(),
            timeout: args.timeout,
            request: &shown,
        };
        match reply.read(&mut child, &mut out) {
            Ok(()) => {}
            Err(ReplyError::Eof) => break,
            Err(ReplyError::Failed(f)) => {
                let _ = child.terminate(Duration::from_secs(1));
                return Err(f);
            }
        }
    }
    finish(child, args.timeout)
}

/// Closes PROG's stdin and waits for it; a PROG that does not exit within
/// `timeout` is terminated and duet exits 124.
fn finish(mut child: duet::Child, timeout: Duration) -> Result<ExitCode, Failure> {
    // A PROG that already exited makes this fail harmlessly.
    let _ = child.close_stdin();
    match child.wait_timeout(timeout)? {
        Some(status) => Ok(exit_code(status)),
        None => {
            let status = child.terminate(Duration::from_secs(1))?;
            Err(Failure::new(
                super::TIMEOUT,
                format!(
                    "the program did not exit within {} after its input ended; stopped it ({status})",
                    super::duration::show(timeout)
                ),
            ))
        }
    }
}

enum ReplyError {
    /// PROG closed its output; what it wrote has been printed.
    Eof,
    Failed(Failure),
}

impl From<Failure> for ReplyError {
    fn from(f: Failure) -> Self {
        ReplyError::Failed(f)
    }
}

struct Reply<'a> {
    framing: &'a Framing,
    until: Option<&'a Regex>,
    timeout: Duration,
    request: &'a str,
}

impl Reply<'_> {
    fn read(&self, child: &mut duet::Child, out: &mut impl Write) -> Result<(), ReplyError> {
        let deadline = Instant::now() + self.timeout;
        match self.framing {
            Framing::QuietMs(ms) => {
                self.read_quiet(child, out, deadline, Duration::from_millis(*ms))
            }
            _ => self.read_lines(child, out, deadline),
        }
    }

    fn read_lines(
        &self,
        child: &mut duet::Child,
        out: &mut impl Write,
        deadline: Instant,
    ) -> Result<(), ReplyError> {
        let mut count = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // A line that is not UTF-8 is copied as it came (and matched
            // against --until as lossily decoded text).
            let bytes = match child.read_line_timeout(left) {
                Ok(line) => line.into_bytes(),
                Err(duet::Error::InvalidUtf8 { bytes }) => bytes,
                Err(e) => return Err(self.failed(e, count, out)),
            };
            count += 1;
            out.write_all(&bytes)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .map_err(Failure::stdout)?;
            let done = match self.framing {
                Framing::Lines(n) => count >= *n,
                _ => self
                    .until
                    .is_some_and(|re| re.is_match(&String::from_utf8_lossy(&bytes))),
            };
            if done {
                return Ok(());
            }
        }
    }

    fn read_quiet(
        &self,
        child: &mut duet::Child,
        out: &mut impl Write,
        deadline: Instant,
        quiet: Duration,
    ) -> Result<(), ReplyError> {
        let mut got_any = false;
        loop {
            let wait = if got_any {
                quiet
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let bytes = match child.read_available(wait) {
                Ok(bytes) => bytes,
                Err(e) => return Err(self.failed(e, usize::from(got_any), out)),
            };
            if bytes.is_empty() {
                if got_any {
                    return Ok(());
                }
                return Err(Failure::new(
                    super::TIMEOUT,
                    format!(
                        "timed out after {} waiting for {} to {:?}; nothing arrived",
                        super::duration::show(self.timeout),
                        self.framing.describe(),
                        self.request
                    ),
                )
                .into());
            }
            got_any = true;
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(Failure::stdout)?;
            if Instant::now() >= deadline {
                return Err(Failure::new(
                    super::TIMEOUT,
                    format!(
                        "the reply to {:?} was still coming after {}; it never went quiet",
                        self.request,
                        super::duration::show(self.timeout)
                    ),
                )
                .into());
            }
        }
    }

    /// Turns a read error into the right outcome; prints what arrived of an
    /// unfinished last line when PROG closed its output.
    fn failed(&self, err: duet::Error, lines: usize, out: &mut impl Write) -> ReplyError {
        match err {
            duet::Error::Eof { ref partial, .. } => {
                if !partial.is_empty() {
                    if let Err(e) = writeln!(out, "{partial}").and_then(|()| out.flush()) {
                        return Failure::stdout(e).into();
                    }
                }
                log::info!("chat: the program closed its output: {err}");
                ReplyError::Eof
            }
            duet::Error::Timeout { partial, .. } => {
                let what = if partial.is_empty() {
                    "nothing more arrived".to_string()
                } else {
                    format!("received {partial:?}")
                };
                Failure::new(
                    super::TIMEOUT,
                    format!(
                        "timed out after {} waiting for {} to {:?} ({lines} line(s) arrived); {what}",
                        super::duration::show(self.timeout),
                        self.framing.describe(),
                        self.request,
                    ),
                )
                .into()
            }
            other => Failure::from_error(other).into(),
        }
    }
}
