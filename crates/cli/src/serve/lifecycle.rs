//! `duet serve`: keep PROG running behind named pipes in DIR.
//!
//! The layout of DIR, the liveness lock and the ask protocol are described
//! in [`crate::serve::protocol`]. This module is the server: one thread, one `poll`
//! loop over the FIFOs, PROG's output and input, and signals.
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
//! A request that times out is answered with the timeout, and serve goes on
//! reading the rest of its reply and drops it: a late reply never reaches
//! another ask, which waits meanwhile (under its own timeout). When the
//! rest has not come after the request's timeout once more, PROG is not
//! answering: serve logs it, `duet status` shows it, and with
//! `--restart on-failure|always` PROG is stopped (TERM, grace, KILL) and
//! started again.
//!
//! # The end
//!
//! It ends when PROG ends for good (per `--restart`), or on TERM, INT or HUP
//! (`duet stop` sends TERM after writing the grace period to `DIR/stop`):
//! PROG gets TERM, then KILL after the grace period; then every file serve
//! made is removed, and DIR too if serve created it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use duet::fifo::{Access, Fifo, FifoDir};
use duet::supervise::{Backoff, Policy, Restart, Step, Supervisor, poll_timeout};
use duet::{Child, ExitStatus, Signal, Stdio};
use nix::fcntl::{Flock, OFlag};
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::args::{Program, RestartArg, parse_duration};
use crate::exit::{Failure, TIMEOUT, ended};
use crate::framing::{Collector, Framing, FramingArgs};
use crate::serve::protocol::{
    self, BAD_REQUEST, CTL, ENDED, IN, LOCK, LOG, OUT, PID, REPLY_PREFIX, Reply, Request, STOP,
    State, TIMED_OUT,
};
use duet_script::duration;

/// Keep PROG running behind DIR/in and DIR/out for `duet ask`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dir=$(duet serve --daemon /tmp/calc -- bc -q); duet ask \"$dir\" 2+2
  duet serve --daemon /tmp/py --pty --prompt '^>>> ' -- python3 -q
  duet serve --daemon /tmp/gdb --prompt '^\\(gdb\\) \\r?\\n' -- gdb -q --interpreter=mi2
  duet serve --daemon /tmp/calc --restart on-failure --settle 1s -- ./calc")]
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
    /// for D; serve is ready then (0: at once).
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = parse_duration, conflicts_with = "prompt")]
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
        return daemonize();
    }
    if args.detached {
        // A new session: no controlling terminal, no SIGHUP when it closes.
        nix::unistd::setsid().map_err(|e| Failure::internal(format!("setsid: {e}")))?;
    }
    let mut server = Server::start(&args, framing)?;
    if let Err(e) = server.until_ready() {
        server.cleanup();
        return Err(e);
    }
    // Ready: DIR on stdout is the signal (for `--daemon`'s parent too).
    if let Err(e) = ready(&server, &args) {
        // Nobody learns that the service is up (the parent of --daemon was
        // killed, say): do not leave it running unseen.
        server.cleanup();
        return Err(e);
    }
    let result = server.serve();
    server.cleanup();
    std::mem::forget(server.alive.take());
    result
}

/// Reports readiness (DIR on stdout); a detached serve then sends its
/// stdout and stderr to the log, so the parent sees end-of-file on both.
fn ready(server: &Server, args: &ServeArgs) -> Result<(), Failure> {
    let mut out = io::stdout();
    writeln!(out, "{}", args.dir.display())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::internal(format!("cannot report readiness: {e}")))?;
    if args.detached {
        let log = server
            .dir
            .open_file(LOG, OFlag::O_WRONLY | OFlag::O_APPEND)
            .map_err(Failure::internal)?;
        nix::unistd::dup2_stdout(&log).map_err(|e| Failure::internal(format!("dup2: {e}")))?;
        nix::unistd::dup2_stderr(&log).map_err(|e| Failure::internal(format!("dup2: {e}")))?;
    }
    Ok(())
}

/// `--daemon`: run this same command line detached (with `--detached`
/// instead of `--daemon`), wait until it prints DIR (ready) or fails, and
/// pass that on.
fn daemonize() -> Result<ExitCode, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::internal(format!("cannot find duet itself: {e}")))?;
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let Some(i) = args[..end].iter().position(|a| a == "--daemon") else {
        return Err(Failure::internal(
            "--daemon was given but is not on the command line",
        ));
    };
    args[i] = OsString::from("--detached");
    let mut child = std::process::Command::new(exe)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::internal(format!("cannot start the detached serve: {e}")))?;
    let mut ready = String::new();
    let mut errors = String::new();
    // Both end when the detached serve redirects them to its log (ready)
    // or exits (failed).
    let _ = child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut ready));
    let _ = child
        .stderr
        .take()
        .map(|mut s| s.read_to_string(&mut errors));
    if let Some(dir) = ready.lines().next().filter(|l| !l.is_empty()) {
        println!("{dir}");
        return Ok(ExitCode::SUCCESS);
    }
    let status = child
        .wait()
        .map_err(|e| Failure::internal(format!("cannot wait for the detached serve: {e}")))?;
    eprint!("{errors}");
    let code = status
        .code()
        .map_or(crate::exit::INTERNAL, |c| c.clamp(1, 255) as u8);
    Err(Failure::quiet(code))
}

/// Refuses a directory that already has an entry with one of serve's names
/// that no serve made (checked by path for the message only: every later
/// operation goes through the directory descriptor and checks again).
fn refuse_foreign_entries(dir: &FifoDir) -> Result<(), Failure> {
    for name in [IN, OUT, CTL, LOCK, PID, STOP] {
        let path = dir.path().join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = meta.file_type();
        let what = if kind.is_symlink() {
            "a symlink"
        } else if kind.is_file() {
            "a regular file"
        } else if kind.is_dir() {
            "a directory"
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&kind) {
            "a FIFO"
        } else {
            "a special file"
        };
        return Err(Failure::internal(format!(
            "refusing {}: it is {what} that no duet serve made; serve needs the names in, out, ctl, \
             lock, pid and stop in DIR: remove it or choose another directory",
            path.display()
        )));
    }
    Ok(())
}

/// A request waiting for its turn.
#[derive(Debug)]
struct Queued {
    request: Request,
    /// When its client gives up: its timeout from when serve received it.
    deadline: Instant,
}

/// The request being answered.
#[derive(Debug)]
struct Active {
    request: Request,
    framing: Framing,
    collector: Collector,
    /// The reply so far.
    reply: Vec<u8>,
    deadline: Instant,
    /// For `--quiet`: the reply ends when nothing arrives until then.
    quiet_until: Option<Instant>,
    /// When its client was told it timed out: the rest of the reply is
    /// still read, and dropped.
    abandoned: Option<Instant>,
    /// PROG was reported as not answering.
    reported: bool,
}

/// PROG's greeting, which ends before the first request is sent to it.
#[derive(Debug)]
enum Greeting {
    /// Up to the first prompt.
    Prompt(Collector),
    /// Until PROG has been quiet until `quiet_until`.
    Settle { quiet_until: Instant },
}

#[derive(Debug)]
struct Greeted {
    kind: Greeting,
    /// What PROG wrote, for the log.
    seen: Vec<u8>,
    deadline: Instant,
}

/// Most output kept for `out` when nobody reads it; older bytes are dropped.
const OUT_BACKLOG: usize = 1 << 20;
/// How long serve waits, after PROG closed its output mid-reply, for its
/// exit status to put in the client's message.
const EXIT_AFTER_EOF: Duration = Duration::from_millis(200);
/// At most this many lines of PROG's stderr are shown when it fails to start.
const STDERR_TAIL: usize = 10;

#[derive(Debug)]
struct Server {
    dir: FifoDir,
    /// The liveness lock (see `served`), never released by hand: the
    /// kernel drops it when this process exits, so when `stop` sees it free,
    /// serve is gone.
    alive: Option<Flock<OwnedFd>>,
    fifos: Vec<Fifo>,
    input: File,
    output: File,
    ctl: File,
    log: File,
    sup: Supervisor,
    program: Program,
    pty: bool,
    grace: Duration,
    state: State,
    /// The framing of asks that give none.
    framing: Framing,
    settle: Duration,
    greet_timeout: Duration,
    /// Set while PROG greets: no request is sent to it meanwhile.
    greeting: Option<Greeted>,
    /// With `--prompt`, after raw input from `in`: PROG is busy until its
    /// next prompt, which this finds.
    busy: Option<Collector>,
    /// Bytes for PROG's stdin.
    to_child: Vec<u8>,
    /// Raw bytes from `in`, forwarded between requests.
    raw_in: Vec<u8>,
    /// Output for `out`.
    raw_out: VecDeque<u8>,
    /// A partial request line from `ctl`.
    ctl_buf: Vec<u8>,
    queue: VecDeque<Queued>,
    active: Option<Active>,
    /// PROG's current stdout has ended.
    out_eof: bool,
    /// A stop was asked for.
    stopping: bool,
    /// Reports DIR, or one of serve's own entries in it, being removed or
    /// moved away: the service can no longer be reached or stopped, so it
    /// stops PROG and ends instead of lingering as an orphan.
    watch: Inotify,
    /// DIR was taken away under the running service.
    dir_lost: bool,
    /// The log's length when PROG was first started: its stderr follows.
    log_start: u64,
    /// Keep DIR/log when cleaning up: it explains a failed start that the
    /// message could not show in full.
    keep_log: bool,
}

impl Server {
    /// Checks and prepares DIR, starts PROG.
    fn start(args: &ServeArgs, framing: Framing) -> Result<Server, Failure> {
        let dir = FifoDir::create(&args.dir).map_err(|e| Failure::internal(format!("{e}")))?;
        let Some(alive) = protocol::claim(&dir)? else {
            let who =
                protocol::read_state(&dir).map_or(String::new(), |s| format!(" (pid {})", s.pid));
            return Err(Failure::internal(format!(
                "{} is already served{who}; stop it first with `duet stop {}`",
                args.dir.display(),
                args.dir.display()
            )));
        };
        let mut created = dir.created();
        if !created {
            match protocol::read_state(&dir) {
                Ok(old) => {
                    // Reclaim a stale directory: a serve that crashed left
                    // it. The right to remove DIR passes on.
                    log::warn!(
                        "{} was left by serve pid {} that is gone; reclaiming it",
                        args.dir.display(),
                        old.pid
                    );
                    created = old.created_dir;
                    for name in dir.entries().map_err(Failure::internal)? {
                        if name.starts_with(REPLY_PREFIX)
                            || name == STOP
                            || name == format!("{PID}.new")
                        {
                            dir.remove_entry(&name).map_err(Failure::internal)?;
                        }
                    }
                }
                // Not a served directory: serve adds its files beside the
                // user's, but takes over (and later removes) none of theirs.
                Err(_) => refuse_foreign_entries(&dir)?,
            }
        }
        // `fifo` adopts an existing FIFO of ours and refuses anything else.
        let mut fifos = Vec::new();
        for name in [IN, OUT, CTL] {
            fifos.push(dir.fifo(name).map_err(Failure::internal)?);
        }
        let open = |f: &Fifo| f.open(Access::ReadWrite, true).map_err(Failure::internal);
        let (input, output, ctl) = (open(&fifos[0])?, open(&fifos[1])?, open(&fifos[2])?);
        // Drop whatever a previous serve left unread in the FIFOs.
        for mut f in [&input, &output, &ctl] {
            let mut sink = [0u8; 4096];
            while matches!(f.read(&mut sink), Ok(n) if n > 0) {}
        }
        let log = dir
            .open_file(LOG, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND)
            .map_err(Failure::internal)?;
        let log_start = log.metadata().map_or(0, |m| m.len());
        dir.open_file(LOCK, OFlag::O_RDWR | OFlag::O_CREAT)
            .map_err(Failure::internal)?;
        let policy = Policy {
            restart: args.restart.into(),
            max_restarts: args.max_restarts,
            backoff: Backoff::default(),
            grace: args.grace,
            group: false,
        };
        let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| Failure::internal(format!("inotify: {e}")))?;
        watch
            .add_watch(
                dir.path(),
                AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_DELETE
                    | AddWatchFlags::IN_MOVED_FROM,
            )
            .map_err(|e| Failure::internal(format!("watch {}: {e}", dir.path().display())))?;
        let mut sup = Supervisor::new(policy)?;
        // serve decides how to stop (with the grace `duet stop` asked for).
        for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            sup.forward_signal(sig, false);
        }
        if std::process::id() == 1 {
            // A container's init: orphans are ours to reap.
            sup.set_subreaper()?;
        }
        let mut server = Server {
            state: State {
                pid: std::process::id(),
                child: None,
                program: args
                    .program
                    .argv
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                started: protocol::now_secs(),
                restarts: 0,
                created_dir: created,
                not_answering: None,
            },
            dir,
            alive: Some(alive),
            fifos,
            input,
            output,
            ctl,
            log,
            sup,
            program: args.program.clone(),
            pty: args.pty,
            grace: args.grace,
            framing,
            settle: args.settle,
            greet_timeout: args.timeout,
            greeting: None,
            busy: None,
            to_child: Vec::new(),
            raw_in: Vec::new(),
            raw_out: VecDeque::new(),
            ctl_buf: Vec::new(),
            queue: VecDeque::new(),
            active: None,
            out_eof: false,
            stopping: false,
            watch,
            dir_lost: false,
            log_start,
            keep_log: false,
        };
        match server.spawn() {
            Ok(child) => server.sup.start(child),
            Err(e) => {
                server.cleanup();
                return Err(e);
            }
        }
        Ok(server)
    }

    fn spawn(&mut self) -> Result<Child, Failure> {
        let log = self
            .log
            .try_clone()
            .map_err(|e| Failure::internal(format!("cannot reuse the log: {e}")))?;
        let mut cmd = self.program.command();
        // PROG's stderr goes to the log, also on a pty: never into replies.
        cmd.pty(self.pty).stderr(Stdio::from(log));
        let child = cmd.spawn()?;
        log::info!(
            "serve: started {} (pid {})",
            self.program.name(),
            child.id()
        );
        self.state.child = Some(child.id());
        self.state.not_answering = None;
        self.out_eof = false;
        self.busy = None;
        let now = Instant::now();
        let kind = match &self.framing {
            Framing::Prompt(_) => Some(Greeting::Prompt(
                Collector::new(&self.framing).map_err(Failure::internal)?,
            )),
            _ if self.settle.is_zero() => None,
            _ => Some(Greeting::Settle {
                quiet_until: now + self.settle,
            }),
        };
        self.greeting = kind.map(|kind| Greeted {
            kind,
            seen: Vec::new(),
            deadline: now + self.greet_timeout,
        });
        Ok(child)
    }

    /// Runs the loop until PROG has greeted, then writes the pid file.
    /// PROG's exit meanwhile is a failed start, whatever `--restart` says:
    /// the error carries its status and the end of its stderr.
    fn until_ready(&mut self) -> Result<(), Failure> {
        while self.greeting.is_some() {
            self.pump_output()?;
            // Early requests wait their turn; reading them (and the watch)
            // keeps the poll below from waking for them again and again.
            self.read_requests();
            if self.dir_removed() {
                return Err(Failure::internal(format!(
                    "{} was removed or moved away while {} was starting",
                    self.dir.path().display(),
                    self.program.name()
                )));
            }
            self.check_greeting(true)?;
            if self.greeting.is_none() {
                break;
            }
            self.wait()?;
            let step = self.sup.step()?;
            if self
                .sup
                .received()
                .iter()
                .any(|s| matches!(s, Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP))
            {
                return Err(Failure::new(
                    1,
                    format!(
                        "stopped by a signal while {} was starting",
                        self.program.name()
                    ),
                ));
            }
            match step {
                Step::Running => {}
                Step::Restart | Step::Done(_) => {
                    let status = self.sup.last_status().unwrap_or(ExitStatus::from_code(1));
                    return Err(self.failed_start(status));
                }
            }
        }
        protocol::write_state(&self.dir, &self.state)
    }

    /// The error for PROG exiting before serve was ready: its status and
    /// the end of what it wrote to stderr (in DIR/log, kept if it is longer
    /// than what the message shows).
    fn failed_start(&mut self, status: ExitStatus) -> Failure {
        let mut text = Vec::new();
        if let Ok(mut log) = self.dir.open_file(LOG, OFlag::O_RDONLY) {
            if log.seek(io::SeekFrom::Start(self.log_start)).is_ok() {
                let _ = log.read_to_end(&mut text);
            }
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let mut message = format!(
            "{} {} while serve was starting",
            self.program.name(),
            ended(status)
        );
        if lines.is_empty() {
            message.push_str("; it wrote nothing to stderr");
        } else {
            let shown = &lines[lines.len().saturating_sub(STDERR_TAIL)..];
            message.push_str("; the end of its stderr:");
            for line in shown {
                message.push_str("\n    ");
                message.push_str(line);
            }
            if shown.len() < lines.len() {
                self.keep_log = true;
                message.push_str(&format!(
                    "\n(all {} lines are in {})",
                    lines.len(),
                    self.dir.path().join(LOG).display()
                ));
            }
        }
        let code = status.shell_code().clamp(0, 255) as u8;
        Failure::new(if code == 0 { 1 } else { code }, message)
    }

    /// Ends the greeting when its time has come. At the first start a
    /// greeting that does not end in time fails; after a restart serve
    /// logs it and goes on.
    fn check_greeting(&mut self, starting: bool) -> Result<(), Failure> {
        let Some(g) = self.greeting.as_ref() else {
            return Ok(());
        };
        let now = Instant::now();
        // At end of output PROG is going: its exit decides, not the quiet.
        let settled = matches!(g.kind, Greeting::Settle { quiet_until } if now >= quiet_until)
            && !self.out_eof;
        if settled {
            self.greeted();
            return Ok(());
        }
        if now < g.deadline {
            return Ok(());
        }
        let what = match g.kind {
            Greeting::Prompt(_) => format!("its first prompt ({})", self.framing.describe()),
            Greeting::Settle { .. } => format!(
                "its greeting to end ({} of quiet)",
                duration::show(self.settle)
            ),
        };
        let mut seen = g.seen.clone();
        if let Greeting::Prompt(first) = &g.kind {
            seen.extend_from_slice(first.held());
        }
        let message = format!(
            "{} did not show {what} within {}{}",
            self.program.name(),
            duration::show(self.greet_timeout),
            preview(&seen)
        );
        if starting {
            return Err(Failure::new(TIMEOUT, message));
        }
        log::warn!("serve: {message}; sending requests anyway");
        self.greeted();
        Ok(())
    }

    fn greeted(&mut self) {
        if let Some(g) = self.greeting.take() {
            if !g.seen.is_empty() {
                log::info!(
                    "serve: the program's greeting: {:?}",
                    String::from_utf8_lossy(&g.seen)
                );
            }
        }
    }

    /// The event loop. Returns when PROG is gone for good or serve was stopped.
    fn serve(&mut self) -> Result<ExitCode, Failure> {
        loop {
            self.pump_output()?;
            self.read_requests();
            // Before next_input: an ended greeting or reply lets the next
            // request go in this same round.
            self.check_timers()?;
            self.next_input();
            self.write_input();
            self.write_output();
            self.wait()?;
            if let Some(grace) = protocol::stop_requested(&self.dir) {
                self.grace = grace;
            }
            let step = self.sup.step()?;
            let asked_to_stop = self
                .sup
                .received()
                .iter()
                .any(|s| matches!(s, Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP));
            if !self.dir_lost && self.dir_removed() {
                log::error!(
                    "serve: {} was removed or moved away; stopping {}",
                    self.dir.path().display(),
                    self.program.name()
                );
                self.dir_lost = true;
                if !self.stopping {
                    self.stopping = true;
                    self.sup.stop(self.grace)?;
                }
            }
            if asked_to_stop && !self.stopping {
                log::info!(
                    "serve: stopping {} (grace {})",
                    self.program.name(),
                    duration::show(self.grace)
                );
                self.stopping = true;
                self.sup.stop(self.grace)?;
            }
            match step {
                Step::Running => {}
                Step::Restart => {
                    self.pump_output()?;
                    self.end_active("the program ended before the reply was complete");
                    crate::args::report_restart(&self.program, &self.sup);
                    let child = self.spawn()?;
                    self.sup.start(child);
                    self.state.restarts = self.sup.restarts();
                    protocol::write_state(&self.dir, &self.state)?;
                }
                Step::Done(status) => {
                    self.pump_output()?;
                    self.end_active(&format!(
                        "the program {} before the reply was complete",
                        ended(status)
                    ));
                    for queued in std::mem::take(&mut self.queue) {
                        self.send_reply(
                            &queued.request,
                            &self.framing.clone(),
                            String::new(),
                            Some((ENDED, format!("the program {}", ended(status)))),
                        );
                    }
                    log::info!(
                        "serve: {} {}; serve ends",
                        self.program.name(),
                        ended(status)
                    );
                    return Ok(if self.dir_lost {
                        ExitCode::from(125)
                    } else if self.stopping {
                        ExitCode::SUCCESS
                    } else {
                        crate::exit::exit_code(status)
                    });
                }
            }
        }
    }

    /// True when the watch reports DIR itself, or one of the entries serve
    /// depends on, removed or moved away. Reply FIFOs come and go freely.
    fn dir_removed(&self) -> bool {
        let Ok(events) = self.watch.read_events() else {
            return false;
        };
        events.iter().any(|e| {
            let gone = AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_IGNORED;
            e.mask.intersects(gone)
                || e.name
                    .as_ref()
                    .is_some_and(|n| [IN, OUT, CTL, PID, LOCK].iter().any(|ours| n == *ours))
        })
    }

    /// Reads everything PROG has written and routes it: to its greeting,
    /// the active request, or `out`.
    fn pump_output(&mut self) -> Result<(), Failure> {
        while !self.out_eof {
            let Some(child) = self.sup.child() else {
                return Ok(());
            };
            match child.read_available(Duration::ZERO) {
                Ok(bytes) if bytes.is_empty() => return Ok(()),
                Ok(bytes) => self.route(bytes),
                Err(duet::Error::Eof { .. }) => {
                    self.out_eof = true;
                    if self.active.as_ref().is_some_and(|a| a.abandoned.is_none()) {
                        // Output ends when PROG does, as a rule: a moment
                        // tells how, for the client's message.
                        let message = match child.wait_timeout(EXIT_AFTER_EOF) {
                            Ok(Some(status)) => format!(
                                "the program {} before the reply was complete",
                                ended(status)
                            ),
                            _ => "the program closed its output before the reply was complete"
                                .to_string(),
                        };
                        self.end_active(&message);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn route(&mut self, bytes: Vec<u8>) {
        if let Some(g) = self.greeting.as_mut() {
            match &mut g.kind {
                Greeting::Settle { quiet_until } => {
                    *quiet_until = Instant::now() + self.settle;
                    g.seen.extend_from_slice(&bytes);
                }
                Greeting::Prompt(first) => {
                    if let Some(rest) = first.feed(&bytes, &mut g.seen) {
                        self.greeted();
                        // Output after the first prompt belongs to no request.
                        self.route(rest);
                    }
                }
            }
            return;
        }
        let Some(active) = self.active.as_mut() else {
            if let Some(busy) = self.busy.as_mut() {
                if busy.feed(&bytes, &mut Vec::new()).is_some() {
                    self.busy = None;
                }
            }
            self.queue_out(&bytes);
            return;
        };
        if let Some(quiet) = active.framing.quiet() {
            active.quiet_until = Some(Instant::now() + quiet);
        }
        if let Some(rest) = active.collector.feed(&bytes, &mut active.reply) {
            self.complete_active();
            self.route(rest);
        }
    }

    /// The active reply is complete: to its client, or dropped if the
    /// client was told it timed out.
    fn complete_active(&mut self) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        active.collector.flush(&mut active.reply);
        let output = String::from_utf8_lossy(&active.reply).into_owned();
        if active.abandoned.is_some() {
            log::info!(
                "serve: dropped the late reply to {} {:?} ({} bytes)",
                active.request.id,
                active.request.line,
                active.reply.len()
            );
            if self.state.not_answering.take().is_some() {
                log::warn!("serve: {} answers again", self.program.name());
                if let Err(e) = protocol::write_state(&self.dir, &self.state) {
                    log::warn!("serve: {}", e.message);
                }
            }
            return;
        }
        self.send_reply(&active.request, &active.framing, output, None);
    }

    /// The active reply cannot complete (PROG ended): its client gets the
    /// error with what arrived; a late reply is just dropped.
    fn end_active(&mut self, message: &str) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        if active.abandoned.is_some() {
            return;
        }
        active.collector.flush(&mut active.reply);
        let partial = String::from_utf8_lossy(&active.reply).into_owned();
        self.send_reply(
            &active.request,
            &active.framing,
            partial,
            Some((ENDED, message.to_string())),
        );
    }

    fn queue_out(&mut self, bytes: &[u8]) {
        self.raw_out.extend(bytes);
        if self.raw_out.len() > OUT_BACKLOG {
            let excess = self.raw_out.len() - OUT_BACKLOG;
            self.raw_out.drain(..excess);
            log::warn!("serve: nobody reads {OUT}; dropped {excess} bytes of old output");
        }
    }

    /// Reads complete request lines from `ctl`.
    fn read_requests(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            match (&self.ctl).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.ctl_buf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let now = Instant::now();
        while let Some(pos) = self.ctl_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.ctl_buf.drain(..=pos).collect();
            match protocol::parse_request(&line) {
                Ok(request) => {
                    log::debug!("serve: request {} {:?}", request.id, request.line);
                    let deadline = now + Duration::from_millis(request.timeout_ms);
                    self.queue.push_back(Queued { request, deadline });
                }
                Err(why) => log::warn!("serve: {why}"),
            }
        }
    }

    /// Chooses what PROG gets next: raw input from `in` between requests,
    /// else the next request, once PROG is idle (greeted, no reply still
    /// coming, at its prompt after raw input).
    fn next_input(&mut self) {
        let mut buf = [0u8; 8192];
        while self.raw_in.len() < OUT_BACKLOG {
            match (&self.input).read(&mut buf) {
                Ok(n) if n > 0 => self.raw_in.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        if self.active.is_some()
            || self.greeting.is_some()
            || self.stopping
            || !self.sup.is_running()
            || self.out_eof
        {
            return;
        }
        if !self.raw_in.is_empty() {
            self.to_child.append(&mut self.raw_in);
            if let Framing::Prompt(_) = &self.framing {
                self.busy = Collector::new(&self.framing).ok();
            }
            return;
        }
        if !self.to_child.is_empty() || self.busy.is_some() {
            return;
        }
        let Some(Queued { request, deadline }) = self.queue.pop_front() else {
            return;
        };
        // Output that arrived before this request belongs to no request.
        if let Err(e) = self.pump_output() {
            log::warn!("serve: {}", e.message);
        }
        let framing = request
            .framing
            .clone()
            .unwrap_or_else(|| self.framing.clone());
        let collector = match Collector::new(&framing) {
            Ok(c) => c,
            Err(e) => {
                self.send_reply(&request, &framing, String::new(), Some((BAD_REQUEST, e)));
                return;
            }
        };
        log::debug!("serve: sending {} to the program", request.id);
        self.to_child.extend_from_slice(request.line.as_bytes());
        self.to_child.push(b'\n');
        // A request that gets no output at all has an empty reply after
        // the quiet time.
        let quiet_until = framing.quiet().map(|q| Instant::now() + q);
        self.active = Some(Active {
            deadline,
            request,
            framing,
            collector,
            reply: Vec::new(),
            quiet_until,
            abandoned: None,
            reported: false,
        });
    }

    /// Sends pending input when PROG's stdin has room.
    fn write_input(&mut self) {
        if self.to_child.is_empty() {
            return;
        }
        let Some(child) = self.sup.child() else {
            return;
        };
        let room = child.stdin_fd().is_some_and(|fd| {
            let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
            matches!(poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
        });
        if !room {
            return;
        }
        let bytes = std::mem::take(&mut self.to_child);
        if let Err(e) = child.send_bytes(&bytes) {
            // PROG is going away: the request was not answered, so it waits
            // for the restart (or gets an error if there is none).
            log::info!("serve: cannot write to the program: {e}");
            if let Some(active) = self.active.take() {
                if active.abandoned.is_none() {
                    self.queue.push_front(Queued {
                        request: active.request,
                        deadline: active.deadline,
                    });
                }
            }
        }
    }

    /// Moves output to `out` as far as it has room.
    fn write_output(&mut self) {
        while !self.raw_out.is_empty() {
            let (front, _) = self.raw_out.as_slices();
            match (&self.output).write(front) {
                Ok(n) => {
                    self.raw_out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn check_timers(&mut self) -> Result<(), Failure> {
        self.check_greeting(false)?;
        let now = Instant::now();
        // Requests whose clients have given up waiting for their turn.
        let mut i = 0;
        while i < self.queue.len() {
            if now < self.queue[i].deadline {
                i += 1;
                continue;
            }
            let queued = self.queue.remove(i).expect("an index in range");
            let why = if self.active.as_ref().is_some_and(|a| a.abandoned.is_some()) {
                "the program has not finished its reply to an earlier request that timed out"
            } else if self.greeting.is_some() {
                "the program has not finished its greeting"
            } else if self.busy.is_some() {
                "the program has not shown its prompt since the raw input from DIR/in"
            } else {
                "the program was busy with earlier requests"
            };
            let message = format!(
                "timed out after {} waiting for its turn: {why}",
                duration::show(Duration::from_millis(queued.request.timeout_ms))
            );
            let framing = queued
                .request
                .framing
                .clone()
                .unwrap_or_else(|| self.framing.clone());
            self.send_reply(
                &queued.request,
                &framing,
                String::new(),
                Some((TIMED_OUT, message)),
            );
        }
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        if active.quiet_until.is_some_and(|q| now >= q) {
            self.complete_active();
            return Ok(());
        }
        let timeout = Duration::from_millis(active.request.timeout_ms);
        match active.abandoned {
            None if now >= active.deadline => {
                active.abandoned = Some(now);
                let message = format!(
                    "timed out after {} waiting for {}",
                    duration::show(timeout),
                    active.framing.describe()
                );
                let mut partial = active.reply.clone();
                partial.extend_from_slice(active.collector.held());
                let (request, framing) = (active.request.clone(), active.framing.clone());
                log::info!(
                    "serve: the reply to {} {:?} timed out; its rest will be dropped",
                    request.id,
                    request.line
                );
                let partial = String::from_utf8_lossy(&partial).into_owned();
                self.send_reply(&request, &framing, partial, Some((TIMED_OUT, message)));
            }
            Some(at) if !active.reported && now >= at + timeout => {
                active.reported = true;
                let message = format!(
                    "{} is not answering: its reply to {:?} has not ended {} after the ask timed out",
                    self.program.name(),
                    active.request.line,
                    duration::show(timeout)
                );
                self.state.not_answering = Some(message.clone());
                protocol::write_state(&self.dir, &self.state)?;
                if self.sup.policy().restart == Restart::Never {
                    eprintln!("duet: {message}; requests wait until it has");
                } else {
                    eprintln!("duet: {message}; stopping it to restart it");
                    self.sup.recycle(self.grace)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes a reply to the request's FIFO; a client that is gone (no
    /// reader) loses it, which is the point. The FIFO is removed after.
    fn send_reply(
        &mut self,
        request: &Request,
        framing: &Framing,
        output: String,
        error: Option<(&str, String)>,
    ) {
        let (error, message) = match error {
            Some((kind, message)) => (Some(kind.to_string()), message),
            None => (None, String::new()),
        };
        let reply = Reply {
            id: request.id.clone(),
            output,
            error,
            message,
            framing: Some(framing.clone()),
        };
        let result = self.dir.existing_fifo(&request.reply).and_then(|fifo| {
            let mut file = fifo.open(Access::Write, true)?;
            let mut line = serde_json::to_vec(&reply)?;
            line.push(b'\n');
            protocol::write_all_until(&mut file, &line, Instant::now() + Duration::from_secs(5))?;
            Ok(())
        });
        match result {
            Ok(()) => log::debug!("serve: replied to {}", request.id),
            Err(e) => log::info!("serve: the client of {} is gone: {e}", request.id),
        }
        // An `ask -` reuses its FIFO for its next request and removes it
        // itself; a single ask's is removed here, in case it was killed.
        if !request.keep_fifo {
            let _ = self.dir.remove_entry(&request.reply);
        }
    }

    /// The earliest time something is due without any input: the
    /// supervisor's, the greeting's, the active reply's and every queued
    /// request's deadline.
    fn deadline(&self) -> Option<Instant> {
        let mut due: Vec<Instant> = Vec::new();
        due.extend(self.sup.deadline());
        if let Some(g) = &self.greeting {
            due.push(g.deadline);
            if let Greeting::Settle { quiet_until } = g.kind {
                due.push(quiet_until);
            }
        }
        if let Some(a) = &self.active {
            due.extend(a.quiet_until);
            match a.abandoned {
                None => due.push(a.deadline),
                Some(at) if !a.reported => {
                    due.push(at + Duration::from_millis(a.request.timeout_ms));
                }
                Some(_) => {}
            }
        }
        due.extend(self.queue.iter().map(|q| q.deadline));
        due.into_iter().min()
    }

    /// Polls everything serve waits for, until the nearest deadline.
    fn wait(&self) -> Result<(), Failure> {
        let mut fds = vec![
            PollFd::new(self.sup.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.ctl.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.watch.as_fd(), PollFlags::POLLIN),
        ];
        if self.raw_in.len() < OUT_BACKLOG {
            fds.push(PollFd::new(self.input.as_fd(), PollFlags::POLLIN));
        }
        if !self.raw_out.is_empty() {
            fds.push(PollFd::new(self.output.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(child) = self.sup.child_ref() {
            if !self.out_eof {
                if let Some(fd) = child.stdout_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                }
            }
            if !self.to_child.is_empty() {
                if let Some(fd) = child.stdin_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLOUT));
                }
            }
        }
        match poll(&mut fds, poll_timeout(self.deadline())) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(Failure::internal(format!("poll: {e}"))),
        }
    }

    /// Stops PROG if it still runs and removes what serve made: the FIFOs,
    /// the pid, lock, stop and log files, leftover reply FIFOs, and DIR if
    /// duet created it (the log and DIR stay when they explain a failed
    /// start). Idempotent.
    fn cleanup(&mut self) {
        if let Some(mut child) = self.sup.take_child() {
            if let Err(e) = child.terminate(self.grace) {
                log::warn!("serve: cannot stop the program: {e}");
            }
        }
        for mut fifo in self.fifos.drain(..) {
            if let Err(e) = fifo.remove() {
                log::warn!("serve: {e}");
            }
        }
        if let Ok(names) = self.dir.entries() {
            for name in names {
                if name.starts_with(REPLY_PREFIX) {
                    let _ = self.dir.remove_entry(&name);
                }
            }
        }
        let remove_log = self.state.created_dir && !self.keep_log;
        let mut names = vec![PID, LOCK, STOP];
        if remove_log {
            names.push(LOG);
        }
        for name in names {
            if let Err(e) = self.dir.remove_entry(name) {
                log::warn!("serve: {e}");
            }
        }
        if remove_log {
            if let Err(e) = std::fs::remove_dir(self.dir.path()) {
                log::warn!("serve: cannot remove {}: {e}", self.dir.path().display());
            }
        }
    }
}

/// `; it wrote "..."` (the start of it) or nothing, for messages.
fn preview(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "; it wrote nothing".into()
    } else {
        let text = String::from_utf8_lossy(bytes);
        let cut: String = text.chars().take(200).collect();
        format!("; it wrote {cut:?}")
    }
}
