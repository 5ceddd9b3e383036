//! Runs a parsed script against its program, on the library's conversation
//! core.
//!
//! Every step is one or a few calls of [`duet::Child`]: the core keeps the
//! one buffer per stream that every expectation reads (so text after a
//! prompt that `expect` matched starts the next line for `expect-line`),
//! searches it incrementally as output arrives, strips escape sequences
//! (`strip-ansi`, [`duet::Command::strip_ansi`]) and runs the `fail-on`
//! watches ([`duet::Child::fail_on`]) on both streams as the bytes arrive,
//! whichever call is waiting. A separate stderr is a pipe the library
//! drains in the same `poll` as stdout.
//!
//! - `expect` is [`duet::Pattern::regex`], `expect-exact` [`duet::Pattern::exact`];
//! - `expect-line` and `wait-line` are [`duet::Pattern::line`] (complete
//!   lines, every trailing `\r` stripped), with the script's regex flags
//!   (multi-line, CRLF) so that a line step searches within the line as
//!   `expect` would. At end of output a last line without newline still
//!   counts as a line: it comes back as what [`duet::Pattern::Eof`] left;
//! - `silence` is [`duet::Child::stays_quiet`], `sleep` waits on it too,
//!   `expect-eof` is [`duet::Pattern::Eof`] (which discards what is left).
//!
//! - `respond` is [`duet::Child::respond`]; `pace` sends one character
//!   per write, the pause between two spent collecting output as `sleep`
//!   does; `interact` fails at once when duet's stdin is not a terminal.
//!
//! A script has one program per `spawn`/`spawn-as` line, each a
//! [`duet::Child`] of its own with its streams, watches and exit status;
//! `use` picks the one the steps talk to. `deadline` caps every wait.
//!
//! The runner's own state is the script's: captures (shared by the
//! programs), settings, which watch came from which line, and in update
//! mode the rewrites (a failing `expect-line` or `exit-status` records
//! what came and counts as passed). An observer ([`duet::Child::set_observer`])
//! sees the raw bytes both ways as they pass, for the asciicast and for the
//! last lines of output that a failure report shows (display only).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use duet::{Error, Match, Observed, Pattern};

use crate::cast::{Cast, Screen, Source};
use crate::duration;
use crate::syntax::{
    self, Action, EnvChange, Exit, Group, Groups, Piece, Re, Script, Sig, Stderr, Step, Stream,
    Text,
};

/// The exit codes of `duet script` for a script that could not run, as
/// coreutils `timeout` and `env` use them.
pub mod exit {
    /// duet itself failed (a file it could not write, a pipe it could not make).
    pub const INTERNAL: u8 = 125;
    /// The program exists but cannot be run.
    pub const NOT_EXECUTABLE: u8 = 126;
    /// The program is not found.
    pub const NOT_FOUND: u8 = 127;
}

/// Where a script's program runs: here, or on another host through
/// OpenSSH (`duet::Command::ssh`).
#[derive(Clone, Debug, Default)]
pub struct Remote {
    /// `[user@]host`; `None` runs the program here.
    pub ssh: Option<OsString>,
    /// Options passed as `ssh -o OPT`.
    pub ssh_options: Vec<OsString>,
}

impl Remote {
    /// Sets the host and options on `cmd` (nothing without a host).
    pub fn apply(&self, cmd: &mut duet::Command) {
        if let Some(host) = &self.ssh {
            cmd.ssh(host);
            for opt in &self.ssh_options {
                cmd.ssh_option(opt);
            }
        }
    }
}

/// How a script is run, besides the script itself.
#[derive(Debug, Clone)]
pub struct Config {
    /// The script's name in messages (`FILE` of `FILE:LINE:`).
    pub file: String,
    /// `-- PROG ARGS` from the command line, overriding `spawn`.
    pub program: Vec<OsString>,
    /// `--ssh HOST`: the program runs there.
    pub remote: Remote,
    /// The timeout until a `timeout` step changes it.
    pub timeout: Duration,
    /// `--pty`: as `pty on`.
    pub pty: bool,
    /// Write a transcript here.
    pub transcript: Option<PathBuf>,
    /// Write an asciicast recording here.
    pub cast: Option<PathBuf>,
    /// `--update`: rewrite a failing `expect-line` or `exit-status` to what
    /// came, and go on.
    pub update: bool,
    /// `--retries N`: the runs a failing script gets again when it does
    /// not say (its `retries` header wins).
    pub retries: u32,
}

/// How one run of a script ended.
#[derive(Debug)]
pub struct Ran {
    /// `None`: every step passed (after the rewrites, in update mode).
    pub failure: Option<Failed>,
    /// The rewrites `--update` made.
    pub changes: Vec<Change>,
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
    /// The program the step talked to, when the script has several.
    pub program: String,
    /// The last lines of a separate stderr when the step read stdout.
    pub stderr: Vec<String>,
    /// Files to look at (transcript, recording).
    pub notes: Vec<String>,
    /// The exit code `duet script` gives it.
    pub code: u8,
    /// The script could not run (unreadable, parse errors, no program, a
    /// program that cannot be started, a record that cannot be written):
    /// an error, not a failure; never retried.
    pub cannot_run: bool,
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
            program: String::new(),
            stderr: Vec::new(),
            notes: Vec::new(),
            code: FAILED,
            cannot_run: false,
        }
    }

    /// The script could not run, for this reason; `duet script` exits
    /// with `code`.
    pub fn cannot_run(line: usize, what: impl Into<String>, code: u8) -> Failed {
        Failed {
            code,
            cannot_run: true,
            ..Failed::at(line, what)
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
            let of = if self.program.is_empty() {
                String::new()
            } else {
                format!(" of {}", self.program)
            };
            push_lines(
                &mut msg,
                &format!("last output ({}{of})", self.stream),
                &self.output,
            );
            if !self.stderr.is_empty() {
                push_lines(&mut msg, &format!("last stderr{of}"), &self.stderr);
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
/// After the last step: how long the program may take to end its output
/// and exit once its input has ended, before it is terminated (at most the
/// current timeout).
const FINISH_GRACE: Duration = Duration::from_secs(2);
/// How long a terminated program has between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);
/// How long a failure report waits for the exit status of a program whose
/// output ended.
const STATUS_GRACE: Duration = Duration::from_millis(200);

/// The terminal type a program on a pty gets unless the script sets `TERM`:
/// fixed, so that a script behaves alike on every machine, and plain, so
/// that programs send few escape sequences.
pub const PTY_TERM: &str = "dumb";

/// Runs `script`. Never panics on the program's behaviour; every failure is
/// in the outcome.
pub fn run(script: &Script, config: &Config) -> Ran {
    let start = Instant::now();
    let (failure, changes) = match Runner::start(script, config, start) {
        Ok(mut runner) => {
            let failure = runner.steps(&script.steps).err().map(|f| *f);
            runner.finish(failure, config)
        }
        Err(failed) => (Some(*failed), Vec::new()),
    };
    Ran { failure, changes }
}

/// The last bytes of one stream, as they arrived (escape sequences and
/// all): only for failure reports, never matched.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    /// Bytes that arrived in all.
    total: u64,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        self.bytes.extend_from_slice(bytes);
        if self.bytes.len() > RECENT {
            self.bytes.drain(..self.bytes.len() - RECENT);
        }
    }

    /// What arrived after the first `total` bytes (as much as is kept).
    fn since(&self, total: u64) -> &[u8] {
        let new = (self.total - total).min(self.bytes.len() as u64) as usize;
        &self.bytes[self.bytes.len() - new..]
    }
}

/// What the observer keeps of the traffic.
#[derive(Debug, Default)]
struct Seen {
    /// By stream: stdout, stderr.
    tails: [Tail; 2],
    /// The stream output arrived on last.
    last: Option<Stream>,
}

impl Seen {
    /// Keeps the output's tail; returns what the recording shows.
    fn observe<'a>(&mut self, chunk: Observed<'a>) -> Option<(Source, &'a [u8])> {
        let (source, stream, bytes) = match chunk {
            Observed::Stdout(b) => (Source::Stdout, Some(Stream::Stdout), b),
            Observed::Stderr(b) => (Source::Stderr, Some(Stream::Stderr), b),
            Observed::Sent(b) => (Source::Input, None, b),
            _ => return None,
        };
        if let Some(s) = stream {
            self.tails[s as usize].push(bytes);
            self.last = Some(s);
        }
        Some((source, bytes))
    }
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

/// A `fail-on` watch: the library's pattern source, and where it came from.
#[derive(Debug)]
struct Watch {
    /// As given to the library (groups filled in), as `Error::FailOn` names it.
    pattern: String,
    line: usize,
    /// As written in the script.
    source: String,
}

/// The groups captured by the last expectation.
#[derive(Debug, Default)]
struct Captured {
    /// By number; 0 is all that matched.
    groups: Vec<Option<Vec<u8>>>,
    names: Vec<(String, Option<Vec<u8>>)>,
}

impl Captured {
    /// The groups of `m`, a match of a regex with `groups`; `zero` is
    /// group 0 when the match's own text is not (a line pattern's is the
    /// whole line).
    fn of_match(m: &Match, groups: &Groups, zero: Option<Vec<u8>>) -> Captured {
        let bytes = |g: Option<&str>| g.map(|s| s.as_bytes().to_vec());
        let mut all: Vec<_> = (0..groups.len.max(1)).map(|i| bytes(m.group(i))).collect();
        if let Some(zero) = zero {
            all[0] = Some(zero);
        }
        Captured {
            groups: all,
            names: groups
                .names
                .iter()
                .map(|n| (n.clone(), bytes(m.name(n))))
                .collect(),
        }
    }

    /// The groups of a regex crate match (a last line at end of output).
    fn of_captures(regex: &regex::bytes::Regex, caps: &regex::bytes::Captures<'_>) -> Captured {
        Captured {
            groups: caps
                .iter()
                .map(|g| g.map(|m| m.as_bytes().to_vec()))
                .collect(),
            names: regex
                .capture_names()
                .flatten()
                .map(|n| (n.to_string(), caps.name(n).map(|m| m.as_bytes().to_vec())))
                .collect(),
        }
    }

    fn get(&self, group: &Group) -> Result<&[u8], Problem> {
        let found = match group {
            Group::Index(i) => self.groups.get(*i),
            Group::Name(n) => self.names.iter().find(|(m, _)| m == n).map(|(_, g)| g),
        };
        match found {
            Some(Some(bytes)) => Ok(bytes),
            _ => Err(Problem(format!(
                "`{group}` took no part in the last match, so there is nothing to insert"
            ))),
        }
    }
}

/// The last line at the end of output, as a line step sees it.
enum LastLine {
    /// Nothing was left after the last newline.
    None,
    /// The regex matches it.
    Matches(Captured),
    /// It does not match: this line came instead.
    Other(Vec<u8>),
}

/// `argv` as a `spawn` line would write it.
fn quote_argv(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    syntax::quote_words(&words)
}

/// Far enough in the future to stand for "never".
const FAR: Duration = Duration::from_secs(86400 * 365);

/// Starts one program of the script with the header's settings (which
/// apply to every program), its transcript and the shared recording.
fn spawn_program(
    name: &str,
    (line, argv): (usize, &[OsString]),
    script: &Script,
    config: &Config,
    transcript: Option<&std::path::Path>,
    cast: &Arc<Mutex<Option<Cast>>>,
) -> Result<Program, Box<Failed>> {
    let header = &script.header;
    let pty = header.pty || config.pty;
    let command = quote_argv(argv);
    let transcript = match transcript {
        Some(path) => Some(open_transcript(path, &command).map_err(|e| Failed {
            cannot_run: true,
            code: exit::INTERNAL,
            ..Failed::at(
                line,
                format!("cannot write the transcript {}: {e}", path.display()),
            )
        })?),
        None => None,
    };
    let mut cmd = duet::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .timeout(config.timeout)
        .pty(pty)
        .strip_ansi(header.strip_ansi);
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
    match stderr {
        Stderr::Separate => {
            cmd.stderr(duet::Stdio::piped());
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
    let mut child = cmd.spawn().map_err(|e| {
        let code = match &e {
            Error::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                exit::NOT_FOUND
            }
            _ => exit::NOT_EXECUTABLE,
        };
        let what = if name == syntax::MAIN {
            e.to_string()
        } else {
            format!("`{name}`: {e}")
        };
        Failed::cannot_run(line, what, code)
    })?;
    if let Some(file) = transcript {
        child.set_transcript(file);
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (observer, recording) = (Arc::clone(&seen), Arc::clone(cast));
    child.set_observer(move |chunk| {
        if let Some((source, bytes)) = lock(&observer).observe(chunk)
            && let Some(cast) = lock(&recording).as_mut()
        {
            cast.event(source, Instant::now(), bytes);
        }
    });
    Ok(Program {
        name: name.to_string(),
        child,
        seen,
        separate: stderr == Stderr::Separate,
        ended: [false, stderr != Stderr::Separate],
        eof_sent: false,
        watches: Vec::new(),
    })
}

/// One program of the script: `main` (from `spawn`) or one named by
/// `spawn-as`, with what the runner keeps about it.
struct Program {
    name: String,
    child: duet::Child,
    /// Shared with the child's observer.
    seen: Arc<Mutex<Seen>>,
    /// `stderr separate`: the library reads stderr as a stream of its own.
    separate: bool,
    /// By stream: its end has been seen.
    ended: [bool; 2],
    /// `close-stdin` has run: the end of input is not sent again.
    eof_sent: bool,
    watches: Vec<Watch>,
}

struct Runner {
    /// `main` first, then the `spawn-as` programs in header order.
    programs: Vec<Program>,
    /// The program `use` chose.
    current: usize,
    /// The recording, shared with every program's observer.
    cast: Arc<Mutex<Option<Cast>>>,
    stream: Stream,
    timeout: Duration,
    newline: Vec<u8>,
    /// `pace D`: the time between two characters sent; zero sends at once.
    pace: Duration,
    /// `deadline D`: when the whole script must be done, and D.
    deadline: Option<(Instant, Duration)>,
    captured: Option<Captured>,
    /// Any complete line (the line steps' second pattern).
    any_line: Pattern,
    /// `--update`: a failing `expect-line` or `exit-status` is rewritten.
    update: bool,
    /// The rewrites made in update mode.
    changes: Vec<Change>,
    /// The step being run (its line and text), for the rewrites.
    at: (usize, String),
}

/// A line `--update` rewrites: what it was, what it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// 1-based line number in the script.
    pub line: usize,
    /// The step as written (without the indentation).
    pub old: String,
    /// The step that replaces it.
    pub new: String,
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
            return Err(Box::new(Failed::cannot_run(
                first_line,
                "no program: name it with `spawn PROG ARGS` in the script's header, or after `--`",
                FAILED,
            )));
        };
        let pty = header.pty || config.pty;
        // The records first: when they cannot be written, nothing runs.
        let command = quote_argv(&argv);
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
                    // What a terminal would not echo is shown as well.
                    show_input: !(pty && header.pty_echo),
                };
                Some(Cast::create(path, start, &screen).map_err(|e| Failed {
                    cannot_run: true,
                    code: exit::INTERNAL,
                    ..Failed::at(
                        spawn_line,
                        format!("cannot write the recording {}: {e}", path.display()),
                    )
                })?)
            }
            None => None,
        };
        let cast = Arc::new(Mutex::new(cast));
        let mut programs = Vec::with_capacity(1 + header.others.len());
        let transcript = config.transcript.as_deref();
        programs.push(spawn_program(
            syntax::MAIN,
            (spawn_line, &argv),
            script,
            config,
            transcript,
            &cast,
        )?);
        for other in &header.others {
            let argv: Vec<OsString> = other.words.iter().map(OsString::from).collect();
            // A transcript each: the main one's path with `.NAME` added.
            let path = transcript.map(|p| {
                let mut p = p.as_os_str().to_owned();
                p.push(format!(".{}", other.name));
                PathBuf::from(p)
            });
            programs.push(spawn_program(
                &other.name,
                (other.line, &argv),
                script,
                config,
                path.as_deref(),
                &cast,
            )?);
        }
        let deadline = header.deadline.map(|d| {
            let at = start.checked_add(d).unwrap_or(start + FAR);
            (at, d)
        });
        Ok(Runner {
            programs,
            current: 0,
            cast,
            stream: Stream::Stdout,
            timeout: config.timeout,
            newline: b"\n".to_vec(),
            pace: Duration::ZERO,
            deadline,
            captured: None,
            any_line: Pattern::line("").expect("the empty regex compiles"),
            update: config.update,
            changes: Vec::new(),
            at: (0, String::new()),
        })
    }

    fn p(&mut self) -> &mut Program {
        &mut self.programs[self.current]
    }

    fn pr(&self) -> &Program {
        &self.programs[self.current]
    }

    fn steps(&mut self, steps: &[Step]) -> Result<(), Box<Failed>> {
        for step in steps {
            log::debug!("script: line {}: {}", step.line, step.source.trim());
            self.at = (step.line, step.source.trim().to_string());
            let done = match self.deadline_passed() {
                Some(problem) => Err(problem),
                None => self.step(step),
            };
            if let Err(Problem(what)) = done {
                return Err(Box::new(self.failed(step, what)));
            }
        }
        // The programs' input ends; what they write until they exit still
        // meets the watches.
        let last = steps.last().expect("a script has a step");
        let deadline = self.cap(Instant::now() + self.timeout.min(FINISH_GRACE));
        for i in 0..self.programs.len() {
            self.current = i;
            self.end_input();
            if let Err(Problem(what)) = self.collect_until(deadline) {
                return Err(Box::new(self.failed(last, what)));
            }
        }
        for program in &mut self.programs {
            let left = deadline.saturating_duration_since(Instant::now());
            match program.child.wait_timeout(left) {
                Ok(Some(status)) => log::info!("script: {} {status}", program.name),
                _ => log::info!(
                    "script: {} was still running after the script",
                    program.name
                ),
            }
        }
        Ok(())
    }

    fn failed(&self, step: &Step, what: String) -> Failed {
        let stream = self.stream;
        let program = self.pr();
        let seen = lock(&program.seen);
        let tail = |s: Stream| last_lines(&seen.tails[s as usize].bytes, REPORT_LINES);
        Failed {
            line: step.line,
            step: step.source.trim().to_string(),
            what,
            expected: expected(&step.action),
            output: tail(stream),
            stream: stream.name(),
            program: if self.programs.len() > 1 {
                program.name.clone()
            } else {
                String::new()
            },
            stderr: if program.separate && stream == Stream::Stdout {
                tail(Stream::Stderr)
            } else {
                Vec::new()
            },
            notes: Vec::new(),
            code: FAILED,
            cannot_run: false,
        }
    }

    /// After the steps (or a failure): stop the programs still running
    /// (SIGTERM, then SIGKILL), close the records and name them in a failure.
    fn finish(
        mut self,
        mut failure: Option<Failed>,
        config: &Config,
    ) -> (Option<Failed>, Vec<Change>) {
        for program in &mut self.programs {
            match program.child.terminate(TERMINATE_GRACE) {
                Ok(status) => log::debug!("script: {} {status}", program.name),
                Err(e) => log::warn!("cannot stop {}: {e}", program.name),
            }
            // What is still in the pipes, for the recording.
            let _ = program.child.stays_quiet(Duration::ZERO);
            if program.separate {
                let _ = program.child.stderr_stays_quiet(Duration::ZERO);
            }
        }
        let cast = lock(&self.cast).take();
        let cast_path = cast.as_ref().map(|c| c.path().to_path_buf());
        let cast_error = cast.and_then(|c| c.finish().err());
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
                        cannot_run: true,
                        code: exit::INTERNAL,
                        ..Failed::at(1, what)
                    })
                }
            }
        }
        (failure, self.changes)
    }

    // ---- output ------------------------------------------------------------

    /// When the step that starts now must be done: after the timeout, or
    /// at the script's deadline if that comes first.
    fn deadline(&self) -> Instant {
        let now = Instant::now();
        self.cap(now.checked_add(self.timeout).unwrap_or(now + FAR))
    }

    /// `at`, or the script's deadline if that comes first.
    fn cap(&self, at: Instant) -> Instant {
        match self.deadline {
            Some((end, _)) => at.min(end),
            None => at,
        }
    }

    /// How long a wait of `d` may take before the script's deadline.
    fn capped(&self, d: Duration) -> Duration {
        let now = Instant::now();
        self.cap(now.checked_add(d).unwrap_or(now + FAR))
            .saturating_duration_since(now)
    }

    /// The failure once the script's deadline has passed.
    fn deadline_passed(&self) -> Option<Problem> {
        let (end, d) = self.deadline?;
        (Instant::now() >= end).then(|| {
            Problem(format!(
                "the script's deadline ({}, `deadline` in the header) passed",
                duration::show(d)
            ))
        })
    }

    /// The library's expect of `patterns` on the step's stream, giving up
    /// at `deadline`; `what` names what was awaited, for an end of output.
    fn expect_on(
        &mut self,
        patterns: &[Pattern],
        deadline: Instant,
        what: &str,
    ) -> Result<(usize, Match), Problem> {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = match self.stream {
            Stream::Stdout => self.p().child.expect_any_timeout(patterns, left),
            Stream::Stderr => {
                self.p().child.set_timeout(left);
                let got = self.p().child.expect_any_stderr(patterns);
                let timeout = self.timeout;
                self.p().child.set_timeout(timeout);
                got
            }
        };
        got.map_err(|e| self.read_problem(e, what))
    }

    /// What a read's error means for the step.
    fn read_problem(&mut self, e: Error, what: &str) -> Problem {
        let stream = self.stream;
        match e {
            Error::Timeout { .. } => self.deadline_passed().unwrap_or_else(|| {
                Problem(format!("timed out after {}", duration::show(self.timeout)))
            }),
            Error::Eof { status, .. } => {
                self.p().ended[stream as usize] = true;
                Problem(format!(
                    "{} ended before {what} came{}",
                    stream.name(),
                    status_note(status)
                ))
            }
            Error::FailOn {
                pattern, matched, ..
            } => self.watch_problem(&pattern, &matched),
            e => Problem(format!("cannot read the program's output: {e}")),
        }
    }

    /// A `fail-on` watch matched `matched`.
    fn watch_problem(&self, pattern: &str, matched: &str) -> Problem {
        let (line, source) = self
            .pr()
            .watches
            .iter()
            .find(|w| w.pattern == pattern)
            .map_or((0, pattern), |w| (w.line, w.source.as_str()));
        Problem(format!(
            "{} matched `fail-on {source}` (line {line}): {}",
            self.stream_of(matched).name(),
            quoted(matched.as_bytes())
        ))
    }

    /// The stream a watch's match came from, for its report: the one whose
    /// recent output holds it (the library's error does not say); when
    /// both or neither do, the one output came on last.
    fn stream_of(&self, matched: &str) -> Stream {
        let seen = lock(&self.pr().seen);
        let holds =
            |s: Stream| String::from_utf8_lossy(&seen.tails[s as usize].bytes).contains(matched);
        match (
            holds(Stream::Stdout),
            self.pr().separate && holds(Stream::Stderr),
        ) {
            (true, false) => Stream::Stdout,
            (false, true) => Stream::Stderr,
            _ => seen.last.unwrap_or(self.stream),
        }
    }

    /// Reports a watch's match that no read has reported yet (after a step
    /// that waits without reading: the library collects output meanwhile).
    /// Consumes nothing.
    fn check_watches(&mut self) -> StepResult {
        match self.p().child.stays_quiet(Duration::ZERO) {
            Err(Error::FailOn {
                pattern, matched, ..
            }) => Err(self.watch_problem(&pattern, &matched)),
            Err(e) if e.is_eof() => {
                self.p().ended[Stream::Stdout as usize] = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Collects output on every stream until `deadline` or until all of
    /// them ended, consuming nothing; a watch's match fails.
    fn collect_until(&mut self, deadline: Instant) -> StepResult {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let Some(s) = [Stream::Stdout, Stream::Stderr]
                .into_iter()
                .find(|&s| !self.p().ended[s as usize])
            else {
                return Ok(());
            };
            let left = deadline - now;
            let quiet = match s {
                Stream::Stdout => self.p().child.stays_quiet(left),
                Stream::Stderr => self.p().child.stderr_stays_quiet(left),
            };
            match quiet {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.is_eof() => self.p().ended[s as usize] = true,
                Err(Error::FailOn {
                    pattern, matched, ..
                }) => return Err(self.watch_problem(&pattern, &matched)),
                Err(e) => return Err(Problem(format!("cannot read the program's output: {e}"))),
            }
        }
    }

    /// ` (the program exited with code 3)` once it has exited.
    fn exit_note(&mut self) -> String {
        status_note(self.p().child.wait_timeout(STATUS_GRACE).ok().flatten())
    }

    // ---- steps ---------------------------------------------------------------

    fn step(&mut self, step: &Step) -> StepResult {
        match &step.action {
            Action::Timeout(d) => {
                self.timeout = *d;
                self.p().child.set_timeout(*d);
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
            Action::Use(name) => {
                self.current = self
                    .programs
                    .iter()
                    .position(|p| &p.name == name)
                    .expect("the parser checked the name");
                Ok(())
            }
            Action::Pace(d) => {
                self.pace = *d;
                Ok(())
            }
            Action::Send(text) => {
                let bytes = self.text(text)?;
                self.send(&bytes, false)
            }
            Action::SendLine(text) => {
                let mut bytes = self.text(text)?;
                bytes.extend_from_slice(&self.newline);
                self.send(&bytes, false)
            }
            Action::SendSecret(text) => {
                let bytes = self.text(text)?;
                if std::str::from_utf8(&bytes).is_err() {
                    return Err(Problem("a secret must be UTF-8 text".into()));
                }
                self.send(&bytes, true)
            }
            Action::Respond(re, text) => {
                let source = self.regex_source(re)?;
                let pattern = Pattern::regex(&source).map_err(|e| bad_regex(&source, e))?;
                let reply = self.text(text)?;
                self.p().child.respond(pattern, reply);
                Ok(())
            }
            Action::Interact => {
                if !io::stdin().is_terminal() {
                    return Err(Problem(
                        "interact: duet's stdin is not a terminal, so no person can take the \
                         program over (run the script from a terminal, or remove `interact`)"
                            .into(),
                    ));
                }
                let ended = interact_with_person(&mut self.p().child)?;
                if ended {
                    self.p().ended = [true, true];
                }
                Ok(())
            }
            Action::SendControl(c) => self.p().child.send_control(*c).map_err(write_problem),
            Action::CloseStdin => {
                // In the recording as a person types it.
                if let Some(cast) = lock(&self.cast).as_mut() {
                    cast.event(Source::Input, Instant::now(), b"\x04");
                }
                self.p().eof_sent = true;
                self.p().child.send_eof().map_err(write_problem)
            }
            Action::Expect(re) => {
                let source = self.regex_source(re)?;
                let pattern = Pattern::regex(&source).map_err(|e| bad_regex(&source, e))?;
                let what = format!("output matching `{}`", re.source);
                let (_, m) = self.expect_on(&[pattern], self.deadline(), &what)?;
                self.captured = Some(Captured::of_match(&m, &re.groups, None));
                Ok(())
            }
            Action::ExpectExact(text) => {
                let needle = self.text(text)?;
                let pattern = match std::str::from_utf8(&needle) {
                    Ok(text) => Pattern::exact(text),
                    // Bytes that are not UTF-8: the same literal as a regex.
                    Err(_) => {
                        let source = syntax::regex_literal(&needle);
                        Pattern::regex(&source).map_err(|e| bad_regex(&source, e))?
                    }
                };
                let what = format!("the text {}", quoted(&needle));
                self.expect_on(&[pattern], self.deadline(), &what)?;
                self.captured = Some(Captured {
                    groups: vec![Some(needle)],
                    names: Vec::new(),
                });
                Ok(())
            }
            Action::ExpectLine(re) => self.expect_line(re),
            Action::WaitLine(re, bound) => self.wait_line(re, *bound),
            Action::Silence(d) => self.silence(*d),
            Action::ExpectEof => {
                self.expect_on(&[Pattern::Eof], self.deadline(), "the end of output")?;
                let s = self.stream as usize;
                self.p().ended[s] = true;
                Ok(())
            }
            Action::ExitStatus(exits) => self.exit_status(exits),
            Action::Signal(sig) => {
                let signal = duet::Signal::try_from(sig.number)
                    .map_err(|e| Problem(format!("cannot send {}: {e}", sig.name)))?;
                self.p()
                    .child
                    .signal(signal)
                    .map_err(|e| Problem(format!("cannot send {}: {e}", sig.name)))
            }
            Action::Sleep(d) => self.pause(*d),
            Action::FailOn(re) => {
                let pattern = self.regex_source(re)?;
                let compiled = Pattern::regex(&pattern).map_err(|e| bad_regex(&pattern, e))?;
                self.p().child.fail_on(compiled);
                self.p().watches.push(Watch {
                    pattern,
                    line: step.line,
                    source: re.source.clone(),
                });
                // Unread output that already matches fails the next step
                // that reads or waits (the library watches it too).
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

    /// A REGEX with its captured groups filled in as literals.
    fn regex_source(&self, re: &Re) -> Result<String, Problem> {
        let mut missing = None;
        let source = re.expand(|g| match self.group(g) {
            Ok(bytes) => syntax::regex_literal(bytes),
            Err(p) => {
                missing.get_or_insert(p);
                String::new()
            }
        });
        match missing {
            Some(p) => Err(p),
            None => Ok(source),
        }
    }

    /// The line pattern of a line step: the regex searched within each
    /// complete line, with the flags of every script regex.
    fn line_pattern(source: &str) -> Result<Pattern, Problem> {
        Pattern::line(&format!("(?mR){source}")).map_err(|e| bad_regex(source, e))
    }

    /// Group 0 of a line step's match: what the regex matched within `line`.
    fn matched_in(re: &Re, source: &str, line: &[u8]) -> Result<Option<Vec<u8>>, Problem> {
        Ok(Self::compiled(re, source)?
            .find(line)
            .map(|m| m.as_bytes().to_vec()))
    }

    /// The script regex as the `regex` crate compiles it (for one line, never
    /// for a stream).
    fn compiled(re: &Re, source: &str) -> Result<regex::bytes::Regex, Problem> {
        match &re.compiled {
            Some(r) => Ok(r.clone()),
            None => syntax::compile(source)
                .map_err(|e| Problem(format!("the regex {source:?} does not compile: {e}"))),
        }
    }

    /// At end of output: the last line without newline in what
    /// `Pattern::Eof` `left`, every trailing `\r` stripped, against the regex.
    fn last_line(re: &Re, source: &str, left: &str) -> Result<LastLine, Problem> {
        let last = left
            .rsplit('\n')
            .next()
            .unwrap_or("")
            .trim_end_matches('\r');
        if last.is_empty() {
            return Ok(LastLine::None);
        }
        let regex = Self::compiled(re, source)?;
        Ok(match regex.captures(last.as_bytes()) {
            Some(caps) => LastLine::Matches(Captured::of_captures(&regex, &caps)),
            None => LastLine::Other(last.as_bytes().to_vec()),
        })
    }

    /// The captures of a line step whose pattern matched `m`.
    fn line_captures(re: &Re, source: &str, m: &Match) -> Result<Captured, Problem> {
        let zero = Self::matched_in(re, source, m.as_str().as_bytes())?;
        Ok(Captured::of_match(m, &re.groups, zero))
    }

    fn expect_line(&mut self, re: &Re) -> StepResult {
        let source = self.regex_source(re)?;
        let patterns = [
            Self::line_pattern(&source)?,
            self.any_line.clone(),
            Pattern::Eof,
        ];
        let (i, m) = self.expect_on(&patterns, self.deadline(), "a line")?;
        let came = match i {
            0 => {
                self.captured = Some(Self::line_captures(re, &source, &m)?);
                return Ok(());
            }
            1 if self.rewrite_line(re, m.as_str().as_bytes()) => return Ok(()),
            1 => m.as_str().as_bytes().to_vec(),
            _ => {
                let s = self.stream as usize;
                self.p().ended[s] = true;
                match Self::last_line(re, &source, m.before())? {
                    LastLine::Matches(captured) => {
                        self.captured = Some(captured);
                        return Ok(());
                    }
                    LastLine::Other(line) if self.rewrite_line(re, &line) => return Ok(()),
                    LastLine::Other(line) => line,
                    LastLine::None => {
                        return Err(Problem(format!(
                            "{} ended before a line came{}",
                            self.stream.name(),
                            self.exit_note()
                        )));
                    }
                }
            }
        };
        Err(Problem(format!("the line {} came instead", quoted(&came))))
    }

    /// In update mode, rewrites the failing `expect-line` to match `line`
    /// exactly; only a regex without groups, whose captures no later step
    /// can have used.
    fn rewrite_line(&mut self, re: &Re, line: &[u8]) -> bool {
        if re.groups.len > 1 || re.references().next().is_some() {
            return false;
        }
        let done = self.rewrite(format!("expect-line ^{}$", syntax::regex_literal(line)));
        if done {
            self.captured = Some(Captured {
                groups: vec![Some(line.to_vec())],
                names: Vec::new(),
            });
        }
        done
    }

    /// In update mode, records that the step being run becomes `new`.
    fn rewrite(&mut self, new: String) -> bool {
        if !self.update {
            return false;
        }
        let (line, old) = self.at.clone();
        log::info!("script: line {line}: `{old}` becomes `{new}`");
        self.changes.push(Change { line, old, new });
        true
    }

    /// Sends `bytes`, one character at a time `pace` apart when the
    /// script set a pace; a secret is shown in records by its length.
    fn send(&mut self, bytes: &[u8], secret: bool) -> StepResult {
        let pace = self.pace;
        let one = |child: &mut duet::Child, bytes: &[u8]| {
            if secret {
                child.send_secret(&String::from_utf8_lossy(bytes))
            } else {
                child.send_bytes(bytes)
            }
        };
        if pace.is_zero() {
            return one(&mut self.p().child, bytes).map_err(write_problem);
        }
        for (i, c) in characters(bytes).enumerate() {
            if i > 0 {
                self.pause(pace)?;
            }
            one(&mut self.p().child, c).map_err(write_problem)?;
        }
        Ok(())
    }

    /// Lets `d` pass (at most until the script's deadline) while output
    /// keeps being collected and watched.
    fn pause(&mut self, d: Duration) -> StepResult {
        let now = Instant::now();
        let end = now.checked_add(d).unwrap_or(now + FAR);
        let deadline = self.cap(end);
        self.collect_until(deadline)?;
        // Every stream has ended: nothing can arrive any more.
        thread::sleep(deadline.saturating_duration_since(Instant::now()));
        match self.deadline_passed() {
            Some(p) if deadline < end => Err(p),
            _ => Ok(()),
        }
    }

    fn wait_line(&mut self, re: &Re, bound: Option<usize>) -> StepResult {
        let source = self.regex_source(re)?;
        let wanted = Self::line_pattern(&source)?;
        let what = format!("a line matching `{}`", re.source);
        let deadline = self.deadline();
        // Without a bound the library skips the lines; with one, each line
        // that comes instead is counted.
        let patterns = match bound {
            None => vec![wanted, Pattern::Eof],
            Some(_) => vec![wanted, self.any_line.clone(), Pattern::Eof],
        };
        let mut skipped = 0usize;
        let mut last = Vec::new();
        loop {
            let (i, m) = self.expect_on(&patterns, deadline, &what)?;
            if i == 0 {
                self.captured = Some(Self::line_captures(re, &source, &m)?);
                return Ok(());
            }
            if i + 1 < patterns.len() {
                skipped += 1;
                last = m.as_str().as_bytes().to_vec();
            } else {
                let s = self.stream as usize;
                self.p().ended[s] = true;
                match Self::last_line(re, &source, m.before())? {
                    LastLine::Matches(captured) => {
                        self.captured = Some(captured);
                        return Ok(());
                    }
                    LastLine::Other(line) => {
                        skipped += 1;
                        last = line;
                    }
                    LastLine::None => {}
                }
            }
            if let Some(n) = bound
                && skipped > n
            {
                return Err(Problem(format!(
                    "{skipped} lines came without a match (at most {n} may be skipped); the last: {}",
                    quoted(&last)
                )));
            }
            if i + 1 == patterns.len() {
                return Err(Problem(format!(
                    "{} ended before {what} came{}",
                    self.stream.name(),
                    self.exit_note()
                )));
            }
        }
    }

    fn silence(&mut self, d: Duration) -> StepResult {
        let stream = self.stream;
        let before = lock(&self.pr().seen).tails[stream as usize].total;
        let wait = self.capped(d);
        let quiet = match stream {
            Stream::Stdout => self.p().child.stays_quiet(wait),
            Stream::Stderr => self.p().child.stderr_stays_quiet(wait),
        };
        match quiet {
            Ok(true) if wait < d => Err(self
                .deadline_passed()
                .unwrap_or_else(|| Problem("the script's deadline passed".into()))),
            Ok(true) => Ok(()),
            Ok(false) => {
                let seen = lock(&self.pr().seen);
                Err(Problem(format!(
                    "output arrived on {}: {}",
                    stream.name(),
                    quoted(seen.tails[stream as usize].since(before))
                )))
            }
            Err(Error::Eof { status, .. }) => {
                self.p().ended[stream as usize] = true;
                Err(Problem(format!(
                    "{} ended{}",
                    stream.name(),
                    status_note(status)
                )))
            }
            Err(e) => Err(self.read_problem(e, "silence")),
        }
    }

    /// Ends the program's input unless `close-stdin` did: once only, since
    /// on a pty every end-of-file character counts.
    fn end_input(&mut self) {
        if !self.p().eof_sent {
            self.p().eof_sent = true;
            let _ = self.p().child.close_stdin();
        }
    }

    fn exit_status(&mut self, exits: &[Exit]) -> StepResult {
        // Many programs wait for the end of their input before they exit.
        self.end_input();
        let wait = self.capped(self.timeout);
        let status = match self.p().child.wait_timeout(wait) {
            Ok(Some(status)) => status,
            Ok(None) => {
                return Err(self.deadline_passed().unwrap_or_else(|| {
                    Problem(format!(
                        "the program was still running after {}",
                        duration::show(self.timeout)
                    ))
                }));
            }
            Err(e) => return Err(Problem(format!("cannot wait for the program: {e}"))),
        };
        // The output read while waiting met the watches.
        self.check_watches()?;
        let ok = exits.iter().any(|e| match e {
            Exit::Any => true,
            Exit::Code(c) => status.code() == Some(*c),
            Exit::Signal(s) => status.signal() == Some(s.number),
        });
        if ok {
            return Ok(());
        }
        let came = match (status.code(), status.signal().and_then(Sig::from_number)) {
            (Some(code), _) => Some(code.to_string()),
            (None, Some(sig)) => Some(sig.name.to_string()),
            (None, None) => None,
        };
        if let Some(came) = came
            && self.rewrite(format!("exit-status {came}"))
        {
            return Ok(());
        }
        Err(Problem(format!("the program {}", status_text(status))))
    }
}

/// Shared state, whatever a panic elsewhere left.
fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn bad_regex(source: &str, e: impl Into<Error>) -> Problem {
    let e: Error = e.into();
    Problem(format!("the regex {source:?} does not compile: {e}"))
}

/// ` (the program exited with code 3)` when it has exited.
fn status_note(status: Option<duet::ExitStatus>) -> String {
    match status {
        Some(status) => format!(" (the program {})", status_text(status)),
        None => String::new(),
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

/// `interact`: hands the program to the person at duet's terminal
/// ([`duet::Child::interact`]) until it exits (true) or `^]` is typed
/// (false); the steps after it go on from there.
fn interact_with_person(child: &mut duet::Child) -> Result<bool, Problem> {
    match child.interact() {
        Ok(status) => Ok(status.is_some()),
        Err(e) => Err(Problem(format!("interact: {e}"))),
    }
}

/// The characters of `bytes` as slices: each UTF-8 character whole, each
/// byte that is not UTF-8 alone.
fn characters(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = match std::str::from_utf8(&rest[..rest.len().min(4)]) {
            Ok(s) => s.chars().next().map_or(1, char::len_utf8),
            Err(e) if e.valid_up_to() > 0 => std::str::from_utf8(&rest[..e.valid_up_to()])
                .ok()
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8),
            Err(_) => 1,
        };
        let (c, tail) = rest.split_at(len);
        rest = tail;
        Some(c)
    })
}

fn write_problem(e: duet::Error) -> Problem {
    Problem(format!("cannot write to the program: {e}"))
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

fn open_transcript(path: &std::path::Path, command: &str) -> io::Result<File> {
    let mut file = File::create(path)?;
    writeln!(file, "# duet transcript: {command}")?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_last_bytes_and_what_came_since() {
        let mut tail = Tail::default();
        tail.push(b"abc");
        let before = tail.total;
        tail.push(&vec![b'x'; RECENT]);
        assert_eq!(tail.bytes.len(), RECENT);
        assert_eq!(tail.since(before).len(), RECENT);
        assert_eq!(tail.since(tail.total), b"");
    }

    #[test]
    fn last_lines_drop_the_line_end_and_escape() {
        assert_eq!(last_lines(b"a\r\nb\x1b[1m\n", 5), ["a", "b\\x1b[1m"]);
        assert_eq!(last_lines(b"1\n2\n3\n", 2), ["2", "3"]);
        assert!(last_lines(b"", 5).is_empty());
    }

    #[test]
    fn the_last_line_at_end_of_output_strips_every_carriage_return() {
        let re = syntax::parse("spawn x\nexpect-line ^(c)$\n")
            .ok()
            .and_then(|s| match s.steps.into_iter().next()?.action {
                Action::ExpectLine(re) => Some(re),
                _ => None,
            })
            .expect("a line step");
        let LastLine::Matches(c) = Runner::last_line(&re, "^(c)$", "a\nb\nc\r\r").unwrap() else {
            panic!("the last line matches")
        };
        assert_eq!(c.groups[1].as_deref(), Some(&b"c"[..]));
        assert!(matches!(
            Runner::last_line(&re, "^(c)$", "a\nd\r").unwrap(),
            LastLine::Other(l) if l == b"d"
        ));
        assert!(matches!(
            Runner::last_line(&re, "^(c)$", "a\n").unwrap(),
            LastLine::None
        ));
    }
}
