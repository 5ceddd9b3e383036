//! Arguments that several subcommands share: `-- PROG ARGS` and where PROG
//! runs (`--ssh`), when it restarts (`--restart`), durations (`500ms`,
//! `5s`, `2m`), and the lines and files duet writes about PROG (restart
//! reports, transcripts).

use std::ffi::OsString;
use std::time::Duration;

use clap::Args;
use duet_script::duration;

use crate::exit::{Failure, ended};

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
    // `[user@]` is for people reading --help, not a rustdoc link.
    #[allow(rustdoc::broken_intra_doc_links)]
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

/// The options as the script crate's `Remote`, which also sets them on a
/// command: one place says how `--ssh` reaches `duet::Command`.
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
        duet_script::Remote::from(self.remote.clone()).apply(&mut cmd);
        cmd
    }

    /// The program's name, for messages.
    pub fn name(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }
}

/// `--env NAME=VALUE` (repeatable), for `run`, `chat` and `serve`.
#[derive(Clone, Debug, Default, Args)]
pub struct EnvArgs {
    /// Set NAME to VALUE in PROG's environment (repeatable), e.g.
    /// `--env LC_ALL=C`; on a pty `chat` and `serve` set TERM=dumb unless
    /// this sets TERM.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub vars: Vec<(OsString, OsString)>,
}

impl EnvArgs {
    /// Sets the variables on `cmd`; with `dumb_term` (a pty under `chat`
    /// or `serve`), TERM=dumb first unless a variable sets TERM: readline's
    /// bracketed paste and colours stay out of replies.
    pub fn apply(&self, cmd: &mut duet::Command, dumb_term: bool) {
        if dumb_term && !self.vars.iter().any(|(name, _)| name == "TERM") {
            cmd.env("TERM", "dumb");
        }
        for (name, value) in &self.vars {
            cmd.env(name, value);
        }
    }
}

/// `NAME=VALUE` for `--env`: NAME non-empty, without `=`; VALUE taken as
/// it is (it may hold `=` and be empty).
fn parse_env(text: &str) -> Result<(OsString, OsString), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => {
            Ok((OsString::from(name), OsString::from(value)))
        }
        _ => Err(format!("{text:?} is not NAME=VALUE (e.g. --env LC_ALL=C)")),
    }
}

/// `--merge-stderr` and `--strip-ansi`, for `chat` and `serve`.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct OutputArgs {
    /// PROG's stderr joins its stdout before replies are framed (for
    /// prompts and errors written to stderr, as `python3 -i` does).
    #[arg(long)]
    pub merge_stderr: bool,
    /// Remove terminal escape sequences (colours, cursor motion, bracketed
    /// paste) from PROG's output before replies are framed.
    #[arg(long)]
    pub strip_ansi: bool,
}

impl OutputArgs {
    /// Sets both on `cmd`.
    pub fn apply(&self, cmd: &mut duet::Command) {
        if self.merge_stderr {
            cmd.merge_stderr(true);
        }
        cmd.strip_ansi(self.strip_ansi);
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
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect();
    writeln!(file, "# duet transcript: {}", words.join(" ")).map_err(|e| {
        Failure::internal(format!(
            "cannot write the transcript {}: {e}",
            path.display()
        ))
    })?;
    Ok(file)
}

/// `word` as a POSIX shell reads it back as one word: bare when it holds
/// only characters no shell treats specially, else in single quotes (a
/// quote inside written `'\''`).
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A duration option value (`500ms`, `5s`, `2m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("./server"), "./server");
        assert_eq!(shell_quote("--port=80"), "--port=80");
        assert_eq!(shell_quote("exit 3"), "'exit 3'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
