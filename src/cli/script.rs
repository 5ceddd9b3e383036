//! The expect/send script format, parsed before anything runs.
//!
//! One step per line:
//!
//! ```text
//! # a comment; blank lines are ignored too
//! timeout 2s            # the limit for each following expect (default: --timeout)
//! sendline 2+2          # TEXT and a newline
//! expect ^4$            # a regex, searched in the output (multi-line mode)
//! send quit\n           # TEXT as is, no newline added
//! send-secret pw\n       # like send, but the transcript shows only its length
//! expect-exact OK       # a literal text
//! expect-eof            # the program closes its output
//! exit-status 0         # the program exits with this code
//! ```
//!
//! The keyword is separated from its argument by whitespace; the argument is
//! the rest of the line, kept as written. In `send`, `send-secret`, `sendline` and
//! `expect-exact` the escapes `\n`, `\t` and `\\` are decoded (any other
//! backslash is an error, so that a typo is not sent). An `expect` argument
//! goes to the regex engine untouched: it reads `\n`, `\t`, `\\` and `\d`
//! itself. A `#` starts a comment only at the beginning of a line, so
//! `sendline #1` sends `#1`.
//!
//! `exit-status N` closes PROG's stdin (many programs exit at end of input),
//! waits up to the current timeout for PROG to exit, and checks its code.
//! After the last step PROG's stdin is closed too; a PROG still running
//! after the timeout is terminated. Parse errors and failed steps exit 1.

mod syntax;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::Failure;
use super::duration;
pub use syntax::{Action, Step, parse};

/// Run an expect/send script against PROG (for CI).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: duet script check.duet --timeout 5s -- bc -q")]
pub struct ScriptArgs {
    /// The script: send, sendline, expect, expect-exact, expect-eof,
    /// timeout, exit-status, # comments.
    file: PathBuf,
    /// The limit for each expect until a `timeout` step changes it.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = super::parse_duration)]
    timeout: Duration,
    /// Write every byte both ways to FILE, tagged with direction and time.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// Run PROG on a pseudo-terminal.
    #[arg(long)]
    pty: bool,
    #[command(flatten)]
    program: super::Program,
}

/// Exit code of a failed script (a step or the script's syntax).
const SCRIPT_FAILED: u8 = 1;

/// Runs `duet script`: parse the whole file, then run the steps in order.
pub fn run(args: ScriptArgs) -> Result<ExitCode, Failure> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::new(SCRIPT_FAILED, format!("cannot read the script {file}: {e}")))?;
    let steps = parse(&text).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("{file}:{e}")).collect();
        Failure::new(
            SCRIPT_FAILED,
            format!(
                "the script has {} error(s); nothing was run:\n{}",
                errors.len(),
                lines.join("\n")
            ),
        )
    })?;
    let transcript = match &args.transcript {
        Some(path) => Some(super::open_transcript(path, &args.program)?),
        None => None,
    };
    let mut cmd = args.program.command();
    cmd.timeout(args.timeout).pty(args.pty);
    let mut child = cmd.spawn()?;
    if let Some(file) = transcript {
        child.set_transcript(file);
    }
    let mut runner = Runner {
        child,
        timeout: args.timeout,
        recent: Vec::new(),
        transcript: args.transcript.clone(),
    };
    for step in &steps {
        log::debug!("script: line {}: {}", step.line, step.source.trim());
        if let Err(problem) = runner.step(step) {
            let message = runner.report(&file, step, &problem);
            let _ = runner.child.terminate(Duration::from_secs(1));
            return Err(Failure::new(SCRIPT_FAILED, message));
        }
    }
    runner.finish();
    Ok(ExitCode::SUCCESS)
}

/// Why a step failed.
struct Problem {
    /// What happened, e.g. `timed out after 2s`.
    what: String,
    /// Output that arrived and was not consumed.
    partial: Vec<u8>,
}

struct Runner {
    child: duet::Child,
    timeout: Duration,
    /// The tail of the output consumed so far, for failure reports.
    recent: Vec<u8>,
    /// The transcript's path, for the failure report.
    transcript: Option<PathBuf>,
}

/// How much consumed output a failure report keeps.
const RECENT_LIMIT: usize = 4096;

impl Runner {
    fn step(&mut self, step: &Step) -> Result<(), Problem> {
        match &step.action {
            Action::Send(text) => self.send(text.as_bytes()),
            Action::SendLine(text) => self.send(format!("{text}\n").as_bytes()),
            Action::SendSecret(text) => self.child.send_secret(text).map_err(|e| Problem {
                what: format!("cannot write to the program: {e}"),
                partial: Vec::new(),
            }),
            Action::Timeout(d) => {
                self.timeout = *d;
                Ok(())
            }
            Action::Expect(re) => {
                let pattern = duet::Pattern::regex(re.as_str()).map_err(|e| Problem {
                    what: e.to_string(),
                    partial: Vec::new(),
                })?;
                self.expect(pattern)
            }
            Action::ExpectExact(text) => self.expect(duet::Pattern::exact(text)),
            Action::ExpectEof => self.expect(duet::Pattern::Eof),
            Action::ExitStatus(code) => self.exit_status(*code),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Problem> {
        self.child.send_bytes(bytes).map_err(|e| Problem {
            what: format!("cannot write to the program: {e}"),
            partial: Vec::new(),
        })
    }

    fn expect(&mut self, pattern: duet::Pattern) -> Result<(), Problem> {
        match self.child.expect_timeout(pattern, self.timeout) {
            Ok(m) => {
                let mut consumed = m.before().as_bytes().to_vec();
                consumed.extend_from_slice(m.as_str().as_bytes());
                self.consumed(&consumed);
                Ok(())
            }
            Err(duet::Error::Timeout { partial, .. }) => Err(Problem {
                what: format!("timed out after {}", duration::show(self.timeout)),
                partial: partial.into_bytes(),
            }),
            Err(duet::Error::Eof {
                partial, status, ..
            }) => {
                let status = match status {
                    Some(s) => format!(" and {s}"),
                    None => String::new(),
                };
                Err(Problem {
                    what: format!("the program closed its output{status}"),
                    partial: partial.into_bytes(),
                })
            }
            Err(e) => Err(Problem {
                what: e.to_string(),
                partial: Vec::new(),
            }),
        }
    }

    fn exit_status(&mut self, code: i32) -> Result<(), Problem> {
        // The program may wait for its input to end before it exits.
        let _ = self.child.close_stdin();
        match self.child.wait_timeout(self.timeout) {
            Ok(Some(status)) if status.code() == Some(code) => Ok(()),
            Ok(Some(status)) => Err(Problem {
                what: format!("the program {status}"),
                partial: Vec::new(),
            }),
            Ok(None) => Err(Problem {
                what: format!(
                    "the program was still running after {}",
                    duration::show(self.timeout)
                ),
                partial: Vec::new(),
            }),
            Err(e) => Err(Problem {
                what: e.to_string(),
                partial: Vec::new(),
            }),
        }
    }

    fn consumed(&mut self, bytes: &[u8]) {
        self.recent.extend_from_slice(bytes);
        if self.recent.len() > RECENT_LIMIT {
            self.recent.drain(..self.recent.len() - RECENT_LIMIT);
        }
    }

    /// The failure report: the step and its line, what was expected, what
    /// happened, the last output received, the transcript.
    fn report(&self, file: &str, step: &Step, problem: &Problem) -> String {
        let mut output = self.recent.clone();
        output.extend_from_slice(&problem.partial);
        let mut msg = format!(
            "{file}:{}: step `{}` failed: {}\n  expected: {}\n",
            step.line,
            step.source.trim(),
            problem.what,
            expected(&step.action)
        );
        let tail = last_lines(&output, 5);
        if tail.is_empty() {
            msg.push_str("  last output: (nothing)\n");
        } else {
            msg.push_str("  last output:\n");
            for line in tail {
                msg.push_str(&format!("    | {line}\n"));
            }
        }
        if let Some(path) = &self.transcript {
            msg.push_str(&format!("  transcript: {}\n", path.display()));
        }
        msg.trim_end().to_string()
    }

    /// After the last step: end PROG's input and give it a moment to exit;
    /// one still running after the current timeout is terminated.
    fn finish(mut self) {
        let _ = self.child.close_stdin();
        match self.child.wait_timeout(self.timeout) {
            Ok(Some(status)) => log::info!("script: the program {status}"),
            _ => match self.child.terminate(Duration::from_secs(1)) {
                Ok(status) => log::info!("script: stopped the program after the script: {status}"),
                Err(e) => log::warn!("cannot stop the program: {e}"),
            },
        }
    }
}

fn expected(action: &Action) -> String {
    match action {
        Action::Expect(re) => format!(
            "output matching {:?}",
            re.as_str().trim_start_matches("(?m)")
        ),
        Action::ExpectExact(text) => format!("the text {text:?}"),
        Action::ExpectEof => "the end of the output".into(),
        Action::ExitStatus(code) => format!("exit with code {code}"),
        Action::Send(text) | Action::SendLine(text) => format!("to send {text:?}"),
        Action::SendSecret(text) => format!("to send a secret ({} bytes)", text.len()),
        Action::Timeout(_) => "nothing".into(),
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
        .map(|l| super::framing::trim_cr(l).escape_ascii().to_string())
        .collect()
}
