//! Runs a parsed script against its program.
//!
//! The runner keeps one buffer per output stream: every expectation on a
//! stream reads the same buffer, so text after a prompt that `expect`
//! matched starts the next line for `expect-line`. Output is taken from the
//! library as it arrives (stdout through [`duet::Child::read_available`]; a
//! separate stderr through a pipe of the runner's own, drained by a thread
//! so that the program never blocks on it), filtered by `strip-ansi`,
//! checked against the `fail-on` watches, recorded in the cast, then
//! matched. Matching a regex: the `regex` crate in multi-line mode, as
//! [`duet::Pattern::regex`] does.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use regex::bytes::Regex;

use super::ansi;
use super::cast::{Cast, Screen, Source};
use super::duration;
use super::feed::{self, ErrFeed};
use super::syntax::{
    self, Action, EnvChange, Exit, Group, Piece, Re, Script, Stderr, Step, Stream, Text,
};

/// How a script is run, besides the script itself.
#[derive(Debug, Clone)]
pub struct Config {
    /// The script's name in messages (`FILE` of `FILE:LINE:`).
    pub file: String,
    /// `-- PROG ARGS` from the command line, overriding `spawn`.
    pub program: Vec<OsString>,
    /// `--ssh HOST`: the program runs there.
    pub remote: super::super::Remote,
    /// The timeout until a `timeout` step changes it.
    pub timeout: Duration,
    /// `--pty`: as `pty on`.
    pub pty: bool,
    /// Write a transcript here.
    pub transcript: Option<PathBuf>,
    /// Write an asciicast recording here.
    pub cast: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// From the start of the program to its end.
    pub elapsed: Duration,
    /// `None`: every step passed.
    pub failure: Option<Failed>,
}

/// A failed script: where, what was expected, what happened, what came.
#[derive(Debug, Clone)]
pub struct Failed {
    /// The line of the step (1-based).
    pub line: usize,
    /// The step as written; empty when the failure is not one step's.
    pub step: String,
    /// What happened.
    pub what: String,
    /// What the step expected; empty when it expected nothing.
    pub expected: String,
    /// The last lines of output on the stream the step read, escaped.
    pub output: Vec<String>,
    /// That stream's name.
    pub stream: &'static str,
    /// The last lines of a separate stderr when the step read stdout.
    pub stderr: Vec<String>,
    /// Files to look at (transcript, recording).
    pub notes: Vec<String>,
    /// The exit code `duet script` gives it.
    pub code: u8,
}

/// Exit code of a failed script.
pub const FAILED: u8 = 1;

impl Failed {
    /// A failure of the script as a whole or of a line, without output.
    pub fn at(line: usize, what: impl Into<String>) -> Failed {
        Failed {
            line,
            step: String::new(),
            what: what.into(),
            expected: String::new(),
            output: Vec::new(),
            stream: "stdout",
            stderr: Vec::new(),
            notes: Vec::new(),
            code: FAILED,
        }
    }

    /// `FILE:LINE: ...`, one line.
    pub fn headline(&self, file: &str) -> String {
        if self.line == 0 {
            format!("{file}: {}", self.what)
        } else if self.step.is_empty() {
            format!("{file}:{}: {}", self.line, self.what)
        } else {
            format!(
                "{file}:{}: `{}` failed: {}",
                self.line, self.step, self.what
            )
        }
    }

    /// The headline, then what was expected, the last output and the notes.
    pub fn report(&self, file: &str) -> String {
        let mut msg = self.headline(file);
        if !self.expected.is_empty() {
            msg.push_str(&format!("\n  expected: {}", self.expected));
        }
        if !self.step.is_empty() {
            push_lines(
                &mut msg,
                &format!("last output ({})", self.stream),
                &self.output,
            );
            if !self.stderr.is_empty() {
                push_lines(&mut msg, "last stderr", &self.stderr);
            }
        }
        for note in &self.notes {
            msg.push_str(&format!("\n  {note}"));
        }
        msg
    }
}

fn push_lines(msg: &mut String, title: &str, lines: &[String]) {
    if lines.is_empty() {
        msg.push_str(&format!("\n  {title}: (nothing)"));
    } else {
        msg.push_str(&format!("\n  {title}:"));
        for line in lines {
            msg.push_str(&format!("\n    | {line}"));
        }
    }
}

/// Why a step failed: what happened (the rest of the report is the runner's).
#[derive(Debug)]
struct Problem(String);

type StepResult = Result<(), Problem>;

/// How many lines of output a failure report shows.
const REPORT_LINES: usize = 5;
/// How much of a stream's recent output is kept for reports.
const RECENT: usize = 8192;
/// How much already-scanned output a watch keeps, so that a match cut
/// between two reads is still found.
const WATCH_WINDOW: usize = 4096;
/// After the last step: how long the program may take to end its output
/// and exit once its input has ended, before it is terminated (at most the
/// current timeout).
const FINISH_GRACE: Duration = Duration::from_secs(2);
/// How long a terminated program has between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

/// The terminal type a program on a pty gets unless the script sets `TERM`:
/// fixed, so that a script behaves alike on every machine, and plain, so
/// that programs send few escape sequences.
pub const PTY_TERM: &str = "dumb";

/// Runs `script`. Never panics on the program's behaviour; every failure is
/// in the outcome.
pub fn run(script: &Script, config: &Config) -> Outcome {
    let start = Instant::now();
    let failure = match Runner::start(script, config, start) {
        Ok(mut runner) => {
            let failure = runner.steps(&script.steps).err().map(|f| *f);
            runner.finish(failure, config)
        }
        Err(failed) => Some(*failed),
    };
    Outcome {
        elapsed: start.elapsed(),
        failure,
    }
}

/// One output stream as the script sees it.
#[derive(Debug, Default)]
struct Buf {
    /// Filtered output; `data[pos..]` is unread.
    data: Vec<u8>,
    pos: usize,
    eof: bool,
    filter: Option<ansi::Filter>,
    /// Raw bytes that arrived, in all.
    arrived: u64,
    /// The last bytes that arrived (filtered), for reports.
    recent: Vec<u8>,
}

impl Buf {
    fn unread(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// Appends raw bytes; returns the filtered length added.
    fn push(&mut self, raw: &[u8]) -> usize {
        self.arrived += raw.len() as u64;
        let before = self.data.len();
        match &mut self.filter {
            Some(f) => f.feed(raw, &mut self.data),
            None => self.data.extend_from_slice(raw),
        }
        let added = self.data.len() - before;
        self.note_recent(before);
        added
    }

    fn end(&mut self) -> usize {
        self.eof = true;
        let before = self.data.len();
        if let Some(f) = &mut self.filter {
            f.finish(&mut self.data);
        }
        self.note_recent(before);
        self.data.len() - before
    }

    fn note_recent(&mut self, from: usize) {
        self.recent.extend_from_slice(&self.data[from..]);
        if self.recent.len() > RECENT {
            self.recent.drain(..self.recent.len() - RECENT);
        }
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        } else if self.pos > 65536 && self.pos > self.data.len() / 2 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The next complete line without its line end (every trailing `\r`
    /// stripped); at end-of-file also a last line without `\n`.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        let unread = self.unread();
        let (line, used) = match unread.iter().position(|&b| b == b'\n') {
            Some(i) => (&unread[..i], i + 1),
            None if self.eof && !unread.is_empty() => (unread, unread.len()),
            None => return None,
        };
        let mut end = line.len();
        while end > 0 && line[end - 1] == b'\r' {
            end -= 1;
        }
        let line = line[..end].to_vec();
        self.consume(used);
        Some(line)
    }

    fn last_lines(&self) -> Vec<String> {
        last_lines(&self.recent, REPORT_LINES)
    }
}

/// The last `n` lines of `bytes`, escaped for display.
fn last_lines(bytes: &[u8], n: usize) -> Vec<String> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    let lines: Vec<&[u8]> = trimmed.split(|&b| b == b'\n').collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| show(l.strip_suffix(b"\r").unwrap_or(l)))
        .collect()
}

/// Bytes as readable text: escapes for what is not printable.
fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Bytes quoted for a message.
fn quoted(bytes: &[u8]) -> String {
    format!("\"{}\"", show(bytes).replace('"', "\\\""))
}

/// A `fail-on` watch.
#[derive(Debug)]
struct Watch {
    line: usize,
    source: String,
    regex: Regex,
    /// Per stream (stdout, stderr): the output scanned so far that a match
    /// starting there could still use.
    windows: [Vec<u8>; 2],
}

/// The groups captured by the last regex step.
#[derive(Debug, Default)]
struct Captured {
    groups: Vec<Option<Vec<u8>>>,
    names: Vec<(String, usize)>,
}

impl Captured {
    fn from(regex: &Regex, caps: &regex::bytes::Captures<'_>) -> Captured {
        Captured {
            groups: caps
                .iter()
                .map(|g| g.map(|m| m.as_bytes().to_vec()))
                .collect(),
            names: regex
                .capture_names()
                .enumerate()
                .filter_map(|(i, n)| Some((n?.to_string(), i)))
                .collect(),
        }
    }

    fn get(&self, group: &Group) -> Result<&[u8], Problem> {
        let index = match group {
            Group::Index(i) => Some(*i),
            Group::Name(n) => self.names.iter().find(|(m, _)| m == n).map(|&(_, i)| i),
        };
        match index.and_then(|i| self.groups.get(i)) {
            Some(Some(bytes)) => Ok(bytes),
            _ => Err(Problem(format!(
                "`{group}` took no part in the last match, so there is nothing to insert"
            ))),
        }
    }
}

/// A transcript file shared by the library (stdout, input, events) and the
/// runner (a separate stderr, which the library does not see). Both write
/// from the runner's thread, one whole line at a time.
#[derive(Clone)]
struct SharedFile(Arc<Mutex<File>>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

struct Transcript {
    file: SharedFile,
    start: Instant,
    path: PathBuf,
}

struct Runner {
    child: duet::Child,
    out: Buf,
    err: Option<Buf>,
    feed: Option<ErrFeed>,
    stream: Stream,
    timeout: Duration,
    newline: Vec<u8>,
    captured: Option<Captured>,
    watches: Vec<Watch>,
    cast: Option<Cast>,
    transcript: Option<Transcript>,
    /// The failure a watch found while output was collected.
    tripped: Option<String>,
    /// `close-stdin` has run: the end of input is not sent again.
    eof_sent: bool,
}

impl Runner {
    fn start(script: &Script, config: &Config, start: Instant) -> Result<Runner, Box<Failed>> {
        let header = &script.header;
        let first_line = script.steps.first().map_or(1, |s| s.line);
        let (spawn_line, argv): (usize, Vec<OsString>) = if !config.program.is_empty() {
            (first_line, config.program.clone())
        } else if let Some((line, words)) = &header.spawn {
            (*line, words.iter().map(OsString::from).collect())
        } else {
            return Err(Box::new(Failed::at(
                first_line,
                "no program: name it with `spawn PROG ARGS` in the script's header, or after `--`",
            )));
        };
        let pty = header.pty || config.pty;
        // The records first: when they cannot be written, nothing runs.
        let words: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let command = syntax::quote_words(&words);
        let mut transcript = match &config.transcript {
            Some(path) => Some(open_transcript(path, &command).map_err(|e| Failed {
                code: super::super::INTERNAL,
                ..Failed::at(
                    spawn_line,
                    format!("cannot write the transcript {}: {e}", path.display()),
                )
            })?),
            None => None,
        };
        let cast = match &config.cast {
            Some(path) => {
                let (rows, cols) = if pty {
                    header.pty_size.unwrap_or((24, 80))
                } else {
                    (24, 80)
                };
                let term = term_of(header, pty);
                let screen = Screen {
                    rows,
                    cols,
                    command: &command,
                    title: &config.file,
                    term: term.as_deref(),
                    pipes: !pty,
                };
                Some(Cast::create(path, start, &screen).map_err(|e| Failed {
                    code: super::super::INTERNAL,
                    ..Failed::at(
                        spawn_line,
                        format!("cannot write the recording {}: {e}", path.display()),
                    )
                })?)
            }
            None => None,
        };
        let mut cmd = duet::Command::new(&argv[0]);
        cmd.args(&argv[1..]).timeout(config.timeout).pty(pty);
        config.remote.apply(&mut cmd);
        if pty {
            cmd.pty_echo(header.pty_echo);
            if let Some((rows, cols)) = header.pty_size {
                cmd.pty_size(rows, cols);
            }
            cmd.env("TERM", PTY_TERM);
        }
        for change in &header.env {
            match change {
                EnvChange::Set(name, value) => cmd.env(name, value),
                EnvChange::Unset(name) => cmd.env_remove(name),
            };
        }
        if let Some(dir) = &header.cwd {
            cmd.current_dir(dir);
        }
        let stderr = header
            .stderr
            .unwrap_or(if pty { Stderr::Merge } else { Stderr::Separate });
        let mut err_pipe = None;
        match stderr {
            Stderr::Separate => {
                let (r, w) = feed::pipe().map_err(|e| {
                    Failed::at(spawn_line, format!("cannot make a pipe for stderr: {e}"))
                })?;
                cmd.stderr(duet::Stdio::from(w));
                err_pipe = Some(r);
            }
            Stderr::Merge if !pty => {
                cmd.merge_stderr(true);
            }
            // On a pty, stderr is the terminal unless said otherwise.
            Stderr::Merge => {}
            Stderr::Null => {
                cmd.stderr(duet::Stdio::null());
            }
        }
        let spawned = cmd.spawn();
        // The Command holds the write end of the stderr pipe: without this
        // drop the stream would never end.
        drop(cmd);
        let mut child = spawned.map_err(|e| {
            let code = match &e {
                duet::Error::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                    super::super::NOT_FOUND
                }
                _ => super::super::NOT_EXECUTABLE,
            };
            Failed {
                code,
                ..Failed::at(spawn_line, e.to_string())
            }
        })?;
        if let Some(t) = &mut transcript {
            child.set_transcript(t.file.clone());
            // The library's records count from here: so do the runner's.
            t.start = Instant::now();
        }
        let feed = match err_pipe {
            Some(r) => Some(
                ErrFeed::start(r)
                    .map_err(|e| Failed::at(spawn_line, format!("cannot read stderr: {e}")))?,
            ),
            None => None,
        };
        let buf = || Buf {
            filter: header.strip_ansi.then(ansi::Filter::default),
            ..Buf::default()
        };
        Ok(Runner {
            child,
            out: buf(),
            err: feed.as_ref().map(|_| buf()),
            feed,
            stream: Stream::Stdout,
            timeout: config.timeout,
            newline: b"\n".to_vec(),
            captured: None,
            watches: Vec::new(),
            cast,
            transcript,
            tripped: None,
            eof_sent: false,
        })
    }

    fn steps(&mut self, steps: &[Step]) -> Result<(), Box<Failed>> {
        for step in steps {
            log::debug!("script: line {}: {}", step.line, step.source.trim());
            if let Err(Problem(what)) = self.step(step) {
                return Err(Box::new(self.failed(step, what)));
            }
        }
        // The program's input ends; what it writes until it exits still
        // meets the watches.
        self.end_input();
        let deadline = Instant::now() + self.timeout.min(FINISH_GRACE);
        let ended = |r: &Runner| r.out.eof && r.err.as_ref().is_none_or(|b| b.eof);
        let mut drained = Ok(true);
        while !ended(self) && matches!(drained, Ok(true)) {
            drained = self.pump(deadline);
        }
        if let Err(Problem(what)) = drained {
            let last = steps.last().expect("a script has a step");
            return Err(Box::new(self.failed(last, what)));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.child.wait_timeout(left) {
            Ok(Some(status)) => log::info!("script: the program {status}"),
            _ => log::info!("script: the program was still running after the script"),
        }
        Ok(())
    }

    fn failed(&self, step: &Step, what: String) -> Failed {
        let stream = self.stream;
        let buf = self.buf_ref(stream);
        Failed {
            line: step.line,
            step: step.source.trim().to_string(),
            what,
            expected: expected(&step.action),
            output: buf.last_lines(),
            stream: stream.name(),
            stderr: match (&self.err, stream) {
                (Some(err), Stream::Stdout) => err.last_lines(),
                _ => Vec::new(),
            },
            notes: Vec::new(),
            code: FAILED,
        }
    }

    /// After the steps (or a failure): stop a program still running
    /// (SIGTERM, then SIGKILL), close the records and name them in a failure.
    fn finish(mut self, mut failure: Option<Failed>, config: &Config) -> Option<Failed> {
        match self.child.terminate(TERMINATE_GRACE) {
            Ok(status) => log::debug!("script: the program {status}"),
            Err(e) => log::warn!("cannot stop the program: {e}"),
        }
        let _ = self.collect();
        self.feed = None;
        let cast_path = self.cast.as_ref().map(|c| c.path().to_path_buf());
        let cast_error = self.cast.take().and_then(|c| c.finish().err());
        if let Some(f) = failure.as_mut() {
            if let Some(path) = &config.transcript {
                f.notes.push(format!("transcript: {}", path.display()));
            }
            if let Some(path) = &cast_path {
                f.notes.push(format!("recording: {}", path.display()));
            }
        }
        if let (Some(e), Some(path)) = (cast_error, cast_path) {
            let what = format!("cannot write the recording {}: {e}", path.display());
            match failure.as_mut() {
                Some(f) => f.notes.push(what),
                None => {
                    failure = Some(Failed {
                        code: super::super::INTERNAL,
                        ..Failed::at(1, what)
                    })
                }
            }
        }
        failure
    }

    // ---- output ------------------------------------------------------------

    fn buf_ref(&self, stream: Stream) -> &Buf {
        match stream {
            Stream::Stdout => &self.out,
            Stream::Stderr => self
                .err
                .as_ref()
                .expect("the parser checks `stream stderr`"),
        }
    }

    fn buf(&mut self, stream: Stream) -> &mut Buf {
        match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => self
                .err
                .as_mut()
                .expect("the parser checks `stream stderr`"),
        }
    }

    /// Handles bytes that arrived on `stream` at `at`.
    fn arrive(&mut self, stream: Stream, at: Instant, raw: &[u8]) {
        if let Some(cast) = &mut self.cast {
            let source = match stream {
                Stream::Stdout => Source::Stdout,
                Stream::Stderr => Source::Stderr,
            };
            cast.event(source, at, raw);
        }
        if stream == Stream::Stderr
            && let Some(t) = &mut self.transcript
        {
            record_stderr(t, at, raw);
        }
        let added = self.buf(stream).push(raw);
        self.watch(stream, added);
    }

    fn end(&mut self, stream: Stream) {
        let added = self.buf(stream).end();
        self.watch(stream, added);
    }

    /// Checks the watches against the `added` newest bytes of `stream`.
    fn watch(&mut self, stream: Stream, added: usize) {
        if added == 0 || self.watches.is_empty() || self.tripped.is_some() {
            return;
        }
        let buf = match stream {
            Stream::Stdout => &self.out,
            Stream::Stderr => self
                .err
                .as_ref()
                .expect("stderr arrives only when separate"),
        };
        let new = &buf.data[buf.data.len() - added..];
        for w in &mut self.watches {
            let window = &mut w.windows[stream as usize];
            window.extend_from_slice(new);
            if let Some(m) = w.regex.find(window) {
                self.tripped = Some(format!(
                    "{} matched `fail-on {}` (line {}): {}",
                    stream.name(),
                    w.source,
                    w.line,
                    quoted(m.as_bytes())
                ));
                return;
            }
            trim_window(window);
        }
    }

    /// Takes what has arrived on every stream. True when anything did
    /// (bytes or an end); a problem when a watch matched.
    fn collect(&mut self) -> Result<bool, Problem> {
        let mut any = false;
        if !self.out.eof {
            match self.child.read_available(Duration::ZERO) {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => {
                    self.arrive(Stream::Stdout, Instant::now(), &bytes);
                    any = true;
                }
                Err(e) if e.is_eof() => {
                    self.end(Stream::Stdout);
                    any = true;
                }
                Err(e) => return Err(Problem(format!("cannot read the program's output: {e}"))),
            }
        }
        if let Some(feed) = &self.feed {
            for (at, bytes) in feed.take() {
                any = true;
                if bytes.is_empty() {
                    self.end(Stream::Stderr);
                } else {
                    self.arrive(Stream::Stderr, at, &bytes);
                }
            }
        }
        match self.tripped.take() {
            Some(what) => Err(Problem(what)),
            None => Ok(any),
        }
    }

    /// Waits until output arrives on any stream (true) or `deadline`
    /// passes (false).
    fn pump(&mut self, deadline: Instant) -> Result<bool, Problem> {
        loop {
            if self.collect()? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let stderr_open = self.err.as_ref().is_some_and(|b| !b.eof);
            let mut fds = Vec::with_capacity(2);
            if !self.out.eof
                && let Some(fd) = self.child.stdout_fd()
            {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            if let Some(feed) = &self.feed
                && stderr_open
            {
                fds.push(PollFd::new(feed.wake_fd(), PollFlags::POLLIN));
            }
            if fds.is_empty() {
                // Every stream has ended: nothing can arrive.
                thread::sleep(deadline - now);
                return Ok(false);
            }
            match poll(&mut fds, duet::supervise::poll_timeout(Some(deadline))) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(Problem(format!("cannot wait for output: {e}"))),
            }
        }
    }

    fn deadline(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.timeout)
            .unwrap_or(now + Duration::from_secs(86400 * 365))
    }

    /// Waits until `found` finds something in the stream's unread output
    /// or its end, within the timeout; `found` gets the unread bytes and
    /// whether the stream has ended.
    fn wait_for<T>(
        &mut self,
        mut found: impl FnMut(&mut Buf) -> Option<T>,
        what: &str,
    ) -> Result<T, Problem> {
        let deadline = self.deadline();
        let stream = self.stream;
        // The stream as last searched: output on the other one changes nothing.
        let mut searched = None;
        loop {
            let buf = self.buf(stream);
            let state = (buf.data.len(), buf.eof);
            if searched != Some(state) {
                if let Some(t) = found(buf) {
                    return Ok(t);
                }
                searched = Some((buf.data.len(), buf.eof));
            }
            if buf.eof {
                return Err(Problem(format!(
                    "{} ended before {what} came{}",
                    stream.name(),
                    self.status_note()
                )));
            }
            if !self.pump(deadline)? {
                return Err(Problem(format!(
                    "timed out after {}",
                    duration::show(self.timeout)
                )));
            }
        }
    }

    /// ` (the program exited with code 3)` when it has exited.
    fn status_note(&mut self) -> String {
        match self.child.wait_timeout(Duration::from_millis(200)) {
            Ok(Some(status)) => format!(" (the program {})", status_text(status)),
            _ => String::new(),
        }
    }

    // ---- steps ---------------------------------------------------------------

    fn step(&mut self, step: &Step) -> StepResult {
        match &step.action {
            Action::Timeout(d) => {
                self.timeout = *d;
                self.child.set_timeout(*d);
                Ok(())
            }
            Action::Stream(s) => {
                self.stream = *s;
                Ok(())
            }
            Action::Newline(n) => {
                self.newline = n.clone();
                Ok(())
            }
            Action::Send(text) => {
                let bytes = self.text(text)?;
                self.send(&bytes)
            }
            Action::SendLine(text) => {
                let mut bytes = self.text(text)?;
                bytes.extend_from_slice(&self.newline);
                self.send(&bytes)
            }
            Action::SendSecret(text) => {
                let bytes = self.text(text)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| Problem("a secret must be UTF-8 text".into()))?;
                self.child.send_secret(&text).map_err(write_problem)
            }
            Action::SendControl(c) => self.send_control(*c),
            Action::CloseStdin => {
                self.record_input(b"\x04");
                self.eof_sent = true;
                self.child.send_eof().map_err(write_problem)
            }
            Action::Expect(re) => {
                let regex = self.regex(re)?;
                let mut captured = None;
                let what = format!("output matching `{}`", re.source);
                self.wait_for(
                    |buf| {
                        let caps = regex.captures(buf.unread())?;
                        let end = caps.get(0).expect("group 0").end();
                        captured = Some(Captured::from(&regex, &caps));
                        buf.consume(end);
                        Some(())
                    },
                    &what,
                )?;
                self.captured = captured;
                Ok(())
            }
            Action::ExpectExact(text) => {
                let needle = self.text(text)?;
                let what = format!("the text {}", quoted(&needle));
                self.wait_for(
                    |buf| {
                        let at = find(buf.unread(), &needle)?;
                        buf.consume(at + needle.len());
                        Some(())
                    },
                    &what,
                )?;
                self.captured = Some(Captured {
                    groups: vec![Some(needle)],
                    names: Vec::new(),
                });
                Ok(())
            }
            Action::ExpectLine(re) => {
                let regex = self.regex(re)?;
                let line = self.wait_for(Buf::take_line, "a line")?;
                match regex.captures(&line) {
                    Some(caps) => {
                        self.captured = Some(Captured::from(&regex, &caps));
                        Ok(())
                    }
                    None => Err(Problem(format!("the line {} came instead", quoted(&line)))),
                }
            }
            Action::WaitLine(re, bound) => self.wait_line(re, *bound),
            Action::Silence(d) => self.silence(*d),
            Action::ExpectEof => self.wait_for(
                |buf| {
                    if buf.eof {
                        let n = buf.unread().len();
                        buf.consume(n);
                        Some(())
                    } else {
                        None
                    }
                },
                "the end of output",
            ),
            Action::ExitStatus(exits) => self.exit_status(exits),
            Action::Signal(sig) => {
                let signal = duet::Signal::try_from(sig.number)
                    .map_err(|e| Problem(format!("cannot send {}: {e}", sig.name)))?;
                self.child
                    .signal(signal)
                    .map_err(|e| Problem(format!("cannot send {}: {e}", sig.name)))
            }
            Action::Sleep(d) => {
                let deadline = Instant::now() + *d;
                while self.pump(deadline)? {}
                Ok(())
            }
            Action::FailOn(re) => {
                let regex = self.regex(re)?;
                let windows = [
                    self.out.unread().to_vec(),
                    self.err
                        .as_ref()
                        .map(|b| b.unread().to_vec())
                        .unwrap_or_default(),
                ];
                for (i, window) in windows.iter().enumerate() {
                    if let Some(m) = regex.find(window) {
                        let name = if i == 0 { "stdout" } else { "stderr" };
                        return Err(Problem(format!(
                            "unread {name} already matches: {}",
                            quoted(m.as_bytes())
                        )));
                    }
                }
                let mut watch = Watch {
                    line: step.line,
                    source: re.source.clone(),
                    regex,
                    windows,
                };
                watch.windows.iter_mut().for_each(trim_window);
                self.watches.push(watch);
                Ok(())
            }
        }
    }

    /// A TEXT with its captured groups filled in.
    fn text(&self, text: &Text) -> Result<Vec<u8>, Problem> {
        let mut out = Vec::new();
        for piece in &text.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Group(g) => out.extend_from_slice(self.group(g)?),
            }
        }
        Ok(out)
    }

    fn group(&self, group: &Group) -> Result<&[u8], Problem> {
        match &self.captured {
            Some(c) => c.get(group),
            None => Err(Problem(format!("`{group}`: nothing was captured"))),
        }
    }

    /// A REGEX, compiled with its captured groups filled in as literals.
    fn regex(&self, re: &Re) -> Result<Regex, Problem> {
        if let Some(r) = &re.compiled {
            return Ok(r.clone());
        }
        let mut missing = None;
        let source = re.expand(|g| match self.group(g) {
            Ok(bytes) => syntax::regex_literal(bytes),
            Err(p) => {
                missing.get_or_insert(p);
                String::new()
            }
        });
        if let Some(p) = missing {
            return Err(p);
        }
        syntax::compile(&source)
            .map_err(|e| Problem(format!("the regex {source:?} does not compile: {e}")))
    }

    fn send(&mut self, bytes: &[u8]) -> StepResult {
        self.record_input(bytes);
        self.child.send_bytes(bytes).map_err(write_problem)
    }

    fn record_input(&mut self, bytes: &[u8]) {
        if let Some(cast) = &mut self.cast {
            cast.event(Source::Input, Instant::now(), bytes);
        }
    }

    fn send_control(&mut self, c: char) -> StepResult {
        let byte = syntax::control(c).expect("the parser checks the character");
        self.record_input(&[byte]);
        self.child.send_control(c).map_err(write_problem)
    }

    /// Ends the program's input unless `close-stdin` did: once only, since
    /// on a pty every end-of-file character counts.
    fn end_input(&mut self) {
        if !self.eof_sent {
            self.eof_sent = true;
            let _ = self.child.close_stdin();
        }
    }

    fn wait_line(&mut self, re: &Re, bound: Option<usize>) -> StepResult {
        let regex = self.regex(re)?;
        let mut skipped = 0usize;
        let mut last: Option<Vec<u8>> = None;
        let what = format!("a line matching `{}`", re.source);
        let mut captured = None;
        let outcome = self.wait_for(
            |buf| {
                while let Some(line) = buf.take_line() {
                    if let Some(caps) = regex.captures(&line) {
                        captured = Some(Captured::from(&regex, &caps));
                        return Some(true);
                    }
                    skipped += 1;
                    last = Some(line);
                    if bound.is_some_and(|n| skipped > n) {
                        return Some(false);
                    }
                }
                None
            },
            &what,
        )?;
        if outcome {
            self.captured = captured;
            return Ok(());
        }
        Err(Problem(format!(
            "{skipped} lines came without a match (at most {} may be skipped); the last: {}",
            bound.unwrap_or(0),
            quoted(last.as_deref().unwrap_or(b""))
        )))
    }

    fn silence(&mut self, d: Duration) -> StepResult {
        let stream = self.stream;
        if self.buf(stream).eof {
            return Err(Problem(format!("{} has already ended", stream.name())));
        }
        let before = self.buf(stream).arrived;
        let recent_before = self.buf(stream).recent.len();
        let deadline = Instant::now() + d;
        while self.pump(deadline)? {
            let buf = self.buf(stream);
            if buf.arrived > before {
                let new = &buf.recent[recent_before.min(buf.recent.len())..];
                return Err(Problem(format!(
                    "output arrived on {}: {}",
                    stream.name(),
                    quoted(new)
                )));
            }
            if buf.eof {
                return Err(Problem(format!(
                    "{} ended{}",
                    stream.name(),
                    self.status_note()
                )));
            }
        }
        Ok(())
    }

    fn exit_status(&mut self, exits: &[Exit]) -> StepResult {
        // Many programs wait for the end of their input before they exit.
        self.end_input();
        let status = match self.child.wait_timeout(self.timeout) {
            Ok(Some(status)) => status,
            Ok(None) => {
                return Err(Problem(format!(
                    "the program was still running after {}",
                    duration::show(self.timeout)
                )));
            }
            Err(e) => return Err(Problem(format!("cannot wait for the program: {e}"))),
        };
        self.collect()?;
        let ok = exits.iter().any(|e| match e {
            Exit::Any => true,
            Exit::Code(c) => status.code() == Some(*c),
            Exit::Signal(s) => status.signal() == Some(s.number),
        });
        if ok {
            Ok(())
        } else {
            Err(Problem(format!("the program {}", status_text(status))))
        }
    }
}

/// `exited with code 3`, `was killed by signal 15 (SIGTERM)`.
fn status_text(status: duet::ExitStatus) -> String {
    if status.code().is_some() {
        status.to_string()
    } else {
        format!("was {status}")
    }
}

fn write_problem(e: duet::Error) -> Problem {
    Problem(format!("cannot write to the program: {e}"))
}

/// Keeps the end of a watch's window: at most [`WATCH_WINDOW`] bytes,
/// starting at a line start when there is one.
fn trim_window(window: &mut Vec<u8>) {
    if window.len() <= WATCH_WINDOW {
        return;
    }
    let mut cut = window.len() - WATCH_WINDOW;
    if let Some(nl) = window[cut..].iter().position(|&b| b == b'\n') {
        cut += nl + 1;
    }
    window.drain(..cut);
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    let first = needle[0];
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from
            + haystack[from..=haystack.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// What a step expected, for the report.
fn expected(action: &Action) -> String {
    match action {
        Action::Expect(re) => format!("output matching `{}`", re.source),
        Action::ExpectExact(text) => format!("the text \"{}\"", show_text(text)),
        Action::ExpectLine(re) => format!("the next line to match `{}`", re.source),
        Action::WaitLine(re, None) => format!("a later line matching `{}`", re.source),
        Action::WaitLine(re, Some(n)) => {
            format!("a line matching `{}` within the next {}", re.source, n + 1)
        }
        Action::Silence(d) => format!("no output for {}", duration::show(*d)),
        Action::ExpectEof => "the end of output".into(),
        Action::ExitStatus(exits) => {
            let list: Vec<String> = exits
                .iter()
                .map(|e| match e {
                    Exit::Code(c) => format!("exit with code {c}"),
                    Exit::Signal(s) => format!("killed by {}", s.name),
                    Exit::Any => "exit".into(),
                })
                .collect();
            list.join(" or ")
        }
        _ => String::new(),
    }
}

/// A TEXT as written (escaped), its groups as references.
fn show_text(text: &Text) -> String {
    text.pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => syntax::escape(b),
            Piece::Group(g) => g.to_string(),
        })
        .collect()
}

/// The `TERM` the program gets, for the recording's header.
fn term_of(header: &syntax::Header, pty: bool) -> Option<String> {
    let mut term = if pty {
        Some(PTY_TERM.to_string())
    } else {
        std::env::var("TERM").ok()
    };
    for change in &header.env {
        match change {
            EnvChange::Set(n, v) if n == "TERM" => term = Some(v.clone()),
            EnvChange::Unset(n) if n == "TERM" => term = None,
            _ => {}
        }
    }
    term
}

fn open_transcript(path: &std::path::Path, command: &str) -> io::Result<Transcript> {
    let mut file = File::create(path)?;
    writeln!(file, "# duet transcript: {command}")?;
    Ok(Transcript {
        file: SharedFile(Arc::new(Mutex::new(file))),
        start: Instant::now(),
        path: path.to_path_buf(),
    })
}

/// Writes stderr bytes to the transcript as the library writes its
/// records: seconds, `!`, then each line escaped.
fn record_stderr(t: &mut Transcript, at: Instant, bytes: &[u8]) {
    let secs = at.saturating_duration_since(t.start).as_secs_f64();
    for piece in bytes.split_inclusive(|&b| b == b'\n') {
        let line = format!("{secs:9.3} ! {}\n", piece.escape_ascii());
        if t.file.write_all(line.as_bytes()).is_err() {
            log::warn!("transcript write failed: {}", t.path.display());
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_locates_a_needle() {
        assert_eq!(find(b"hello world", b"world"), Some(6));
        assert_eq!(find(b"aaab", b"ab"), Some(2));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b""), Some(0));
    }

    #[test]
    fn lines_strip_every_trailing_cr_and_the_last_line_counts_at_eof() {
        let mut buf = Buf::default();
        buf.push(b"a\r\r\nb\r\nc");
        assert_eq!(buf.take_line().unwrap(), b"a");
        assert_eq!(buf.take_line().unwrap(), b"b");
        assert_eq!(buf.take_line(), None);
        buf.end();
        assert_eq!(buf.take_line().unwrap(), b"c");
        assert_eq!(buf.take_line(), None);
    }

    #[test]
    fn a_watch_window_starts_at_a_line() {
        let mut w = vec![b'x'; WATCH_WINDOW + 10];
        w[20] = b'\n';
        trim_window(&mut w);
        assert_eq!(w.len(), WATCH_WINDOW - 11);
    }
}
