//! `duet chat`: each line of duet's stdin is a request, PROG's reply goes to
//! stdout.
//!
//! Replies are framed by `--lines N` (default 1), `--until REGEX`,
//! `--quiet D` or `--prompt REGEX` (see [`crate::framing`]). Line replies
//! are printed line by line as they arrive, with `\n` line ends (a pty's
//! `\r\n` becomes `\n`); a `--prompt` reply is printed when the prompt
//! arrives, without the prompt; a `--quiet` reply is copied as it comes.
//!
//! # Greetings
//!
//! What PROG writes before the first request (a banner, a first prompt) is
//! its greeting: it never goes to stdout (`-v` logs it) and never shifts the
//! replies. With `--prompt`, the greeting is everything up to the first
//! prompt, and duet sends nothing before it. Without `--prompt`, duet cannot
//! tell a greeting from a reply by its content, so it waits until PROG has
//! been quiet for `--settle D` (default 200ms) before the first request;
//! `--settle 0` sends at once. A greeting slower than the settle time would
//! be taken for the first reply: `--prompt` is the robust choice for any
//! program that shows one.
//!
//! # The end
//!
//! When duet's stdin ends, PROG's stdin is closed and the rest of its
//! output still goes to stdout (prompts left out under `--prompt`) until
//! PROG exits; duet then exits with PROG's status. If PROG does not exit
//! within `--timeout`, it is stopped and duet exits 124. If PROG closes its
//! output while a reply is awaited (a `quit` request), what it wrote is
//! printed and duet exits with PROG's status. A reply that does not
//! complete within `--timeout` is a timeout: duet says what it waited for
//! and what arrived, and exits 124.

use std::io::{self, BufRead, StdoutLock};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::args::{EnvArgs, OutputArgs, Program, parse_duration};
use crate::exit::{Failure, TIMEOUT, exit_code};
use crate::framing::{Collector, Framing, FramingArgs, Printer, buffering_hint};
use duet_script::duration;

/// Talk to PROG one request line at a time.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  printf '2+2\\n3*3\\n' | duet chat -- bc -q
  printf '1+1\\nx=5\\nprint(x)\\n' | duet chat --pty --prompt '^>>> ' -- python3 -q
  echo '-data-evaluate-expression 6*7' | duet chat --prompt '^\\(gdb\\) \\r?\\n' -- gdb -q --interpreter=mi2
  echo isready | duet chat --settle 500ms -- stockfish
  echo 'select 6*7;' | duet chat --pty --prompt '^sqlite> ' -- sqlite3
  echo '1/0' | duet chat --merge-stderr --until '^\\w*Error' -- python3 -qu
  echo 'factor(42)' | duet chat --pty --strip-ansi --prompt '^\\? ' -- gp -q
  echo '$LANG' | duet chat --env LANG=C.UTF-8 -- sh -c 'while read l; do eval echo $l; done'")]
pub struct ChatArgs {
    /// Run PROG on a pseudo-terminal (for programs that buffer on pipes).
    #[arg(long)]
    pty: bool,
    #[command(flatten)]
    framing: FramingArgs,
    /// Without --prompt: before the first request, wait until PROG has
    /// written nothing for D; what it wrote is its greeting, not a reply
    /// (0: send at once).
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = parse_duration, conflicts_with = "prompt")]
    settle: Duration,
    /// The limit for the greeting, for each reply, and for PROG's exit after
    /// the end of stdin (e.g. 5s).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    program: Program,
}

/// Runs `duet chat`.
pub fn run(args: ChatArgs) -> Result<ExitCode, Failure> {
    let framing = args.framing.framing().map_err(|e| Failure::new(2, e))?;
    let mut cmd = args.program.command();
    cmd.timeout(args.timeout).pty(args.pty);
    args.env.apply(&mut cmd, args.pty);
    args.output.apply(&mut cmd);
    let child = cmd.spawn()?;
    log::info!("chat: started {} (pid {})", args.program.name(), child.id());
    let mut chat = Chat {
        child,
        program: args.program.name(),
        pty: args.pty,
        unanswered: None,
        heard: false,
        framing,
        timeout: args.timeout,
        pending: Vec::new(),
        out: Printer::new(io::stdout().lock()),
    };
    match chat.run(args.settle) {
        Ok(code) => Ok(code),
        Err(failure) => {
            if failure.code == TIMEOUT && !chat.heard {
                // A PROG never heard from may be buffering on a pipe: what
                // it flushes when its input ends is still shown.
                chat.flush_at_end();
            }
            let _ = chat.child.terminate(Duration::from_secs(1));
            Err(failure)
        }
    }
}

/// The most of a settle greeting kept for the log (its end).
const GREETING_KEPT: usize = 64 << 10;

/// How long a timed-out `chat` waits, after closing PROG's stdin, for what
/// PROG writes as it ends.
const FLUSH_AT_END: Duration = Duration::from_secs(1);
/// At most about this much of it is shown.
const FLUSH_MAX: usize = 1 << 20;

struct Chat {
    child: duet::Child,
    /// PROG's name, for messages.
    program: String,
    /// PROG is on a pty (else a silence may be buffering).
    pty: bool,
    /// The request PROG ended without answering.
    unanswered: Option<String>,
    /// PROG has written something (else a timeout on pipes names output
    /// buffering).
    heard: bool,
    framing: Framing,
    timeout: Duration,
    /// Output read past the end of the last reply: the start of the next.
    pending: Vec<u8>,
    out: Printer<StdoutLock<'static>>,
}

/// How reading a reply (or the greeting) ended.
enum Ended {
    /// The framing completed.
    Complete,
    /// PROG closed its output.
    Eof,
}

impl Chat {
    fn run(&mut self, settle: Duration) -> Result<ExitCode, Failure> {
        if self.greet(settle)? {
            let stdin = io::stdin();
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
                let shown = String::from_utf8_lossy(&request[..end]).into_owned();
                if let Err(e) = self.child.send_bytes(&request) {
                    log::info!("chat: the program no longer reads its input: {e}");
                    self.unanswered = Some(shown);
                    break;
                }
                if let Ended::Eof = self.reply(&shown)? {
                    self.unanswered = Some(shown);
                    break;
                }
            }
        }
        self.finish()
    }

    /// Reads PROG's greeting (see the module docs) and logs it. False when
    /// PROG closed its output meanwhile.
    fn greet(&mut self, settle: Duration) -> Result<bool, Failure> {
        let deadline = Instant::now() + self.timeout;
        let mut greeting = Vec::new();
        let open = if let Framing::Prompt(_) = &self.framing {
            let mut first = Collector::new(&self.framing).map_err(|e| Failure::new(2, e))?;
            loop {
                let bytes = match self.read(deadline, None)? {
                    Some(bytes) if bytes.is_empty() => {
                        first.flush(&mut greeting);
                        return Err(Failure::new(
                            TIMEOUT,
                            format!(
                                "timed out after {} waiting for the program's first prompt ({}){}",
                                duration::show(self.timeout),
                                self.framing.describe(),
                                received(&greeting)
                            ),
                        ));
                    }
                    Some(bytes) => bytes,
                    None => {
                        first.flush(&mut greeting);
                        break false;
                    }
                };
                if first.held().len() + bytes.len() > duet::DEFAULT_MAX_BUFFER {
                    return Err(Failure::new(
                        1,
                        format!(
                            "the program wrote {} MiB without its first prompt ({}), the most \
                             duet holds; stopped",
                            duet::DEFAULT_MAX_BUFFER >> 20,
                            self.framing.describe()
                        ),
                    ));
                }
                if let Some(rest) = first.feed(&bytes, &mut greeting) {
                    self.pending = rest;
                    break true;
                }
            }
        } else if settle.is_zero() {
            true
        } else {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.read(deadline, Some(settle.min(left)))? {
                    Some(bytes) if bytes.is_empty() && left <= settle && !greeting.is_empty() => {
                        return Err(Failure::new(
                            TIMEOUT,
                            format!(
                                "the program was still writing its greeting after {} \
                                 (it never went quiet for {}); raise --timeout, or use --prompt",
                                duration::show(self.timeout),
                                duration::show(settle)
                            ),
                        ));
                    }
                    Some(bytes) if bytes.is_empty() => break true,
                    Some(bytes) => {
                        // Only its end is kept, for the log: a greeting
                        // that floods costs no memory.
                        greeting.extend_from_slice(&bytes);
                        let excess = greeting.len().saturating_sub(GREETING_KEPT);
                        greeting.drain(..excess);
                    }
                    None => break false,
                }
            }
        };
        if !greeting.is_empty() {
            log::info!(
                "chat: the program's greeting: {:?}",
                String::from_utf8_lossy(&greeting)
            );
        }
        if !open {
            if let Framing::Prompt(_) = &self.framing {
                log::warn!(
                    "the program closed its output before its first prompt ({}){}",
                    self.framing.describe(),
                    received(&greeting)
                );
            } else {
                log::info!("chat: the program closed its output before the first request");
            }
        }
        Ok(open)
    }

    /// Output from PROG: what is pending, else what arrives within `wait`
    /// (default: until `deadline`); empty when nothing did; `None` at
    /// end of output.
    fn read(
        &mut self,
        deadline: Instant,
        wait: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, Failure> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        let wait = wait.unwrap_or_else(|| deadline.saturating_duration_since(Instant::now()));
        match self.child.read_available(wait) {
            Ok(bytes) => {
                self.heard |= !bytes.is_empty();
                Ok(Some(bytes))
            }
            Err(duet::Error::Eof { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the reply to `request` and prints it as it arrives.
    fn reply(&mut self, request: &str) -> Result<Ended, Failure> {
        let deadline = Instant::now() + self.timeout;
        let mut collector = Collector::new(&self.framing).map_err(|e| Failure::new(2, e))?;
        let quiet = self.framing.quiet();
        let lines = self.framing.is_lines();
        let mut part = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = match self.read(deadline, quiet.map(|q| q.min(left)))? {
                Some(bytes) if bytes.is_empty() => {
                    if quiet.is_some_and(|q| q <= left) {
                        self.out.end(lines).map_err(Failure::stdout)?;
                        return Ok(Ended::Complete);
                    }
                    self.out.end(lines).map_err(Failure::stdout)?;
                    return Err(self.timed_out(request, &collector));
                }
                Some(bytes) => bytes,
                None => {
                    part.clear();
                    collector.flush(&mut part);
                    self.out.write(&part).map_err(Failure::stdout)?;
                    self.out.end(lines).map_err(Failure::stdout)?;
                    log::info!("chat: the program closed its output");
                    return Ok(Ended::Eof);
                }
            };
            if collector.held().len() + bytes.len() > duet::DEFAULT_MAX_BUFFER {
                // A reply held until its end (a prompt that never comes on
                // a flood) is bounded as the library's buffers are.
                return Err(Failure::new(
                    1,
                    format!(
                        "the reply to {request:?} passed {} MiB without {} (the most duet \
                         holds); stopped",
                        duet::DEFAULT_MAX_BUFFER >> 20,
                        self.framing.describe()
                    ),
                ));
            }
            part.clear();
            let done = collector.feed(&bytes, &mut part);
            self.out.write(&part).map_err(Failure::stdout)?;
            if let Some(rest) = done {
                self.pending = rest;
                self.out.end(lines).map_err(Failure::stdout)?;
                return Ok(Ended::Complete);
            }
        }
    }

    fn timed_out(&mut self, request: &str, collector: &Collector) -> Failure {
        let arrived = match (&self.framing, collector.lines()) {
            (Framing::Lines(_) | Framing::Until(_), 1) => " (1 line arrived)".to_string(),
            (Framing::Lines(_) | Framing::Until(_), n) if n > 0 => {
                format!(" ({n} lines arrived)")
            }
            _ => String::new(),
        };
        let what = if let Some(q) = self.framing.quiet() {
            format!(
                "the reply to {request:?} was still coming after {}; it never went quiet for {}",
                duration::show(self.timeout),
                duration::show(q)
            )
        } else {
            format!(
                "timed out after {} waiting for {} to {request:?}{arrived}; {}",
                duration::show(self.timeout),
                self.framing.describe(),
                if collector.held().is_empty() {
                    "nothing more arrived".to_string()
                } else {
                    format!("received {:?}", String::from_utf8_lossy(collector.held()))
                }
            )
        };
        let hint = if !self.heard && !self.pty && self.child.try_wait().ok().flatten().is_none() {
            buffering_hint(&self.program)
        } else {
            String::new()
        };
        Failure::new(TIMEOUT, format!("{what}{hint}"))
    }

    /// After a timeout: closes PROG's stdin and copies what it writes as it
    /// ends (within [`FLUSH_AT_END`], about [`FLUSH_MAX`] bytes) to stdout.
    fn flush_at_end(&mut self) {
        let _ = self.child.close_stdin();
        let deadline = Instant::now() + FLUSH_AT_END;
        let mut shown = 0;
        while let Ok(Some(bytes)) = self.read(deadline, None) {
            if bytes.is_empty() || shown > FLUSH_MAX || self.out.write(&bytes).is_err() {
                break;
            }
            shown += bytes.len();
        }
        let _ = self.out.end(self.framing.is_lines());
    }

    /// Closes PROG's stdin, copies the rest of its output to stdout until it
    /// closes it, and waits for PROG; all within `--timeout`.
    fn finish(&mut self) -> Result<ExitCode, Failure> {
        // A PROG that already exited makes this fail harmlessly.
        let _ = self.child.close_stdin();
        let deadline = Instant::now() + self.timeout;
        let lines = self.framing.is_lines();
        // Under --prompt the rest is cut at prompts too: they never print.
        let prompt = matches!(self.framing, Framing::Prompt(_));
        let mut collector = if prompt {
            Some(Collector::new(&self.framing).map_err(|e| Failure::new(2, e))?)
        } else {
            None
        };
        let mut part = Vec::new();
        let mut open = true;
        while open {
            match self.read(deadline, None)? {
                Some(bytes) if bytes.is_empty() => break,
                Some(mut bytes) => {
                    while let Some(c) = collector.as_mut() {
                        part.clear();
                        let done = c.feed(&bytes, &mut part);
                        self.out.write(&part).map_err(Failure::stdout)?;
                        match done {
                            Some(rest) => {
                                self.out.end(true).map_err(Failure::stdout)?;
                                bytes = rest;
                                *c = Collector::new(&self.framing)
                                    .map_err(|e| Failure::new(2, e))?;
                            }
                            None => break,
                        }
                    }
                    if collector.is_none() {
                        self.out.write(&bytes).map_err(Failure::stdout)?;
                    }
                }
                None => open = false,
            }
        }
        if let Some(c) = collector.as_mut() {
            part.clear();
            c.flush(&mut part);
            self.out.write(&part).map_err(Failure::stdout)?;
        }
        self.out.end(lines).map_err(Failure::stdout)?;
        let left = deadline.saturating_duration_since(Instant::now());
        match self.child.wait_timeout(left)? {
            Some(status) => {
                if open {
                    log::warn!(
                        "the program {} but its output is still open (held by a process it started)",
                        crate::exit::ended(status)
                    );
                }
                log::info!("chat: the program {}", crate::exit::ended(status));
                if let Some(request) = &self.unanswered {
                    eprintln!(
                        "duet: {} {} without answering {request:?}",
                        self.program,
                        crate::exit::ended(status)
                    );
                }
                Ok(exit_code(status))
            }
            None => {
                let status = self.child.terminate(Duration::from_secs(1))?;
                Err(Failure::new(
                    TIMEOUT,
                    format!(
                        "the program did not exit within {} after its input ended; stopped it ({status})",
                        duration::show(self.timeout)
                    ),
                ))
            }
        }
    }
}

/// `; it wrote "..."`, or `; nothing arrived`, for messages.
fn received(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "; nothing arrived".into()
    } else {
        format!("; received {:?}", String::from_utf8_lossy(bytes))
    }
}
