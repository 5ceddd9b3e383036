//! `duet completions SHELL` and `duet man`: shell completions and manual
//! pages generated from the same definitions that parse the command line,
//! so they never fall out of date.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::exit::Failure;

/// Print a completion script for SHELL to stdout.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: duet completions bash > ~/.local/share/bash-completion/completions/duet"
)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print the manual page (roff) to stdout, or write one page per command.
#[derive(Debug, Args)]
#[command(after_help = "Example: duet man | man -l -")]
pub struct ManArgs {
    /// Write duet.1, a duet-COMMAND.1 page per subcommand and duet-script.5 (the script language) into DIR.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Runs `duet completions` for `cmd`, the definition of the whole command
/// line.
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> Result<ExitCode, Failure> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "duet", &mut out);
    io::stdout()
        .write_all(&out)
        .and_then(|()| io::stdout().flush())
        .map_err(Failure::stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `duet man` for `cmd`, the definition of the whole command line.
pub fn man(args: ManArgs, cmd: clap::Command) -> Result<ExitCode, Failure> {
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::internal(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, &dir)
                .and_then(|()| crate::script_manual::write_to(&dir))
                .map_err(|e| {
                    Failure::internal(format!("cannot write the pages to {}: {e}", dir.display()))
                })?;
            println!("{}", dir.display());
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| Failure::internal(format!("cannot render the page: {e}")))?;
            io::stdout()
                .write_all(&out)
                .and_then(|()| io::stdout().flush())
                .map_err(Failure::stdout)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
