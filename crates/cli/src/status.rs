//! `duet status DIR`: is the service running, its pids, uptime, restarts.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::exit::Failure;
use crate::serve::protocol;

/// Show whether DIR is served: pids, uptime, restarts. Exit 0 when running.
#[derive(Debug, Args)]
#[command(after_help = "Example: duet status /tmp/calc")]
pub struct StatusArgs {
    /// The served directory.
    dir: PathBuf,
}

/// Runs `duet status`: prints `key: value` lines; exits 0 when running, 1
/// when not (a missing or stale directory).
pub fn run(args: StatusArgs) -> Result<ExitCode, Failure> {
    let dir = protocol::open_dir(&args.dir)?;
    let alive = protocol::is_alive(&dir)?;
    let state = protocol::read_state(&dir);
    let mut lines = vec![format!("dir: {}", args.dir.display())];
    match (&state, alive) {
        (Ok(s), _) if s.ended.is_some() => {
            lines.push(format!(
                "running: no (ended: {}; `duet stop` or a new `duet serve` clears it)",
                s.ended.as_deref().unwrap_or_default()
            ));
            lines.push(format!("program: {}", s.program.join(" ")));
            lines.push(format!("restarts: {}", s.restarts));
        }
        (Ok(s), true) => {
            let uptime = protocol::now_secs().saturating_sub(s.started);
            lines.push("running: yes".into());
            lines.push(format!("pid: {}", s.pid));
            lines.push(format!(
                "child: {}",
                s.child.map_or("none".to_string(), |c| c.to_string())
            ));
            lines.push(format!("program: {}", s.program.join(" ")));
            lines.push(format!("uptime: {uptime}s"));
            lines.push(format!("restarts: {}", s.restarts));
            lines.push(match &s.not_answering {
                None => "answering: yes".to_string(),
                Some(why) => format!("answering: no ({why})"),
            });
        }
        (Ok(s), false) => {
            lines.push(format!(
                "running: no (stale: serve pid {} is gone; `duet stop` or a new `duet serve` cleans up)",
                s.pid
            ));
        }
        (Err(_), true) => lines.push("running: yes (starting)".into()),
        (Err(_), false) => lines.push("running: no".into()),
    }
    println!("{}", lines.join("\n"));
    let ended = state.as_ref().is_ok_and(|s| s.ended.is_some());
    Ok(if alive && !ended {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
