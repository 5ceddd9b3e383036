//! `duet stop DIR`: end a service gracefully and remove its files.
//!
//! It writes the grace period to `DIR/stop`, sends TERM to serve, and waits
//! (on serve's liveness lock) for serve to stop PROG (TERM, the grace
//! period, KILL) and clean up. A serve that does not finish in time is
//! killed and its leftovers removed here. A stale directory (its serve
//! crashed) is cleaned up directly.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use duet::fifo::FifoDir;
use nix::sys::signal::Signal;

use crate::args::parse_duration;
use crate::exit::Failure;
use crate::serve::protocol::{self, CTL, IN, LOCK, LOG, OUT, PID, REPLY_PREFIX, STOP};

/// Stop the program served in DIR (TERM, grace, KILL) and remove the FIFOs.
#[derive(Debug, Args)]
#[command(after_help = "Example: duet stop /tmp/calc --grace 2s")]
pub struct StopArgs {
    /// The served directory.
    dir: PathBuf,
    /// How long PROG has after TERM before KILL.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
}

/// How long past the grace period stop waits for serve to clean up.
const CLEANUP_SLACK: Duration = Duration::from_secs(5);

/// Runs `duet stop`.
pub fn run(args: StopArgs) -> Result<ExitCode, Failure> {
    let dir = protocol::open_dir(&args.dir)?;
    let state = protocol::read_state(&dir).ok();
    if !protocol::is_alive(&dir)? {
        // Only a directory with serve's own pid file is cleaned up: stop
        // never removes files from a directory that was not served.
        let Some(state) = state else {
            return Err(Failure::new(
                1,
                format!(
                    "{} is not served (no pid file of duet serve); nothing removed",
                    args.dir.display()
                ),
            ));
        };
        let ended = state.ended.clone();
        remove_leftovers(dir, state.created_dir)?;
        match ended {
            Some(why) => eprintln!(
                "duet: {} had ended ({why}); removed what was left",
                args.dir.display()
            ),
            None => eprintln!(
                "duet: {} was not running; removed what was left",
                args.dir.display()
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(state) = state else {
        return Err(Failure::internal(format!(
            "{} is served but has no readable pid file; try again when it has started",
            args.dir.display()
        )));
    };
    // serve's pid is trusted only once: held by a pidfd, and checked to be
    // the one that still holds DIR's lock and wrote the pid file, so a
    // signal can never reach a process that took over the number.
    let serve = duet::supervise::Process::open(state.pid)?;
    let still_serving = protocol::is_alive(&dir)?
        && protocol::read_state(&dir).is_ok_and(|now| now.pid == state.pid);
    let Some(serve) = serve.filter(|_| still_serving) else {
        return Err(Failure::internal(format!(
            "{} changed while stopping it (serve pid {} is gone); run duet stop again",
            args.dir.display(),
            state.pid
        )));
    };
    // PROG likewise, and only while serve is still its parent.
    let prog = match state.child {
        Some(pid) => {
            duet::supervise::Process::open(pid)?.filter(|_| parent_of(pid) == Some(state.pid))
        }
        None => None,
    };
    protocol::request_stop(&dir, args.grace)?;
    serve.signal(Signal::SIGTERM)?;
    if protocol::wait_gone(&dir, args.grace + CLEANUP_SLACK)? {
        // The lock goes with serve's descriptors, a moment before the
        // process has finished exiting: return only once it has.
        serve.wait_for_exit(CLEANUP_SLACK)?;
        return Ok(ExitCode::SUCCESS);
    }
    log::warn!("serve pid {} did not stop in time; killing it", state.pid);
    if let Some(prog) = &prog {
        prog.signal(Signal::SIGKILL)?;
    }
    serve.signal(Signal::SIGKILL)?;
    if !protocol::wait_gone(&dir, CLEANUP_SLACK)? {
        return Err(Failure::internal(format!(
            "serve pid {} does not die",
            state.pid
        )));
    }
    remove_leftovers(dir, state.created_dir)?;
    Ok(ExitCode::SUCCESS)
}

/// The parent of process `pid` (`PPid:` in its status), if it exists.
fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()
}

/// Removes what a serve that is gone left in DIR (checking every entry's
/// type on the way: `existing_fifo` refuses a symlink or a regular file).
fn remove_leftovers(dir: FifoDir, created: bool) -> Result<(), Failure> {
    for name in [IN, OUT, CTL] {
        match dir.existing_fifo(name) {
            Ok(_) => dir.remove_entry(name).map_err(Failure::internal)?,
            Err(duet::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::internal(e)),
        }
    }
    for name in dir.entries().map_err(Failure::internal)? {
        if name.starts_with(REPLY_PREFIX) || name == format!("{PID}.new") {
            dir.remove_entry(&name).map_err(Failure::internal)?;
        }
    }
    let mut names = vec![PID, LOCK, STOP];
    if created {
        names.push(LOG);
    }
    for name in names {
        dir.remove_entry(name).map_err(Failure::internal)?;
    }
    if created {
        dir.remove().map_err(Failure::internal)?;
    }
    Ok(())
}
