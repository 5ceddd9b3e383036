//! duet's own logs: env_logger to stderr, set up once by `main` (the
//! libraries only use the `log` macros).

use std::io::Write;

/// Logs go to stderr only: `-v` shows info, `-vv` debug, `-vvv` trace;
/// `RUST_LOG` (env_logger syntax) overrides them. Each record names duet's
/// pid, since `serve --daemon` and its clients share one log.
pub fn init(verbose: u8) {
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
