//! The script's syntax: text in, a header and steps (or every error) out.
//!
//! Pure: no processes, no files, no clap. The runner, the CLI's `record`
//! and the fuzz target reach it through [`parse`].
//!
//! The rules, as the parser applies them:
//!
//! - One header line, setting or step per line; blank lines and lines whose
//!   first non-blank character is `#` are skipped. A `#` anywhere else is text.
//! - The keyword ends at the first blank; the argument is everything after
//!   that one blank, kept exactly (a TEXT, a REGEX, `env`'s value, `cwd`'s
//!   directory). Arguments that are words (`on`, `stderr`, durations, codes,
//!   signal names) may have blanks around them.
//! - A TEXT decodes `\n \t \r \e \xHH \\`; `\xHH` is the raw byte HH, so a
//!   TEXT is bytes. A REGEX goes to the regex engine as written.
//! - `${1}` or `${name}` in a TEXT or REGEX is a group captured by the last
//!   `expect`, `expect-exact`, `expect-line` or `wait-line` before it
//!   (`${0}`: all it matched); in a REGEX it matches the captured text
//!   literally. Anything else with a `$` is literal
//!   (write `\x24{` in a TEXT for a literal `${`).
//! - Header lines come before the first step that talks to the program
//!   (settings and `fail-on` may come between them).

use std::fmt;
use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder};

use crate::duration;

/// A parsed script: how to start the program, then what to do.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// The header: the program and how it runs.
    pub header: Header,
    /// Settings and steps, in order.
    pub steps: Vec<Step>,
}

/// How the program is started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// `spawn PROG ARGS...`: the words and the line they came from.
    pub spawn: Option<(usize, Vec<String>)>,
    /// `pty on|off`.
    pub pty: bool,
    /// `pty-echo on|off`.
    pub pty_echo: bool,
    /// `pty-size ROWSxCOLS`.
    pub pty_size: Option<(u16, u16)>,
    /// `stderr separate|merge|null`; `None`: separate on pipes, the
    /// terminal on a pty.
    pub stderr: Option<Stderr>,
    /// `env NAME=VALUE` and `unset NAME`, in order.
    pub env: Vec<EnvChange>,
    /// `cwd DIR`.
    pub cwd: Option<String>,
    /// `strip-ansi on|off`.
    pub strip_ansi: bool,
    /// `require PROG...`: the script is skipped when one is not installed.
    pub require: Vec<String>,
    /// `skip REASON`: the script is not run.
    pub skip: Option<String>,
    /// `xfail REASON`: the script is expected to fail.
    pub xfail: Option<String>,
    /// `tags WORD...`, for `duet test --tag`.
    pub tags: Vec<String>,
    /// `retries N`: a failing run is tried again up to N times.
    pub retries: Option<u32>,
    /// `deadline D`: the limit for the whole script.
    pub deadline: Option<Duration>,
    /// `spawn-as NAME PROG ARGS...`: other programs, with their lines.
    pub others: Vec<Other>,
}

/// A program started with `spawn-as NAME PROG ARGS...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Other {
    /// The line it is named on.
    pub line: usize,
    /// The name `use NAME` refers to.
    pub name: String,
    /// The program and its arguments.
    pub words: Vec<String>,
}

/// The name of the program started by `spawn` (and `-- PROG ARGS`).
pub const MAIN: &str = "main";

/// Where the program's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// A stream of its own, read with `stream stderr`.
    Separate,
    /// Into stdout.
    Merge,
    /// `/dev/null`.
    Null,
}

/// One change to the program's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvChange {
    /// `env NAME=VALUE`.
    Set(String, String),
    /// `unset NAME`.
    Unset(String),
}

/// Which output the expectations read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The program's stdout (the pty on a terminal).
    Stdout,
    /// The program's stderr (`stderr separate`).
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A reference to a captured group: `${1}` or `${name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// `${N}`; 0 is the whole match.
    Index(usize),
    /// `${name}`.
    Name(String),
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Index(i) => write!(f, "${{{i}}}"),
            Group::Name(n) => write!(f, "${{{n}}}"),
        }
    }
}

/// A piece of a TEXT: bytes, or a captured group inserted when the step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Decoded bytes.
    Bytes(Vec<u8>),
    /// A captured group.
    Group(Group),
}

/// A TEXT argument, escapes decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    /// The pieces in order; adjacent bytes are joined.
    pub pieces: Vec<Piece>,
}

impl Text {
    /// The bytes, when the text has no captured group.
    #[cfg(test)]
    pub fn literal(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Group(_) => return None,
            }
        }
        Some(out)
    }
}

/// A piece of a REGEX as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RePiece {
    /// Regex syntax.
    Syntax(String),
    /// A captured group, matched literally.
    Group(Group),
}

/// A REGEX argument: checked when parsed, compiled then when it has no
/// captured group, else when its step runs.
#[derive(Debug, Clone)]
pub struct Re {
    /// The regex as written in the script.
    pub source: String,
    /// The source split at its captured groups.
    pub pieces: Vec<RePiece>,
    /// The compiled regex when there is no captured group.
    pub compiled: Option<Regex>,
    /// Its capture groups: how many (the whole match included) and their names.
    pub groups: Groups,
}

/// The capture groups of a regex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    /// The number of groups, the whole match (group 0) included.
    pub len: usize,
    /// The named groups.
    pub names: Vec<String>,
}

impl Re {
    /// The regex with each captured group replaced by `literal(group)`,
    /// which must return regex syntax that matches it literally.
    pub fn expand(&self, mut literal: impl FnMut(&Group) -> String) -> String {
        let mut out = String::with_capacity(self.source.len());
        for piece in &self.pieces {
            match piece {
                RePiece::Syntax(s) => out.push_str(s),
                // A group of its own, so that a repetition after it applies
                // to all of it.
                RePiece::Group(g) => {
                    out.push_str("(?:");
                    out.push_str(&literal(g));
                    out.push(')');
                }
            }
        }
        out
    }

    /// The groups the regex refers to.
    pub fn references(&self) -> impl Iterator<Item = &Group> {
        self.pieces.iter().filter_map(|p| match p {
            RePiece::Group(g) => Some(g),
            RePiece::Syntax(_) => None,
        })
    }
}

/// Compiles a regex as every pattern in a script is compiled: the `regex`
/// crate's syntax, multi-line (`^` and `$` at line ends, `$` also before
/// `\r\n`), searched in bytes.
pub fn compile(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re).multi_line(true).crlf(true).build()
}

/// What the program's exit must be: one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(Sig),
    /// Exited or was killed, however.
    Any,
}

/// A signal, by name and number (Linux numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sig {
    /// The name with `SIG`, e.g. `SIGTERM`.
    pub name: &'static str,
    /// Its number.
    pub number: i32,
}

const SIGNALS: [(&str, i32); 31] = [
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

impl Sig {
    /// A signal named `TERM`, `SIGTERM` or `sigterm`.
    pub fn from_name(name: &str) -> Option<Sig> {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        SIGNALS
            .iter()
            .find(|(n, _)| *n == full)
            .map(|&(name, number)| Sig { name, number })
    }

    /// The signal with this number.
    pub fn from_number(number: i32) -> Option<Sig> {
        SIGNALS
            .iter()
            .find(|(_, n)| *n == number)
            .map(|&(name, number)| Sig { name, number })
    }
}

/// What one line does.
#[derive(Debug, Clone)]
pub enum Action {
    /// `send TEXT`: write the text as is.
    Send(Text),
    /// `sendline TEXT`: write the text and the newline (`newline`).
    SendLine(Text),
    /// `send-secret TEXT`: as `send`, shown in records by its length only.
    SendSecret(Text),
    /// `send-control C`: the control character ^C, raw (see [`control`]).
    SendControl(char),
    /// `close-stdin`: end of input (close the pipe; VEOF on a pty).
    CloseStdin,
    /// `expect REGEX`: search the stream; consume through the match.
    Expect(Re),
    /// `expect-exact TEXT`: the same for a literal.
    ExpectExact(Text),
    /// `expect-line REGEX`: the next complete line matches.
    ExpectLine(Re),
    /// `wait-line REGEX` (`wait-line:N REGEX`: skipping at most N lines):
    /// some later line matches.
    WaitLine(Re, Option<usize>),
    /// `silence D`: nothing arrives on the stream for D.
    Silence(Duration),
    /// `expect-eof`: the stream ends; unread output is discarded.
    ExpectEof,
    /// `exit-status ...`: the program's exit is one of these.
    ExitStatus(Vec<Exit>),
    /// `signal SIGNAME`: send the signal.
    Signal(Sig),
    /// `sleep D`: let D pass, collecting output.
    Sleep(Duration),
    /// `fail-on REGEX`: from here on, output matching it fails the script.
    FailOn(Re),
    /// `timeout D` (setting).
    Timeout(Duration),
    /// `stream stdout|stderr` (setting).
    Stream(Stream),
    /// `newline TEXT` (setting): what `sendline` appends.
    Newline(Vec<u8>),
    /// `use NAME` (setting): the steps after it talk to that program.
    Use(String),
    /// `pace D` (setting): sends go one character at a time, D apart
    /// (`pace 0s` turns it off).
    Pace(Duration),
    /// `respond REGEX => TEXT`: from here on, TEXT is sent whenever output
    /// matches REGEX.
    Respond(Re, Text),
    /// `interact`: the person at duet's terminal takes the program over
    /// until it exits or `^]` is typed.
    Interact,
}

impl Action {
    /// True for the settings, which only change how later steps run.
    pub fn is_setting(&self) -> bool {
        matches!(
            self,
            Action::Timeout(_)
                | Action::Stream(_)
                | Action::Newline(_)
                | Action::Use(_)
                | Action::Pace(_)
        )
    }
}

/// A step or setting and where it came from.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line number in the script.
    pub line: usize,
    /// The line as written (without its line end), for messages.
    pub source: String,
    /// What to do.
    pub action: Action,
}

/// A problem in a script, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to write it instead.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
    }
}

/// Every keyword, for the "unknown" message.
const KEYWORDS: &str = "spawn, spawn-as, pty, pty-echo, pty-size, stderr, env, unset, cwd, \
     strip-ansi, require, skip, xfail, tags, retries, deadline (header); timeout, stream, newline, \
     use, pace (settings); send, sendline, send-secret, send-control, close-stdin, expect, \
     expect-exact, expect-line, wait-line, silence, expect-eof, exit-status, signal, sleep, \
     fail-on, respond, interact (steps)";

/// One parsed line.
enum Line {
    Header(HeaderLine),
    Step(Action),
}

enum HeaderLine {
    Spawn(Vec<String>),
    Pty(bool),
    PtyEcho(bool),
    PtySize(u16, u16),
    Stderr(Stderr),
    Env(EnvChange),
    Cwd(String),
    StripAnsi(bool),
    Require(Vec<String>),
    Skip(String),
    Xfail(String),
    Tags(Vec<String>),
    Retries(u32),
    Deadline(Duration),
    SpawnAs(String, Vec<String>),
}

/// What the capture references of later lines may name: the groups of the
/// last regex step, and its line.
#[derive(Default)]
struct Captures {
    last: Option<(usize, Groups)>,
}

impl Captures {
    fn check(&self, group: &Group) -> Result<(), String> {
        let Some((line, groups)) = &self.last else {
            return Err(format!(
                "`{group}` refers to a group captured by an earlier expect, expect-exact, \
                 expect-line or wait-line, and there is none; write `\\x24{{` in a TEXT for a literal `${{`"
            ));
        };
        match group {
            Group::Index(i) if *i < groups.len => Ok(()),
            Group::Index(i) => Err(format!(
                "`{group}`: the expectation on line {line} has {} group(s), so ${{{i}}} is not \
                 one (${{0}} is the whole match)",
                groups.len - 1
            )),
            Group::Name(n) if groups.names.iter().any(|m| m == n) => Ok(()),
            Group::Name(_) => Err(format!(
                "`{group}`: the expectation on line {line} has no group of that name{}",
                if groups.names.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {})", groups.names.join(", "))
                }
            )),
        }
    }
}

/// Parses a whole script. Every line is checked; all problems are returned
/// together, in line order, so one run shows them all. A script without a
/// step is an error (reported on line 1).
pub fn parse(text: &str) -> Result<Script, Vec<ParseError>> {
    let mut script = Script::default();
    let mut errors = Vec::new();
    let mut captures = Captures::default();
    // The first step that talks to the program ends the header.
    let mut first_step: Option<usize> = None;
    let mut stderr_stream: Option<usize> = None;
    let mut echo_line = None;
    let mut size_line = None;
    let mut uses: Vec<(usize, String)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let source = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = source.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(trimmed, &captures) {
            Ok(Line::Header(h)) => {
                if let Some(step_line) = first_step {
                    errors.push(ParseError {
                        line,
                        message: format!(
                            "`{}` is a header line: it must come before the first step that \
                             talks to the program (line {step_line})",
                            keyword_of(trimmed)
                        ),
                    });
                    continue;
                }
                let header = &mut script.header;
                match h {
                    HeaderLine::Spawn(words) => match &header.spawn {
                        Some((first, _)) => errors.push(ParseError {
                            line,
                            message: format!(
                                "a second `spawn`; the program is named on line {first}"
                            ),
                        }),
                        None => header.spawn = Some((line, words)),
                    },
                    HeaderLine::Pty(on) => header.pty = on,
                    HeaderLine::PtyEcho(on) => {
                        header.pty_echo = on;
                        echo_line = on.then_some(line);
                    }
                    HeaderLine::PtySize(rows, cols) => {
                        header.pty_size = Some((rows, cols));
                        size_line = Some(line);
                    }
                    HeaderLine::Stderr(s) => header.stderr = Some(s),
                    HeaderLine::Env(change) => header.env.push(change),
                    HeaderLine::Cwd(dir) => header.cwd = Some(dir),
                    HeaderLine::StripAnsi(on) => header.strip_ansi = on,
                    HeaderLine::Require(progs) => header.require.extend(progs),
                    HeaderLine::Skip(reason) => header.skip = Some(reason),
                    HeaderLine::Xfail(reason) => header.xfail = Some(reason),
                    HeaderLine::Tags(words) => header.tags.extend(words),
                    HeaderLine::Retries(n) => header.retries = Some(n),
                    HeaderLine::Deadline(d) => header.deadline = Some(d),
                    HeaderLine::SpawnAs(name, words) => {
                        let taken = if name == MAIN {
                            Some(0)
                        } else {
                            header
                                .others
                                .iter()
                                .find(|o| o.name == name)
                                .map(|o| o.line)
                        };
                        match taken {
                            Some(first) => errors.push(ParseError {
                                line,
                                message: if first == 0 {
                                    format!(
                                        "`{MAIN}` is the program of `spawn`; name this one otherwise"
                                    )
                                } else {
                                    format!("a second program named `{name}` (line {first})")
                                },
                            }),
                            None => header.others.push(Other { line, name, words }),
                        }
                    }
                }
            }
            Ok(Line::Step(action)) => {
                if !action.is_setting()
                    && !matches!(action, Action::FailOn(_) | Action::Respond(..))
                {
                    first_step.get_or_insert(line);
                }
                if let Action::Use(name) = &action {
                    uses.push((line, name.clone()));
                }
                if let Action::Stream(Stream::Stderr) = action {
                    stderr_stream.get_or_insert(line);
                }
                if let Some(groups) = capturing(&action) {
                    captures.last = Some((line, groups));
                }
                script.steps.push(Step {
                    line,
                    source: source.to_string(),
                    action,
                });
            }
            Err(message) => errors.push(ParseError { line, message }),
        }
    }
    let header = &script.header;
    for (line, name) in uses {
        if name != MAIN && !header.others.iter().any(|o| o.name == name) {
            let known: Vec<&str> = std::iter::once(MAIN)
                .chain(header.others.iter().map(|o| o.name.as_str()))
                .collect();
            errors.push(ParseError {
                line,
                message: format!(
                    "`use {name}`: no program has that name (the programs are {}; name one \
                     with `spawn-as NAME PROG ARGS` in the header)",
                    known.join(", ")
                ),
            });
        }
    }
    if !header.pty {
        if let Some(line) = echo_line {
            errors.push(ParseError {
                line,
                message: "`pty-echo on` needs `pty on`: without a terminal nothing echoes".into(),
            });
        }
        if let Some(line) = size_line {
            errors.push(ParseError {
                line,
                message: "`pty-size` needs `pty on`: without a terminal there is no size".into(),
            });
        }
    }
    if let Some(line) = stderr_stream {
        let separate = match header.stderr {
            Some(s) => s == Stderr::Separate,
            None => !header.pty,
        };
        if !separate {
            errors.push(ParseError {
                line,
                message: format!(
                    "`stream stderr` needs `stderr separate` in the header ({})",
                    match header.stderr {
                        Some(Stderr::Merge) => "stderr is merged into stdout",
                        Some(Stderr::Null) => "stderr goes to /dev/null",
                        _ => "on a pty stderr is the terminal unless `stderr separate` is given",
                    }
                ),
            });
        }
    }
    if errors.is_empty() && script.steps.iter().all(|s| s.action.is_setting()) {
        errors.push(ParseError {
            line: 1,
            message: if text.trim().is_empty() {
                "the script is empty: write one step per line, e.g. `expect-eof`".into()
            } else {
                "the script has no steps, only a header and settings: add one, e.g. `expect-eof`"
                    .into()
            },
        });
    }
    if errors.is_empty() {
        Ok(script)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// The groups a step captures for the steps after it: every expectation
/// replaces them (as pexpect's `match`); `expect-exact` has only `${0}`.
fn capturing(action: &Action) -> Option<Groups> {
    match action {
        Action::Expect(re) | Action::ExpectLine(re) | Action::WaitLine(re, _) => {
            Some(re.groups.clone())
        }
        Action::ExpectExact(_) => Some(Groups {
            len: 1,
            names: Vec::new(),
        }),
        _ => None,
    }
}

fn keyword_of(line: &str) -> &str {
    line.split(char::is_whitespace).next().unwrap_or(line)
}

/// Splits `keyword argument`: the argument is everything after the one
/// blank that ends the keyword.
fn split_keyword(line: &str) -> (&str, &str) {
    match line.find(char::is_whitespace) {
        Some(i) => {
            let rest = &line[i..];
            let sep = rest.chars().next().map_or(0, char::len_utf8);
            (&line[..i], &rest[sep..])
        }
        None => (line, ""),
    }
}

fn parse_line(line: &str, captures: &Captures) -> Result<Line, String> {
    let (keyword, arg) = split_keyword(line);
    let word = arg.trim();
    let needs = |what: &str| -> Result<(), String> {
        if arg.is_empty() {
            Err(format!(
                "`{keyword}` needs {what}, e.g. `{keyword} {}`",
                example(keyword)
            ))
        } else {
            Ok(())
        }
    };
    let none = || -> Result<(), String> {
        if word.is_empty() {
            Ok(())
        } else {
            Err(format!("`{keyword}` takes no argument, found {arg:?}"))
        }
    };
    let on_off = || -> Result<bool, String> {
        match word {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(format!("`{keyword}` takes `on` or `off`, found {arg:?}")),
        }
    };
    let text = |what: &str| -> Result<Text, String> {
        needs(what)?;
        parse_text(arg, captures)
    };
    let regex = || -> Result<Re, String> {
        needs("a REGEX")?;
        parse_regex(arg, captures)
    };
    let dur = || -> Result<Duration, String> {
        needs("a duration")?;
        duration::parse(word).map_err(|e| format!("`{keyword}`: {e}"))
    };
    let header = |h: HeaderLine| Ok(Line::Header(h));
    let step = |a: Action| Ok(Line::Step(a));
    if let Some(bound) = keyword.strip_prefix("wait-line:") {
        let n = bound.parse::<usize>().map_err(|_| {
            format!("`wait-line:N` takes the number of lines it may skip, found {bound:?}")
        })?;
        return step(Action::WaitLine(regex()?, Some(n)));
    }
    match keyword {
        "spawn" => {
            needs("a program")?;
            let words = split_words(arg)?;
            if words.is_empty() {
                return Err("`spawn` needs a program, e.g. `spawn bc -q`".into());
            }
            header(HeaderLine::Spawn(words))
        }
        "pty" => header(HeaderLine::Pty(on_off()?)),
        "pty-echo" => header(HeaderLine::PtyEcho(on_off()?)),
        "pty-size" => {
            needs("ROWSxCOLS")?;
            let bad =
                || format!("`pty-size` takes ROWSxCOLS, e.g. `pty-size 24x80`, found {arg:?}");
            let (rows, cols) = word.split_once(['x', 'X']).ok_or_else(bad)?;
            let rows: u16 = rows.parse().map_err(|_| bad())?;
            let cols: u16 = cols.parse().map_err(|_| bad())?;
            if rows == 0 || cols == 0 {
                return Err(bad());
            }
            header(HeaderLine::PtySize(rows, cols))
        }
        "stderr" => header(HeaderLine::Stderr(match word {
            "separate" => Stderr::Separate,
            "merge" => Stderr::Merge,
            "null" => Stderr::Null,
            _ => {
                return Err(format!(
                    "`stderr` takes `separate`, `merge` or `null`, found {arg:?}"
                ));
            }
        })),
        "env" => {
            needs("NAME=VALUE")?;
            let (name, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("`env` takes NAME=VALUE, found {arg:?}"))?;
            check_name(name)?;
            header(HeaderLine::Env(EnvChange::Set(name.into(), value.into())))
        }
        "unset" => {
            needs("a NAME")?;
            check_name(word)?;
            header(HeaderLine::Env(EnvChange::Unset(word.into())))
        }
        "cwd" => {
            needs("a directory")?;
            header(HeaderLine::Cwd(arg.into()))
        }
        "strip-ansi" => header(HeaderLine::StripAnsi(on_off()?)),
        "require" => {
            needs("a program")?;
            header(HeaderLine::Require(
                word.split_whitespace().map(String::from).collect(),
            ))
        }
        "skip" => {
            needs("a REASON")?;
            header(HeaderLine::Skip(word.into()))
        }
        "xfail" => {
            needs("a REASON")?;
            header(HeaderLine::Xfail(word.into()))
        }
        "tags" => {
            needs("a WORD")?;
            header(HeaderLine::Tags(
                word.split_whitespace().map(String::from).collect(),
            ))
        }
        "retries" => {
            needs("a number")?;
            let n = word
                .parse::<u32>()
                .map_err(|_| format!("`retries` takes a number of runs, found {arg:?}"))?;
            header(HeaderLine::Retries(n))
        }
        "deadline" => header(HeaderLine::Deadline(dur()?)),
        "spawn-as" => {
            needs("a NAME and a program")?;
            let mut words = split_words(arg)?;
            if words.len() < 2 {
                return Err(
                    "`spawn-as` needs a NAME and a program, e.g. `spawn-as server nc -l 9000`"
                        .into(),
                );
            }
            let name = words.remove(0);
            check_program_name(&name)?;
            header(HeaderLine::SpawnAs(name, words))
        }
        "use" => {
            needs("a NAME")?;
            check_program_name(word)?;
            step(Action::Use(word.into()))
        }
        "pace" => step(Action::Pace(dur()?)),
        "respond" => {
            needs("REGEX => TEXT")?;
            let Some((re, text)) = arg.split_once(" => ") else {
                return Err(format!(
                    "`respond` takes REGEX => TEXT (with spaces around `=>`), found {arg:?}"
                ));
            };
            if re.is_empty() {
                return Err("`respond` needs a REGEX before ` => `".into());
            }
            // The reply may use the groups of earlier steps, not its own match.
            let reply = parse_text(text, captures)?;
            step(Action::Respond(parse_regex(re, captures)?, reply))
        }
        "interact" => {
            none()?;
            step(Action::Interact)
        }
        "timeout" => step(Action::Timeout(dur()?)),
        "stream" => step(Action::Stream(match word {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            _ => {
                return Err(format!(
                    "`stream` takes `stdout` or `stderr`, found {arg:?}"
                ));
            }
        })),
        "newline" => {
            needs("TEXT")?;
            step(Action::Newline(unescape(arg)?))
        }
        "send" => step(Action::Send(text("TEXT")?)),
        "sendline" => step(Action::SendLine(parse_text(arg, captures)?)),
        "send-secret" => step(Action::SendSecret(text("TEXT")?)),
        "send-control" => {
            needs("a character")?;
            // `c`, or `^c` as the character is written.
            let letter = match word.strip_prefix('^') {
                Some(rest) if !rest.is_empty() => rest,
                _ => word,
            };
            let mut chars = letter.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(format!(
                    "`send-control` takes one character (a letter or one of @ [ \\ ] ^ _ ?), \
                     found {arg:?}"
                ));
            };
            if control(c).is_none() {
                return Err(format!(
                    "`send-control {c}`: no control character; use a letter or one of @ [ \\ ] ^ _ ?"
                ));
            }
            step(Action::SendControl(c))
        }
        "close-stdin" => {
            none()?;
            step(Action::CloseStdin)
        }
        "expect" => step(Action::Expect(regex()?)),
        "expect-exact" => step(Action::ExpectExact(text("TEXT")?)),
        "expect-line" => step(Action::ExpectLine(regex()?)),
        "wait-line" => step(Action::WaitLine(regex()?, None)),
        "silence" => step(Action::Silence(dur()?)),
        "expect-eof" => {
            none()?;
            step(Action::ExpectEof)
        }
        "exit-status" => {
            needs("a code, `any` or a signal name")?;
            step(Action::ExitStatus(parse_exits(word)?))
        }
        "signal" => {
            needs("a signal name")?;
            let sig = match word.parse::<i32>() {
                Ok(n) => Sig::from_number(n),
                Err(_) => Sig::from_name(word),
            };
            step(Action::Signal(sig.ok_or_else(|| {
                format!("`signal`: unknown signal {arg:?}; use a name such as TERM or SIGINT")
            })?))
        }
        "sleep" => step(Action::Sleep(dur()?)),
        "fail-on" => step(Action::FailOn(regex()?)),
        other => Err(format!(
            "unknown keyword `{other}`; the keywords are {KEYWORDS}"
        )),
    }
}

fn example(keyword: &str) -> &'static str {
    match keyword {
        "spawn" => "bc -q",
        "pty-size" => "24x80",
        "env" => "LC_ALL=C",
        "unset" => "PYTHONSTARTUP",
        "cwd" => "/tmp",
        "expect" | "expect-line" | "wait-line" => "^ready$",
        "fail-on" => "Traceback",
        "timeout" | "silence" | "sleep" | "deadline" => "500ms",
        "pace" => "20ms",
        "require" => "bc",
        "skip" | "xfail" => "needs a network",
        "tags" => "slow",
        "retries" => "2",
        "spawn-as" => "server nc -l 9000",
        "use" => "server",
        "respond" => "\\[y/N\\] => y\\n",
        "exit-status" => "0",
        "signal" => "TERM",
        "send-control" => "c",
        "newline" => "\\r\\n",
        _ => "hello",
    }
}

/// A name for `spawn-as` and `use`: letters, digits, `-` and `_`.
fn check_program_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a program name: use letters, digits, `-` and `_`"
        ))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('=') {
        Err(format!("{name:?} is not a variable name"))
    } else {
        Ok(())
    }
}

/// The control character for `c`, as pexpect's `sendcontrol`: a letter in
/// either case, or one of `@ [ \ ] ^ _ ?` (`?` is DEL).
pub fn control(c: char) -> Option<u8> {
    match c {
        'a'..='z' | 'A'..='Z' => Some(c.to_ascii_uppercase() as u8 - b'@'),
        '@' | '[' | '\\' | ']' | '^' | '_' => Some(c as u8 - b'@'),
        '?' => Some(0x7f),
        _ => None,
    }
}

fn parse_exits(word: &str) -> Result<Vec<Exit>, String> {
    let mut exits = Vec::new();
    for w in word.split_whitespace() {
        let exit = if w == "any" {
            Exit::Any
        } else if w.bytes().all(|b| b.is_ascii_digit()) {
            Exit::Code(i32::from(w.parse::<u8>().map_err(|_| {
                format!("`exit-status`: {w} is not a code from 0 to 255")
            })?))
        } else {
            Exit::Signal(Sig::from_name(w).ok_or_else(|| {
                format!(
                    "`exit-status` takes codes (0 to 255), `any` or a signal name such as \
                     SIGTERM; found {w:?}"
                )
            })?)
        };
        exits.push(exit);
    }
    if exits.len() > 1 && exits.contains(&Exit::Any) {
        return Err("`exit-status any` takes nothing else".into());
    }
    Ok(exits)
}

/// Splits `spawn`'s words as a shell does, without expansion: blanks
/// separate words; `'...'` is literal; in `"..."` a backslash escapes only
/// `"`, `\`, `$` and `` ` ``; elsewhere a backslash makes the next
/// character literal.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("`spawn`: a `'` is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("`spawn`: a `\"` is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("`spawn`: a `\"` is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => {
                        return Err(
                            "`spawn`: a lone `\\` at the end; write `\\\\` for a backslash".into(),
                        );
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Reads `${N}` or `${name}` at the start of `s` (which starts with `$`):
/// the group and the length of the reference.
fn group_at(s: &str) -> Option<(Group, usize)> {
    let inner = s.strip_prefix("${")?;
    let end = inner.find('}')?;
    let name = &inner[..end];
    let group = if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        Group::Index(name.parse().ok()?)
    } else if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Group::Name(name.to_string())
    } else {
        return None;
    };
    Some((group, end + 3))
}

/// A TEXT: escapes decoded, captured groups found.
fn parse_text(arg: &str, captures: &Captures) -> Result<Text, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = arg.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            // The escape goes whole to `unescape`, so `\x24{1}` stays literal.
            '\\' => {
                literal.push(c);
                if let Some((_, next)) = chars.next() {
                    literal.push(next);
                    if next == 'x' {
                        literal.extend(chars.by_ref().take(2).map(|(_, c)| c));
                    }
                }
            }
            '$' => match group_at(&arg[i..]) {
                Some((group, len)) => {
                    captures.check(&group)?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Bytes(unescape(&std::mem::take(&mut literal))?));
                    }
                    pieces.push(Piece::Group(group));
                    // A reference is ASCII: as many characters as bytes.
                    chars.by_ref().take(len - 1).for_each(drop);
                }
                None => literal.push(c),
            },
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Bytes(unescape(&literal)?));
    }
    Ok(Text { pieces })
}

/// A REGEX: split at its captured groups and checked (with a stand-in for
/// each group).
fn parse_regex(arg: &str, captures: &Captures) -> Result<Re, String> {
    let mut pieces = Vec::new();
    let mut syntax = String::new();
    let mut chars = arg.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            // `\$` is a literal dollar for the regex engine, never a group.
            '\\' => {
                syntax.push(c);
                if let Some((_, next)) = chars.next() {
                    syntax.push(next);
                }
            }
            '$' => match group_at(&arg[i..]) {
                Some((group, len)) => {
                    captures.check(&group)?;
                    if !syntax.is_empty() {
                        pieces.push(RePiece::Syntax(std::mem::take(&mut syntax)));
                    }
                    pieces.push(RePiece::Group(group));
                    chars.by_ref().take(len - 1).for_each(drop);
                }
                None => syntax.push(c),
            },
            c => syntax.push(c),
        }
    }
    if !syntax.is_empty() {
        pieces.push(RePiece::Syntax(syntax));
    }
    let mut re = Re {
        source: arg.to_string(),
        pieces,
        compiled: None,
        groups: Groups::default(),
    };
    let checked = compile(&re.expand(|_| "x".into()))
        .map_err(|e| format!("bad regex {arg:?}: {}", one_line(&e.to_string())))?;
    re.groups = Groups {
        len: checked.captures_len(),
        names: checked
            .capture_names()
            .flatten()
            .map(String::from)
            .collect(),
    };
    if re.references().next().is_none() {
        re.compiled = Some(checked);
    }
    Ok(re)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes `\n`, `\t`, `\r`, `\e` (ESC), `\xHH` (the byte HH) and `\\`;
/// anything else after a backslash is an error, so that a typo is not sent.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('e') => out.push(0x1b),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        out.push(b)
                    }
                    _ => {
                        return Err(format!(
                            "`\\x{hex}`: write \\x and two hex digits, e.g. \\x1b"
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}`; the escapes are \\n \\t \\r \\e \\xHH and \\\\"
                ));
            }
            None => return Err("a lone `\\` at the end; write `\\\\` for a backslash".into()),
        }
    }
    Ok(out)
}

/// Writes bytes as a TEXT that decodes to them: the inverse of `unescape`,
/// with `\x20` for a space at either edge (so it survives editors) and
/// `\x24` for a `$` that would start a captured group.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let text = String::from_utf8_lossy(bytes);
    let valid = matches!(text, std::borrow::Cow::Borrowed(_));
    let last = bytes.len().saturating_sub(1);
    let push_byte = |out: &mut String, i: usize, b: u8| match b {
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        b'\r' => out.push_str("\\r"),
        0x1b => out.push_str("\\e"),
        b'\\' => out.push_str("\\\\"),
        b' ' if i == 0 || i == last => out.push_str("\\x20"),
        b'$' if bytes.get(i + 1) == Some(&b'{') => out.push_str("\\x24"),
        b if b < 0x20 || b == 0x7f || b >= 0x80 => out.push_str(&format!("\\x{b:02x}")),
        b => out.push(b as char),
    };
    if valid {
        let mut i = 0;
        for c in text.chars() {
            if c.is_ascii() {
                push_byte(&mut out, i, c as u8);
            } else {
                out.push(c);
            }
            i += c.len_utf8();
        }
    } else {
        for (i, &b) in bytes.iter().enumerate() {
            push_byte(&mut out, i, b);
        }
    }
    out
}

/// Writes bytes as a REGEX that matches exactly them (for `duet record`):
/// regex syntax escaped, control characters, edge spaces and bytes that are
/// not UTF-8 as `\xHH`.
pub fn regex_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let last = bytes.len().saturating_sub(1);
    let mut i = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                ' ' if i == 0 || i == last => out.push_str("\\x20"),
                c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if regex_syntax_char(c) => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
            i += c.len_utf8();
        }
        for &b in chunk.invalid() {
            out.push_str(&format!("(?-u:\\x{b:02x})"));
            i += 1;
        }
    }
    out
}

fn regex_syntax_char(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

/// Writes `spawn`'s words so that `split_words` reads them back.
pub fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &str) -> Vec<Action> {
        parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .steps
            .into_iter()
            .map(|s| s.action)
            .collect()
    }

    fn errors(text: &str) -> Vec<(usize, String)> {
        parse(text)
            .map(|s| panic!("{text:?} parsed: {:?}", s.steps))
            .unwrap_err()
            .into_iter()
            .map(|e| (e.line, e.message))
            .collect()
    }

    fn bytes(text: &Text) -> Vec<u8> {
        text.literal().expect("no group")
    }

    #[test]
    fn parses_every_step_with_its_line() {
        let text = "# calc\n\ntimeout 2s\nsendline 2 + 2\nexpect ^4$\nsend quit\\n\n  expect-exact a\\tb\nexpect-eof\nexit-status 3\n";
        let script = parse(text).unwrap();
        let lines: Vec<usize> = script.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9]);
        let a: Vec<Action> = script.steps.into_iter().map(|s| s.action).collect();
        assert!(matches!(a[0], Action::Timeout(d) if d == Duration::from_secs(2)));
        assert!(matches!(&a[1], Action::SendLine(t) if bytes(t) == b"2 + 2"));
        assert!(
            matches!(&a[2], Action::Expect(r) if r.compiled.as_ref().unwrap().is_match(b"x\n4\n"))
        );
        assert!(matches!(&a[3], Action::Send(t) if bytes(t) == b"quit\n"));
        assert!(matches!(&a[4], Action::ExpectExact(t) if bytes(t) == b"a\tb"));
        assert!(matches!(a[5], Action::ExpectEof));
        assert!(matches!(&a[6], Action::ExitStatus(e) if e == &[Exit::Code(3)]));
    }

    #[test]
    fn the_argument_is_everything_after_one_space() {
        let a = steps(
            "sendline   two spaces  \nsendline\nsendline #1\r\nexpect  x \nsend-secret  pw\n",
        );
        assert!(matches!(&a[0], Action::SendLine(t) if bytes(t) == b"  two spaces  "));
        assert!(matches!(&a[1], Action::SendLine(t) if t.pieces.is_empty()));
        assert!(matches!(&a[2], Action::SendLine(t) if bytes(t) == b"#1"));
        assert!(matches!(&a[3], Action::Expect(r) if r.source == " x "));
        assert!(matches!(&a[4], Action::SendSecret(t) if bytes(t) == b" pw"));
    }

    #[test]
    fn text_escapes_include_raw_bytes() {
        assert_eq!(
            unescape(r"a\nb\tc\rd\ee\\f\x00\xFF\x7f").unwrap(),
            b"a\nb\tc\rd\x1be\\f\x00\xff\x7f"
        );
        assert!(unescape("end\\").unwrap_err().contains("lone"));
        assert!(
            unescape(r"\q")
                .unwrap_err()
                .contains("unknown escape `\\q`")
        );
        assert!(unescape(r"\x4").unwrap_err().contains("two hex digits"));
        assert!(unescape(r"\xzz").unwrap_err().contains("two hex digits"));
    }

    #[test]
    fn escape_is_the_inverse_of_unescape() {
        for b in [
            &b" lead and trail "[..],
            b"a\\b\n\t\r\x1b\x00\xff\xfe",
            "caf\u{e9} ${1} $x".as_bytes(),
            b"",
            b" ",
        ] {
            let text = escape(b);
            assert_eq!(unescape(&text).unwrap(), b, "{text:?}");
            assert!(!text.starts_with(' ') && !text.ends_with(' '), "{text:?}");
            let parsed = parse_text(&text, &Captures::default()).unwrap();
            assert_eq!(parsed.literal().unwrap(), b, "{text:?}");
        }
    }

    #[test]
    fn regexes_are_not_unescaped() {
        let a = steps(r"expect ^\d+\\$");
        assert!(
            matches!(&a[0], Action::Expect(r) if r.compiled.as_ref().unwrap().is_match(br"42\"))
        );
    }

    #[test]
    fn regex_literal_matches_exactly_its_bytes() {
        for b in [
            &b"a.b*c (x) [y] {z} ^$ | ? + \\ # & - ~"[..],
            b" edge ",
            b"\x1b[1mbold\x1b[0m\t",
            b"not utf8 \xff\xfe",
            "${1} caf\u{e9}".as_bytes(),
        ] {
            let src = format!("^{}$", regex_literal(b));
            let text = format!("expect-line {src}\n");
            let a = steps(&text);
            let Action::ExpectLine(re) = &a[0] else {
                panic!()
            };
            assert!(re.references().next().is_none(), "{src}");
            let compiled = re.compiled.as_ref().unwrap();
            assert!(compiled.is_match(b), "{src}");
            assert!(!src.ends_with(" $"), "{src}");
        }
    }

    #[test]
    fn header_lines_fill_the_header() {
        let script = parse(
            "spawn sh -c 'echo \"a b\"; exit 3' x\\ y \"q\\\"\" ''\npty on\npty-echo on\npty-size 30x100\nstderr merge\nenv A=b=c \nunset PYTHONSTARTUP\ncwd /tmp/a dir\nstrip-ansi on\nexpect-eof\n",
        )
        .unwrap();
        let h = script.header;
        assert_eq!(
            h.spawn,
            Some((
                1,
                vec![
                    "sh".to_string(),
                    "-c".into(),
                    "echo \"a b\"; exit 3".into(),
                    "x y".into(),
                    "q\"".into(),
                    "".into()
                ]
            ))
        );
        assert!(h.pty && h.pty_echo && h.strip_ansi);
        assert_eq!(h.pty_size, Some((30, 100)));
        assert_eq!(h.stderr, Some(Stderr::Merge));
        assert_eq!(
            h.env,
            [
                EnvChange::Set("A".into(), "b=c ".into()),
                EnvChange::Unset("PYTHONSTARTUP".into())
            ]
        );
        assert_eq!(h.cwd.as_deref(), Some("/tmp/a dir"));
    }

    #[test]
    fn spawn_words_are_not_expanded() {
        assert_eq!(
            split_words(r#"echo $HOME ~ * "$x" '\n' a\\b"#).unwrap(),
            ["echo", "$HOME", "~", "*", "$x", "\\n", "a\\b"]
        );
        assert!(split_words("a 'b").unwrap_err().contains("not closed"));
        assert!(split_words("a \"b").unwrap_err().contains("not closed"));
        let words = vec![
            "a b".to_string(),
            "it's".into(),
            "".into(),
            "plain-1.0".into(),
        ];
        assert_eq!(split_words(&quote_words(&words)).unwrap(), words);
    }

    #[test]
    fn new_steps_and_settings_parse() {
        let a = steps(
            "stream stderr\nnewline \\r\\n\nsend-control c\nsend-control [\nsend-control ?\nclose-stdin\nexpect-line ^ok\\r?$\nwait-line done\nwait-line:3 done\nsilence 300ms\nexit-status 0 1 SIGTERM\nexit-status any\nsignal INT\nsleep 1s\nfail-on Traceback\n",
        );
        assert!(matches!(a[0], Action::Stream(Stream::Stderr)));
        assert!(matches!(&a[1], Action::Newline(n) if n == b"\r\n"));
        assert!(matches!(a[2], Action::SendControl('c')));
        assert!(matches!(a[3], Action::SendControl('[')));
        assert!(matches!(a[4], Action::SendControl('?')));
        assert!(matches!(a[5], Action::CloseStdin));
        assert!(matches!(&a[6], Action::ExpectLine(r) if r.source == "^ok\\r?$"));
        assert!(matches!(&a[7], Action::WaitLine(_, None)));
        assert!(matches!(&a[8], Action::WaitLine(_, Some(3))));
        assert!(matches!(a[9], Action::Silence(d) if d == Duration::from_millis(300)));
        let term = Sig::from_name("TERM").unwrap();
        assert!(
            matches!(&a[10], Action::ExitStatus(e) if e == &[Exit::Code(0), Exit::Code(1), Exit::Signal(term)])
        );
        assert!(matches!(&a[11], Action::ExitStatus(e) if e == &[Exit::Any]));
        assert!(matches!(a[12], Action::Signal(s) if s.number == 2 && s.name == "SIGINT"));

        assert!(matches!(a[13], Action::Sleep(d) if d == Duration::from_secs(1)));
        assert!(matches!(&a[14], Action::FailOn(r) if r.source == "Traceback"));
    }

    #[test]
    fn control_and_signal_forms() {
        let a = steps("send-control ^c\nsend-control ^\nsignal 9\n");
        assert!(matches!(a[0], Action::SendControl('c')));
        assert!(matches!(a[1], Action::SendControl('^')));
        assert!(matches!(a[2], Action::Signal(s) if s.name == "SIGKILL"));
    }

    #[test]
    fn control_characters_follow_pexpect() {
        assert_eq!(control('c'), Some(3));
        assert_eq!(control('C'), Some(3));
        assert_eq!(control('@'), Some(0));
        assert_eq!(control('\\'), Some(0x1c));
        assert_eq!(control('_'), Some(0x1f));
        assert_eq!(control('1'), None);
    }

    #[test]
    fn captures_are_braced_and_checked() {
        let a = steps(
            "expect (\\d+) (?P<word>\\w+)\nsendline ${1}-${word}-${0} $ $1 ${ ${x y}\nexpect-line ^${1}+$\nsend \\x24{1}\n",
        );
        let Action::SendLine(t) = &a[1] else { panic!() };
        assert_eq!(
            t.pieces,
            [
                Piece::Group(Group::Index(1)),
                Piece::Bytes(b"-".to_vec()),
                Piece::Group(Group::Name("word".into())),
                Piece::Bytes(b"-".to_vec()),
                Piece::Group(Group::Index(0)),
                Piece::Bytes(b" $ $1 ${ ${x y}".to_vec()),
            ]
        );
        let Action::ExpectLine(re) = &a[2] else {
            panic!()
        };
        assert!(re.compiled.is_none());
        assert_eq!(re.expand(|_| "7\\.5".into()), "^(?:7\\.5)+$");
        assert!(matches!(&a[3], Action::Send(t) if bytes(t) == b"${1}"));
        // A regex's own `\$` is not a group.
        let a = steps("expect (x)\nexpect \\${1}\n");
        assert!(matches!(&a[1], Action::Expect(r) if r.compiled.is_some()));
        // Groups come from the last regex step.
        let e =
            errors("sendline ${1}\nexpect (a)(b)\nsend ${3}\nsend ${name}\nexpect-exact ${2}\n");
        assert_eq!(e.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 3, 4]);
        assert!(e[0].1.contains("there is none"), "{}", e[0].1);
        assert!(e[1].1.contains("line 2 has 2 group(s)"), "{}", e[1].1);
        assert!(e[2].1.contains("no group of that name"), "{}", e[2].1);
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let text = "sendline ok\nfrobnicate\nexpect (\ntimeout soon\nsend\nexit-status 300\nsend bad\\q\nexpect-eof now\npty maybe\nsignal NOPE\nsend-control cc\nwait-line:x a\nenv NOEQUALS\nspawn 'open\n";
        let e = errors(text);
        let lines: Vec<usize> = e.iter().map(|e| e.0).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        assert!(e[0].1.contains("unknown keyword `frobnicate`"));
        assert!(e[1].1.contains("bad regex \"(\""), "{}", e[1].1);
        assert!(e[2].1.contains("\"soon\""));
        assert!(e[3].1.contains("`send` needs TEXT"));
        assert!(e[4].1.contains("0 to 255"));
        assert!(e[5].1.contains("unknown escape `\\q`"));
        assert!(e[6].1.contains("takes no argument"));
        assert!(e[7].1.contains("`on` or `off`"));
        assert!(e[8].1.contains("unknown signal"));
        assert!(e[9].1.contains("one character"));
        assert!(e[10].1.contains("wait-line:N"));
        assert!(e[11].1.contains("NAME=VALUE"));
        assert!(e[12].1.contains("not closed"));
        let first = ParseError {
            line: 2,
            message: e[0].1.clone(),
        };
        assert_eq!(first.to_string(), format!("2: {}", e[0].1));
    }

    #[test]
    fn header_lines_after_a_step_and_contradictions_are_errors() {
        let e = errors("spawn cat\nsendline a\npty on\nspawn cat\n");
        assert_eq!(e.len(), 2);
        assert!(e[0].1.contains("before the first step") && e[0].1.contains("line 2"));
        // Settings and fail-on may come before header lines.
        let script = parse("timeout 1s\nfail-on x\nspawn cat\nexpect-eof\n").unwrap();
        assert!(script.header.spawn.is_some());
        let e = errors("spawn a\nspawn b\nexpect-eof\n");
        assert!(e[0].1.contains("second `spawn`"));
        let e = errors("pty-echo on\npty-size 2x3\nstream stderr\nexpect-eof\n");
        assert_eq!(e.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        let e = errors("pty on\nstream stderr\nexpect-eof\n");
        assert!(e[0].1.contains("stderr separate"));
        let e = errors("stderr merge\nstream stderr\nexpect-eof\n");
        assert!(e[0].1.contains("merged"));
        assert!(parse("pty on\nstderr separate\nstream stderr\nexpect-eof\n").is_ok());
    }

    #[test]
    fn an_empty_script_is_an_error() {
        for text in ["", "\n\n", "# only a comment\n", "spawn cat\ntimeout 1s\n"] {
            let e = errors(text);
            assert_eq!(e.len(), 1, "{text:?}");
            assert_eq!(e[0].0, 1);
            assert!(
                e[0].1.contains("empty") || e[0].1.contains("no steps"),
                "{}",
                e[0].1
            );
        }
    }

    #[test]
    fn third_release_header_lines_fill_the_header() {
        let script = parse(
            "require bc  dc\nrequire /bin/sh\nskip not today\nxfail a known bug\ntags slow net\n\
             retries 3\ndeadline 2m\nspawn cat\nspawn-as server sh -c 'read x'\nspawn-as b-2 cat\nexpect-eof\n",
        )
        .unwrap();
        let h = script.header;
        assert_eq!(h.require, ["bc", "dc", "/bin/sh"]);
        assert_eq!(h.skip.as_deref(), Some("not today"));
        assert_eq!(h.xfail.as_deref(), Some("a known bug"));
        assert_eq!(h.tags, ["slow", "net"]);
        assert_eq!(h.retries, Some(3));
        assert_eq!(h.deadline, Some(Duration::from_secs(120)));
        assert_eq!(
            h.others,
            [
                Other {
                    line: 9,
                    name: "server".into(),
                    words: vec!["sh".into(), "-c".into(), "read x".into()]
                },
                Other {
                    line: 10,
                    name: "b-2".into(),
                    words: vec!["cat".into()]
                }
            ]
        );
    }

    #[test]
    fn use_pace_respond_and_interact_parse() {
        let a = steps(
            "spawn-as peer cat\nuse peer\npace 20ms\nrespond \\[y/N\\]\\x20 => y\\n\nrespond a\\x3d> b => c => d\ninteract\nuse main\n",
        );
        assert!(matches!(&a[0], Action::Use(n) if n == "peer"));
        assert!(matches!(a[1], Action::Pace(d) if d == Duration::from_millis(20)));
        assert!(
            matches!(&a[2], Action::Respond(re, t) if re.source == "\\[y/N\\]\\x20" && bytes(t) == b"y\n")
        );
        // The first ` => ` separates; the reply keeps any later one.
        assert!(
            matches!(&a[3], Action::Respond(re, t) if re.source == "a\\x3d> b" && bytes(t) == b"c => d")
        );
        assert!(matches!(a[4], Action::Interact));
        assert!(matches!(&a[5], Action::Use(n) if n == MAIN));
        // Settings and watches do not end the header.
        assert!(parse("respond x => y\nuse main\npace 1ms\nspawn cat\nexpect-eof\n").is_ok());
    }

    #[test]
    fn third_release_mistakes_are_errors_with_their_lines() {
        let e = errors(
            "spawn cat\nspawn-as main cat\nspawn-as x\nspawn-as a cat\nspawn-as a cat\nretries many\n\
             skip\nrespond no arrow\nrespond  => y\nuse nobody\ninteract now\nspawn-as b@d cat\nexpect-eof\n",
        );
        let lines: Vec<usize> = e.iter().map(|e| e.0).collect();
        assert_eq!(lines, [2, 3, 5, 6, 7, 8, 9, 10, 11, 12], "{e:?}");
        assert!(e[0].1.contains("`main` is the program of `spawn`"));
        assert!(e[1].1.contains("needs a NAME and a program"));
        assert!(e[2].1.contains("a second program named `a` (line 4)"));
        assert!(e[3].1.contains("a number of runs"));
        assert!(e[4].1.contains("`skip` needs a REASON"));
        assert!(e[5].1.contains("REGEX => TEXT"));
        assert!(e[6].1.contains("needs a REGEX before"));
        assert!(
            e[7].1
                .contains("no program has that name (the programs are main, a;"),
            "{}",
            e[7].1
        );
        assert!(e[8].1.contains("takes no argument"));
        assert!(e[9].1.contains("not a program name"));
        let e = errors("spawn cat\nsendline x\nrequire bc\n");
        assert!(e[0].1.contains("before the first step"));
    }

    #[test]
    fn signals_have_linux_numbers() {
        assert_eq!(Sig::from_name("sigkill").unwrap().number, 9);
        assert_eq!(Sig::from_name("USR1").unwrap().number, 10);
        assert_eq!(Sig::from_number(15).unwrap().name, "SIGTERM");
        assert!(Sig::from_name("SIG").is_none());
    }
}
