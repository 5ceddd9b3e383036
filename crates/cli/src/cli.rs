//! The command line: clap definitions, the exit-code table, and dispatch to
//! one module per subcommand. Each subcommand turns its arguments into a
//! validated configuration, then runs it through the public library API.
//!
//! Exit codes (coreutils `timeout`/`env` conventions):
//!
//! | code | meaning |
//! |------|---------|
//! | PROG's | PROG's own exit code |
//! | 128+N | PROG died of signal N |
//! | 1 | a script step failed (also parse errors), a `test` script failed, `ask`/`recv` got no reply |
//! | 2 | bad usage (clap) |
//! | 124 | a timeout |
//! | 125 | duet itself failed |
//! | 126 | PROG was found but cannot be run |
//! | 127 | PROG was not found |

pub use duet_script::duration;

use crate::{ask, chat, completions, record, recv, run, script, send, serve, status, stop, test};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Drive programs that speak line protocols: wrap, converse, script, serve.
#[derive(Debug, Parser)]
#[command(
    name = "duet",
    version,
    after_help = "Example: printf '2+2\\n3*3\\n' | duet chat -- bc -q"
)]
pub struct Cli {
    /// Log to stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Chat(chat::ChatArgs),
    Script(script::ScriptArgs),
    Serve(serve::ServeArgs),
    Ask(ask::AskArgs),
    Send(send::SendArgs),
    Recv(recv::RecvArgs),
    Status(status::StatusArgs),
    Stop(stop::StopArgs),
    Test(test::TestArgs),
    Record(record::RecordArgs),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Script(args) => script::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Ask(args) => ask::run(args),
        Command::Send(args) => send::run(args),
        Command::Recv(args) => recv::run(args),
        Command::Status(args) => status::run(args),
        Command::Stop(args) => stop::run(args),
        Command::Test(args) => test::run(args),
        Command::Record(args) => record::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}

/// `-- PROG ARGS`, shared by the subcommands that start a program.
#[derive(Clone, Debug, Args)]
pub struct Program {
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROG ARGS")]
    pub argv: Vec<OsString>,
    /// Where PROG runs: here, or on another host.
    #[command(flatten)]
    pub remote: Remote,
}

/// `--ssh HOST` and `--ssh-option OPT`: PROG runs on HOST through OpenSSH
/// (`Command::ssh`), for every subcommand that starts a program.
#[derive(Clone, Debug, Default, Args)]
pub struct Remote {
    /// Run PROG on HOST ([user@]host) through OpenSSH.
    ///
    /// Arguments arrive exactly as given, signals and stops reach the
    /// remote program, and spawns to one host share a connection.
    #[arg(long, value_name = "HOST")]
    pub ssh: Option<OsString>,
    /// An ssh option for --ssh, as with `ssh -o` (repeatable), e.g.
    /// Port=2222.
    #[arg(long = "ssh-option", value_name = "OPT", requires = "ssh")]
    pub ssh_options: Vec<OsString>,
}

impl Remote {
    /// Sets the host and options on `cmd` (nothing without `--ssh`).
    pub fn apply(&self, cmd: &mut duet::Command) {
        if let Some(host) = &self.ssh {
            cmd.ssh(host);
            for opt in &self.ssh_options {
                cmd.ssh_option(opt);
            }
        }
    }
}

impl From<Remote> for duet_script::Remote {
    fn from(r: Remote) -> duet_script::Remote {
        duet_script::Remote {
            ssh: r.ssh,
            ssh_options: r.ssh_options,
        }
    }
}

impl Program {
    /// A library command for PROG with its arguments (on the `--ssh` host
    /// when one was given).
    pub fn command(&self) -> duet::Command {
        let mut cmd = duet::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        self.remote.apply(&mut cmd);
        cmd
    }

    /// The program's name, for messages.
    pub fn name(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }
}

/// `--restart WHEN` for `run` and `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartArg {
    /// Never: PROG's exit ends duet.
    Never,
    /// After PROG exits with a non-zero code or dies of a signal.
    OnFailure,
    /// After every exit, whatever the status.
    Always,
}

impl From<RestartArg> for duet::supervise::Restart {
    fn from(arg: RestartArg) -> Self {
        match arg {
            RestartArg::Never => duet::supervise::Restart::Never,
            RestartArg::OnFailure => duet::supervise::Restart::OnFailure,
            RestartArg::Always => duet::supervise::Restart::Always,
        }
    }
}

/// The one line on stderr per restart (as supervisors log them):
/// `duet: ./server exited with code 3; restart 1 of 5`.
pub fn report_restart(program: &Program, sup: &duet::supervise::Supervisor) {
    let how = sup.last_status().map_or_else(|| "ended".to_string(), ended);
    let count = match sup.policy().max_restarts {
        Some(max) => format!("{} of {max}", sup.restarts()),
        None => sup.restarts().to_string(),
    };
    eprintln!("duet: {} {how}; restart {count}", program.name());
}

/// Creates (truncates) a transcript file and writes its header; the engine
/// writes the records (`Child::set_transcript`): seconds since start, `>`
/// sent, `<` stdout, `!` stderr, `#` events, then the bytes of one line,
/// escaped (`\n`, `\t`, `\xNN`, ...).
pub fn open_transcript(
    path: &std::path::Path,
    program: &Program,
) -> Result<std::fs::File, Failure> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| {
        Failure::internal(format!(
            "cannot create the transcript {}: {e}",
            path.display()
        ))
    })?;
    let words: Vec<String> = program
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    writeln!(file, "# duet transcript: {}", words.join(" ")).map_err(|e| {
        Failure::internal(format!(
            "cannot write the transcript {}: {e}",
            path.display()
        ))
    })?;
    Ok(file)
}

/// A duration option value (`500ms`, `5s`, `2m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

/// Why duet stops with an exit code other than PROG's.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// What failed and what to do; empty for a quiet exit.
    pub message: String,
}

/// Exit code for a timeout.
pub const TIMEOUT: u8 = 124;
/// Exit code for duet's own failure.
pub const INTERNAL: u8 = 125;
/// Exit code for a program that cannot be run.
pub const NOT_EXECUTABLE: u8 = 126;
/// Exit code for a program that is not found.
pub const NOT_FOUND: u8 = 127;

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: u8, message: impl fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }

    /// duet's own failure (125).
    pub fn internal(message: impl fmt::Display) -> Failure {
        Failure::new(INTERNAL, message)
    }

    /// A quiet exit with `code`: the reason has been shown or needs no words
    /// (stdout was closed by its reader).
    pub fn quiet(code: u8) -> Failure {
        Failure {
            code,
            message: String::new(),
        }
    }

    /// A library error, with the exit code its kind calls for.
    pub fn from_error(err: duet::Error) -> Failure {
        match &err {
            duet::Error::Spawn { source, .. } => {
                let (code, hint) = match source.kind() {
                    io::ErrorKind::NotFound => (NOT_FOUND, "check the name and PATH"),
                    io::ErrorKind::PermissionDenied => {
                        (NOT_EXECUTABLE, "check that it is an executable file")
                    }
                    _ => (NOT_EXECUTABLE, "check the program and its directory"),
                };
                Failure::new(code, format!("{err}; {hint}"))
            }
            duet::Error::Timeout {
                waited,
                expected,
                partial,
                ..
            } => {
                let arrived = if partial.is_empty() {
                    "nothing arrived".to_string()
                } else {
                    format!("received {partial:?}")
                };
                Failure::new(
                    TIMEOUT,
                    format!(
                        "timed out after {} waiting for {expected}; {arrived}",
                        duration::show(*waited)
                    ),
                )
            }
            _ => Failure::internal(err),
        }
    }

    /// An error writing duet's own stdout: a closed pipe is a quiet exit 0
    /// (the reader has what it wanted, as with `| head`).
    pub fn stdout(err: io::Error) -> Failure {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Failure::quiet(0)
        } else {
            Failure::internal(format!("cannot write to stdout: {err}"))
        }
    }
}

impl From<duet::Error> for Failure {
    fn from(err: duet::Error) -> Failure {
        Failure::from_error(err)
    }
}

/// How PROG ended, as the end of a sentence whose subject is PROG:
/// `exited with code 3`, `was killed by signal 9 (SIGKILL)`.
pub fn ended(status: duet::ExitStatus) -> String {
    if status.signal().is_some() {
        format!("was {status}")
    } else {
        status.to_string()
    }
}

/// PROG's status as duet's exit code: its code, or 128+N for signal N.
pub fn exit_code(status: duet::ExitStatus) -> ExitCode {
    ExitCode::from(status.shell_code().clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
