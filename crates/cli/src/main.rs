//! `duet`: wrap, converse with, script and serve programs that speak line
//! protocols. A thin layer over the `duet` and `duet_script` libraries; see
//! `duet --help`.
//!
//! Layers, each using only those below it: [`cli`] (the command line and
//! dispatch) → one module per subcommand (`serve`, with
//! [`serve::protocol`] shared by its clients) → [`framing`] → [`args`], [`exit`].
#![deny(unsafe_code, missing_docs, missing_debug_implementations)]

mod args;
mod ask;
mod chat;
mod cli;
mod completions;
mod exit;
mod framing;
mod logging;
mod ready;
mod record;
mod recv;
mod run;
mod script;
mod script_manual;
mod send;
mod serve;
mod status;
mod stop;
mod test;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::parse();
    logging::init(args.verbose);
    match cli::run(args) {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}
