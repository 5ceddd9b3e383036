//! `duet`: wrap, converse with, script and serve programs that speak line
//! protocols. A thin layer over the `duet` library; see `duet --help`.
#![deny(unsafe_code, missing_docs, missing_debug_implementations)]

mod ask;
mod chat;
mod cli;
mod completions;
mod framing;
mod record;
mod recv;
mod run;
mod script;
mod send;
mod serve;
mod served;
mod status;
mod stop;
mod test;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_logging(args.verbose);
    match cli::run(args) {
        Ok(code) => code,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("duet: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Logs go to stderr only: `-v` shows info, `-vv` debug, `-vvv` trace;
/// `RUST_LOG` (env_logger syntax) overrides them.
fn init_logging(verbose: u8) {
    use std::io::Write;
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("RUST_LOG")
        .target(env_logger::Target::Stderr)
        .format(|f, record| {
            writeln!(
                f,
                "duet[{}]: {}: {}",
                std::process::id(),
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
}
