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
