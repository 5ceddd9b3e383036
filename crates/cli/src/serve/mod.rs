//! `duet serve`: keep PROG running behind named pipes in DIR.
//!
//! One thread, one `poll` loop over the FIFOs, PROG's output and input, and
//! signals. The files, by concern:
//!
//! - [`protocol`]: what travels between the daemon and its clients (`ask`,
//!   `send`, `recv`, `status`, `stop`): DIR's layout and the FIFOs' names,
//!   the request and reply lines, the pid and stop files, the locks;
//! - [`requests`]: the state machine, without I/O: taking a request,
//!   framing its reply, timeouts and late replies, the queue, PROG's
//!   greeting, raw input and output that no request claims;
//! - [`timers`]: every deadline as a value (quiet and settle times, the
//!   reply's timeout and the not-answering alarm), and the restart policy
//!   whose backoff the supervisor keeps;
//! - [`lifecycle`]: the daemon: `--daemon`, preparing and cleaning up DIR,
//!   its FIFOs and log, starting, restarting and stopping PROG, signals,
//!   and the loop that feeds the state machine and carries out what it
//!   decides.
//!
//! serve keeps its own ends of `in`, `out` and `ctl` open read-write (as
//! `empty` does): clients come and go without PROG seeing end-of-file, and
//! writers never get `ENXIO`/`EPIPE` because a reader vanished.
//!
//! # Ready
//!
//! serve is ready (and prints DIR on stdout) once the FIFOs exist, PROG has
//! greeted and the pid file is written; with `--daemon` the parent prints
//! DIR only then and exits, so `dir=$(duet serve --daemon /tmp/x -- bc -q)`
//! can be followed by `duet ask "$dir" ...` at once. PROG's greeting is
//! what it writes before the first request, as for `chat`: up to its first
//! prompt with `--prompt`, else until it has been quiet for `--settle`
//! (200ms by default; `0`: ready at once). serve drops the greeting (`-v`
//! logs it) and does the same after every restart before the next request.
//! When PROG exits before serve is ready, serve (and `--daemon`) exits with
//! PROG's status and shows the end of PROG's stderr.
//!
//! # Replies
//!
//! The framing options given to serve are the default for every `ask`
//! that gives none. serve frames each reply itself, one request at a time.
//! A request that times out is answered with the timeout, and serve then
//! drops PROG's output until PROG has been quiet for the settle time (or
//! shows its prompt) before it sends the next request: one request without
//! a reply costs its own ask a timeout and no other, and its late reply,
//! when it comes within that quiet, reaches nobody. Two timeouts in a row
//! with no reply between them (or a PROG that keeps writing after a
//! timeout) mean PROG is not answering: serve logs it, `duet status` shows
//! it, and with `--restart on-failure|always` PROG is stopped (TERM,
//! grace, KILL) and started again. `duet send` is a raw request: its lines
//! go to PROG between requests, and serve answers once they were written.
//!
//! # The end
//!
//! It ends when PROG ends for good (per `--restart`), or on TERM, INT or HUP
//! (`duet stop` sends TERM after writing the grace period to `DIR/stop`):
//! the requests waiting fail at once naming the stop, PROG gets TERM, then
//! KILL after the grace period; then every file serve made is removed, and
//! DIR too if serve created it. When PROG ended for good, DIR keeps its
//! log and the pid file, which says why (`duet status`), until `duet stop`
//! or a new serve clears it.

pub mod lifecycle;
pub mod protocol;
pub mod requests;
pub mod timers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::args::{EnvArgs, OutputArgs, Program, RestartArg, parse_duration};
use crate::exit::Failure;
use crate::framing::FramingArgs;

/// Keep PROG running behind DIR/in and DIR/out for `duet ask`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dir=$(duet serve --daemon /tmp/calc -- bc -q); duet ask \"$dir\" 2+2
  duet serve --daemon /tmp/py --pty --prompt '^>>> ' -- python3 -q
  duet serve --daemon /tmp/gdb --prompt '^\\(gdb\\) \\r?\\n' -- gdb -q --interpreter=mi2
  duet serve --daemon /tmp/calc --restart on-failure --settle 1s -- ./calc
  duet serve --daemon /tmp/db --pty --prompt '^sqlite> ' -- sqlite3
  duet serve --daemon /tmp/gp --pty --strip-ansi --prompt '^\\? ' -- gp -q
  duet serve --daemon /tmp/py --merge-stderr --env PYTHONUNBUFFERED=1 -- python3 -i -q")]
pub struct ServeArgs {
    /// The directory for the FIFOs (created 0700, or an existing private one).
    dir: PathBuf,
    /// Detach: print DIR when ready and return; serve logs to DIR/log.
    #[arg(long)]
    daemon: bool,
    /// Run PROG on a pseudo-terminal.
    #[arg(long)]
    pty: bool,
    /// The framing of replies for every ask that gives none.
    #[command(flatten)]
    framing: FramingArgs,
    /// Without --prompt: PROG's greeting ends when it has written nothing
    /// for D; serve is ready then (0: at once). After an ask timed out,
    /// also with --prompt: PROG's output is dropped until it has been
    /// quiet for D (200ms when 0) or shows its prompt.
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = parse_duration)]
    settle: Duration,
    /// The limit for PROG's greeting (its first prompt, or the settle).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// When to start PROG again after it exits (or stops answering).
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = RestartArg::Never)]
    restart: RestartArg,
    /// At most N restarts (default: no limit).
    #[arg(long, value_name = "N")]
    max_restarts: Option<u32>,
    /// On stop, wait this long after TERM before KILL (`duet stop --grace` overrides).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    env: EnvArgs,
    /// Internal: the detached process of `--daemon`.
    #[arg(long, hide = true)]
    detached: bool,
    #[command(flatten)]
    program: Program,
}

/// Runs `duet serve`.
pub fn run(args: ServeArgs) -> Result<ExitCode, Failure> {
    // Checked before anything is made or started.
    let framing = args.framing.framing().map_err(|e| Failure::new(2, e))?;
    if args.daemon && !args.detached {
        return lifecycle::daemonize();
    }
    if args.detached {
        // A new session: no controlling terminal, no SIGHUP when it closes.
        nix::unistd::setsid().map_err(|e| Failure::internal(format!("setsid: {e}")))?;
    }
    let config = requests::Config {
        program: args.program.name(),
        framing,
        settle: args.settle,
        greet_timeout: args.timeout,
        pty: args.pty,
        max_reply: duet::DEFAULT_MAX_BUFFER,
    };
    let options = lifecycle::Options {
        dir: args.dir,
        program: args.program,
        pty: args.pty,
        output: args.output,
        env: args.env,
        policy: timers::restart_policy(args.restart.into(), args.max_restarts, args.grace),
        detached: args.detached,
    };
    lifecycle::serve(options, config)
}
