//! The command line: the clap definition of `duet` and its subcommands, and
//! dispatch to one module per subcommand. Each subcommand turns its
//! arguments into a validated configuration, then runs it through the
//! public library API.
//!
//! This is the top of the crate's layers: it names every subcommand, and no
//! subcommand names it (the exit codes live in [`crate::exit`], the shared
//! arguments in [`crate::args`]).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::args::shell_quote;
use crate::exit::Failure;
use crate::{ask, chat, completions, record, recv, run, script, send, serve, status, stop, test};

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

/// The subcommands that take `-- PROG ARGS`.
const TAKE_A_PROGRAM: [&str; 5] = ["run", "chat", "script", "serve", "record"];

/// Parses duet's command line, exiting as clap does on a usage error (2)
/// or `--help`. A program given without `--` (`duet run true`) is an
/// unexpected argument to clap; the error then shows where `--` goes.
pub fn parse() -> Cli {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    Cli::try_parse_from(&argv).unwrap_or_else(|mut err| {
        if let Some(tip) = dash_dash_tip(&err, &argv) {
            use clap::error::{ContextKind, ContextValue};
            err.insert(
                ContextKind::Suggested,
                ContextValue::StyledStrs(vec![tip.into()]),
            );
        }
        err.exit()
    })
}

/// `put \`--\` before the program: duet run -- true` for an unexpected
/// word (not an option) after a subcommand that takes a program.
fn dash_dash_tip(err: &clap::Error, argv: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    if word.starts_with('-') {
        return None;
    }
    let words: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let sub = words
        .iter()
        .position(|w| TAKE_A_PROGRAM.contains(&w.as_str()))?;
    let at = sub + 1 + words[sub + 1..].iter().position(|w| w == word)?;
    let mut fixed: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    fixed.insert(at, "--".into());
    Some(format!(
        "put `--` before the program: duet {}",
        fixed.join(" ")
    ))
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
        Command::Completions(args) => completions::completions(args, Cli::command()),
        Command::Man(args) => completions::man(args, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
