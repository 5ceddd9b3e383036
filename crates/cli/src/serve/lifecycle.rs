//! The daemon's life: `--daemon`; DIR (claimed, checked, its FIFOs, pid
//! file and log made, all removed at the end); PROG started, restarted and
//! stopped under the library's supervisor; signals and DIR's removal; and
//! the loop that runs it all: one `poll` over the FIFOs, PROG's output and
//! input and the signals, feeding [`Requests`] what arrived and carrying
//! out what it decides.
//!
//! The decisions about requests, replies and greetings are
//! [`super::requests`]'s; this file only moves bytes and processes.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use duet::fifo::{Access, Fifo, FifoDir};
use duet::supervise::{Policy, Restart, Step, Supervisor, poll_timeout};
use duet::{Child, ExitStatus, Signal, Stdio};
use duet_script::duration;
use nix::fcntl::{Flock, OFlag};
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::protocol::{self, CTL, IN, LOCK, LOG, OUT, PID, REPLY_PREFIX, STOP, State};
use super::requests::{Config, Delivery, Event, Requests};
use super::timers::earliest;
use crate::args::{EnvArgs, OutputArgs, Program, report_restart};
use crate::exit::{Failure, TIMEOUT, ended, exit_code};

/// How long serve waits, after PROG closed its output mid-reply, for its
/// exit status to put in the client's message.
const EXIT_AFTER_EOF: Duration = Duration::from_millis(200);
/// At most this many lines of PROG's stderr are shown when it fails to start.
const STDERR_TAIL: usize = 10;
/// How long serve tries to write a reply to a client's FIFO.
const REPLY_WRITE: Duration = Duration::from_secs(5);
/// What a pipe with room for writing takes at once without blocking.
const PIPE_BUF: usize = 4096;

/// What the daemon needs besides the requests' [`Config`].
#[derive(Debug)]
pub struct Options {
    /// DIR as given.
    pub dir: PathBuf,
    /// PROG.
    pub program: Program,
    /// Run PROG on a pseudo-terminal.
    pub pty: bool,
    /// `--merge-stderr`, `--strip-ansi`.
    pub output: OutputArgs,
    /// `--env`.
    pub env: EnvArgs,
    /// Restarts and the grace of a stop.
    pub policy: Policy,
    /// This is the detached process of `--daemon`: once ready, its stdout
    /// and stderr go to the log.
    pub detached: bool,
}

/// Runs the service: prepares DIR, starts PROG, waits for its greeting,
/// reports readiness, serves until PROG ends for good or serve is
/// stopped, and cleans up.
pub fn serve(options: Options, config: Config) -> Result<ExitCode, Failure> {
    let detached = options.detached;
    let mut server = Server::start(options, config)?;
    if let Err(e) = server.until_ready() {
        server.cleanup();
        return Err(e);
    }
    // Ready: DIR on stdout is the signal (for `--daemon`'s parent too).
    if let Err(e) = server.report_ready(detached) {
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

/// `--daemon`: run this same command line detached (with `--detached`
/// instead of `--daemon`), wait until it prints DIR (ready) or fails, and
/// pass that on.
pub fn daemonize() -> Result<ExitCode, Failure> {
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
    // Both end when the detached serve redirects them to its log (ready)
    // or exits (failed). Read at the same time: a serve that writes more
    // than a pipe holds to stderr before it is ready must not block.
    let errors = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        })
    });
    let _ = child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut ready));
    let errors = errors
        .and_then(|t| t.join().ok())
        .map(|t| String::from_utf8_lossy(&t).into_owned())
        .unwrap_or_default();
    if let Some(dir) = ready.lines().next().filter(|l| !l.is_empty()) {
        // What serve said before it was ready (`-v` logs) is passed on.
        eprint!("{errors}");
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

/// Refuses an existing directory that holds anything but the log of an
/// earlier serve: nothing has been made in it yet.
fn refuse_non_empty(dir: &FifoDir) -> Result<(), Failure> {
    let mut names = dir.entries().map_err(Failure::internal)?;
    names.retain(|n| n != LOG);
    if let Some(first) = names.first() {
        return Err(Failure::new(
            1,
            format!(
                "refusing {}: it is not empty ({} entries, such as {first:?}); serve needs a \
                 new path or an empty private directory",
                dir.path().display(),
                names.len()
            ),
        ));
    }
    Ok(())
}

/// The running service: DIR, its FIFOs and log, PROG under its supervisor,
/// and the state machine.
#[derive(Debug)]
struct Server {
    /// DIR as given, for messages.
    path: PathBuf,
    dir: FifoDir,
    /// The liveness lock (see `protocol`), never released by hand: the
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
    prog_output: OutputArgs,
    env: EnvArgs,
    /// The grace of a stop (`duet stop --grace` replaces it).
    grace: Duration,
    /// What the pid file says.
    state: State,
    /// The state machine: requests, replies, greetings, raw input and output.
    requests: Requests,
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
    /// Replies that did not fit in their client's FIFO at once (a client
    /// that is stopped, say): written as it reads, given up after
    /// [`REPLY_WRITE`], never blocking serve.
    outgoing: Vec<Outgoing>,
}

/// A reply being written to a client's FIFO.
#[derive(Debug)]
struct Outgoing {
    file: File,
    bytes: Vec<u8>,
    written: usize,
    deadline: Instant,
    id: String,
    fifo: String,
    keep_fifo: bool,
}

impl Server {
    /// Checks and prepares DIR, starts PROG.
    fn start(options: Options, config: Config) -> Result<Server, Failure> {
        let path = options.dir;
        let dir = FifoDir::create(&path).map_err(|e| {
            if protocol::is_shared(&path) {
                protocol::shared_dir(&path)
            } else {
                Failure::internal(format!("{e}"))
            }
        })?;
        let Some(alive) = protocol::claim(&dir)? else {
            let who =
                protocol::read_state(&dir).map_or(String::new(), |s| format!(" (pid {})", s.pid));
            return Err(Failure::internal(format!(
                "{} is already served{who}; stop it first with `duet stop {}`",
                path.display(),
                path.display()
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
                        path.display(),
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
                // Not a served directory: it must be empty, so that serve
                // never mixes its files with the user's (`serve ~` would
                // leave a log in the home directory).
                Err(_) => {
                    refuse_foreign_entries(&dir)?;
                    refuse_non_empty(&dir)?;
                }
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
        let grace = options.policy.grace;
        let mut sup = Supervisor::new(options.policy)?;
        // serve decides how to stop (with the grace `duet stop` asked for).
        for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            sup.forward_signal(sig, false);
        }
        if std::process::id() == 1 {
            // A container's init: orphans are ours to reap.
            sup.set_subreaper()?;
        }
        let requests = Requests::new(config).map_err(Failure::internal)?;
        let mut server = Server {
            state: State {
                pid: std::process::id(),
                child: None,
                program: options
                    .program
                    .argv
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                started: protocol::now_secs(),
                restarts: 0,
                created_dir: created,
                not_answering: None,
                ended: None,
            },
            path,
            dir,
            alive: Some(alive),
            fifos,
            input,
            output,
            ctl,
            log,
            sup,
            program: options.program,
            pty: options.pty,
            prog_output: options.output,
            env: options.env,
            grace,
            requests,
            stopping: false,
            watch,
            dir_lost: false,
            log_start,
            keep_log: false,
            outgoing: Vec::new(),
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

    /// Starts PROG (its stderr to the log) and tells the state machine.
    fn spawn(&mut self) -> Result<Child, Failure> {
        let log = self
            .log
            .try_clone()
            .map_err(|e| Failure::internal(format!("cannot reuse the log: {e}")))?;
        let mut cmd = self.program.command();
        cmd.pty(self.pty);
        self.env.apply(&mut cmd, self.pty);
        self.prog_output.apply(&mut cmd);
        // On a pipe PROG's stderr goes to the log unless merged; on a pty
        // it is the terminal, as for `chat --pty`: an error is the reply.
        if !self.pty && !self.prog_output.merge_stderr {
            cmd.stderr(Stdio::from(log));
        }
        let child = cmd.spawn()?;
        log::info!(
            "serve: started {} (pid {})",
            self.program.name(),
            child.id()
        );
        self.state.child = Some(child.id());
        self.state.not_answering = None;
        self.requests
            .handle_started(Instant::now())
            .map_err(Failure::internal)?;
        Ok(child)
    }

    /// Runs the loop until PROG has greeted, then writes the pid file.
    /// PROG's exit meanwhile is a failed start, whatever `--restart` says:
    /// the error carries its status and the end of its stderr.
    fn until_ready(&mut self) -> Result<(), Failure> {
        while !self.requests.is_ready() {
            self.flush_replies();
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
            self.requests.handle_timeout(Instant::now());
            self.deliver_replies();
            self.act_on_events()?;
            if self.requests.is_ready() {
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

    /// Reports readiness (DIR on stdout); a detached serve then sends its
    /// stdout and stderr to the log, so the parent sees end-of-file on both.
    fn report_ready(&self, detached: bool) -> Result<(), Failure> {
        let mut out = io::stdout();
        writeln!(out, "{}", self.path.display())
            .and_then(|()| out.flush())
            .map_err(|e| Failure::internal(format!("cannot report readiness: {e}")))?;
        if detached {
            let log = self
                .dir
                .open_file(LOG, OFlag::O_WRONLY | OFlag::O_APPEND)
                .map_err(Failure::internal)?;
            nix::unistd::dup2_stdout(&log).map_err(|e| Failure::internal(format!("dup2: {e}")))?;
            nix::unistd::dup2_stderr(&log).map_err(|e| Failure::internal(format!("dup2: {e}")))?;
        }
        Ok(())
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

    /// The event loop. Returns when PROG is gone for good or serve was stopped.
    fn serve(&mut self) -> Result<ExitCode, Failure> {
        loop {
            self.pump_output()?;
            self.read_requests();
            // Before next_input: an ended greeting or reply lets the next
            // request go in this same round.
            self.requests.handle_timeout(Instant::now());
            self.deliver_replies();
            self.act_on_events()?;
            self.next_input();
            self.write_input();
            // A send is answered once its lines went to PROG.
            self.deliver_replies();
            self.write_output();
            self.flush_replies();
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
                // The clients waiting learn of the stop now, not after
                // the grace period.
                self.requests.handle_stop();
                self.deliver_replies();
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
                    self.requests.handle_restart();
                    self.deliver_replies();
                    report_restart(&self.program, &self.sup);
                    let child = self.spawn()?;
                    self.sup.start(child);
                    self.state.restarts = self.sup.restarts();
                    protocol::write_state(&self.dir, &self.state)?;
                }
                Step::Done(status) => {
                    self.pump_output()?;
                    if self.stopping {
                        // Requests that came during the stop name it too.
                        self.requests.handle_stop();
                    }
                    self.requests.handle_end(status);
                    self.deliver_replies();
                    log::info!(
                        "serve: {} {}; serve ends",
                        self.program.name(),
                        ended(status)
                    );
                    if !self.stopping && !self.dir_lost {
                        self.record_end(status);
                    }
                    return Ok(if self.dir_lost {
                        ExitCode::from(125)
                    } else if self.stopping {
                        ExitCode::SUCCESS
                    } else {
                        exit_code(status)
                    });
                }
            }
        }
    }

    /// PROG stopped for good: the pid file says why, and DIR, its log and
    /// the pid file stay (see [`Server::cleanup`]) for `duet status`.
    fn record_end(&mut self, status: ExitStatus) {
        let restarts = match (self.sup.policy().restart, self.sup.policy().max_restarts) {
            (Restart::Never, _) => String::new(),
            (_, Some(max)) if self.sup.restarts() >= max => {
                format!(
                    " after {} restarts (the most --max-restarts allows)",
                    self.sup.restarts()
                )
            }
            _ => String::new(),
        };
        let why = format!(
            "{} {}{restarts}; see {}",
            self.program.name(),
            ended(status),
            self.dir.path().join(LOG).display()
        );
        self.state.ended = Some(why);
        self.state.child = None;
        match protocol::write_state(&self.dir, &self.state) {
            Ok(()) => self.keep_log = true,
            Err(e) => log::warn!("serve: {}", e.message),
        }
    }

    /// Carries out what the state machine reported: a first greeting that
    /// never ended fails the start; PROG not answering is logged, shown by
    /// `duet status`, and with a restart policy PROG is recycled.
    fn act_on_events(&mut self) -> Result<(), Failure> {
        while let Some(event) = self.requests.poll_event() {
            match event {
                Event::StartTimedOut(message) => return Err(Failure::new(TIMEOUT, message)),
                Event::NotAnswering(message) => {
                    self.state.not_answering = Some(message.clone());
                    protocol::write_state(&self.dir, &self.state)?;
                    if self.sup.policy().restart == Restart::Never {
                        eprintln!("duet: {message}; requests wait until it has");
                    } else {
                        eprintln!("duet: {message}; stopping it to restart it");
                        self.sup.recycle(self.grace)?;
                    }
                }
                Event::AnswersAgain => {
                    if self.state.not_answering.take().is_some() {
                        log::warn!("serve: {} answers again", self.program.name());
                        if let Err(e) = protocol::write_state(&self.dir, &self.state) {
                            log::warn!("serve: {}", e.message);
                        }
                    }
                }
            }
        }
        Ok(())
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

    /// Reads everything PROG has written and hands it to the state machine,
    /// then delivers the replies that completed.
    fn pump_output(&mut self) -> Result<(), Failure> {
        let result = self.read_output();
        self.deliver_replies();
        self.act_on_events()?;
        result
    }

    /// Reads PROG's stdout until nothing more is available or it ends; at
    /// its end, learns PROG's status when a client waits for its reply.
    fn read_output(&mut self) -> Result<(), Failure> {
        while !self.requests.output_ended() {
            let Some(child) = self.sup.child() else {
                return Ok(());
            };
            match child.read_available(Duration::ZERO) {
                Ok(bytes) if bytes.is_empty() => return Ok(()),
                Ok(bytes) => self.requests.handle_output(&bytes, Instant::now()),
                Err(duet::Error::Eof { .. }) => {
                    // Output ends when PROG does, as a rule: a moment tells
                    // how, for the message of a client still waiting.
                    let status = if self.requests.awaits_reply() {
                        child.wait_timeout(EXIT_AFTER_EOF).ok().flatten()
                    } else {
                        None
                    };
                    self.requests.handle_output_end(status);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads complete request lines from `ctl` into the state machine.
    fn read_requests(&mut self) {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match (&self.ctl).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.requests.handle_ctl(&bytes, Instant::now());
    }

    /// Reads raw input from `in` (as much as the state machine holds), then
    /// lets the state machine choose PROG's next input; a request is sent
    /// only after PROG's pending output was read: that output came before
    /// it, and belongs to no request.
    fn next_input(&mut self) {
        let mut buf = [0u8; 8192];
        while self.requests.wants_raw_input() {
            match (&self.input).read(&mut buf) {
                Ok(n) if n > 0 => self.requests.handle_raw_input(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        let available = !self.stopping && self.sup.is_running();
        // A request answered at once (a framing that cannot be used) lets
        // the next one go in this same round, not at some later wake-up.
        while self.requests.next_input(available, Instant::now()) {
            if let Err(e) = self.pump_output() {
                log::warn!("serve: {}", e.message);
            }
            self.requests.start_request(Instant::now());
            self.deliver_replies();
        }
    }

    /// Sends pending input while PROG's stdin has room, never blocking:
    /// at most `PIPE_BUF` bytes at a time, each write after `poll` said
    /// there is room (a pipe then takes all of it at once).
    fn write_input(&mut self) {
        while !self.requests.input().is_empty() {
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
            let pending = self.requests.input();
            let chunk = &pending[..pending.len().min(PIPE_BUF)];
            let n = chunk.len();
            if let Err(e) = child.send_bytes(chunk) {
                // PROG is going away: the request was not answered, so it
                // waits for the restart (or gets an error if there is none).
                log::info!("serve: cannot write to the program: {e}");
                self.requests.handle_write_failed();
                return;
            }
            self.requests.input_written(n);
        }
    }

    /// Moves output to `out` as far as it has room.
    fn write_output(&mut self) {
        loop {
            let pending = self.requests.out_backlog();
            if pending.is_empty() {
                break;
            }
            match (&self.output).write(pending) {
                Ok(n) => self.requests.out_written(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    /// Writes every reply the state machine decided on.
    fn deliver_replies(&mut self) {
        while let Some(delivery) = self.requests.poll_reply() {
            self.deliver(delivery);
        }
    }

    /// Starts writing a reply to its client's FIFO, as much as it takes
    /// now; the rest is written as the client reads ([`Server::flush_replies`]).
    /// A client that is gone (no reader) loses its reply, which is the
    /// point.
    fn deliver(&mut self, delivery: Delivery) {
        let id = delivery.reply.id.clone();
        let result = self.dir.existing_fifo(&delivery.fifo).and_then(|fifo| {
            let file = fifo.open(Access::Write, true)?;
            let mut line = serde_json::to_vec(&delivery.reply)?;
            line.push(b'\n');
            Ok((file, line))
        });
        match result {
            Ok((file, bytes)) => self.outgoing.push(Outgoing {
                file,
                bytes,
                written: 0,
                deadline: Instant::now() + REPLY_WRITE,
                id,
                fifo: delivery.fifo,
                keep_fifo: delivery.keep_fifo,
            }),
            Err(e) => {
                log::info!("serve: the client of {id} is gone: {e}");
                self.done_with(&delivery.fifo, delivery.keep_fifo);
            }
        }
        self.flush_replies();
    }

    /// Writes what the clients' FIFOs have room for, without blocking;
    /// drops the replies done, and those whose client has not read them
    /// within [`REPLY_WRITE`].
    fn flush_replies(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.outgoing.len() {
            let out = &mut self.outgoing[i];
            let outcome = loop {
                if out.written == out.bytes.len() {
                    break Some(Ok(()));
                }
                match (&out.file).write(&out.bytes[out.written..]) {
                    Ok(n) => out.written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        break (now >= out.deadline).then(|| {
                            Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "its client did not read it in time",
                            ))
                        });
                    }
                    Err(e) => break Some(Err(e)),
                }
            };
            let Some(result) = outcome else {
                i += 1;
                continue;
            };
            let out = self.outgoing.remove(i);
            match result {
                Ok(()) => log::debug!("serve: replied to {}", out.id),
                Err(e) => log::info!("serve: the reply to {} is lost: {e}", out.id),
            }
            self.done_with(&out.fifo, out.keep_fifo);
        }
    }

    /// An `ask -` reuses its FIFO for its next request and removes it
    /// itself; a single ask's is removed here, in case it was killed.
    fn done_with(&self, fifo: &str, keep: bool) {
        if !keep {
            let _ = self.dir.remove_entry(fifo);
        }
    }

    /// Polls everything serve waits for, until the nearest deadline: the
    /// state machine's or the supervisor's (a grace period, a restart's
    /// backoff).
    fn wait(&self) -> Result<(), Failure> {
        let mut fds = vec![
            PollFd::new(self.sup.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.ctl.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.watch.as_fd(), PollFlags::POLLIN),
        ];
        if self.requests.wants_raw_input() {
            fds.push(PollFd::new(self.input.as_fd(), PollFlags::POLLIN));
        }
        if !self.requests.out_backlog().is_empty() {
            fds.push(PollFd::new(self.output.as_fd(), PollFlags::POLLOUT));
        }
        for out in &self.outgoing {
            fds.push(PollFd::new(out.file.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(child) = self.sup.child_ref() {
            if !self.requests.output_ended() {
                if let Some(fd) = child.stdout_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                }
            }
            if !self.requests.input().is_empty() {
                if let Some(fd) = child.stdin_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLOUT));
                }
            }
        }
        let deadline = earliest(
            self.requests
                .poll_timeout()
                .into_iter()
                .chain(self.sup.deadline())
                .chain(self.outgoing.iter().map(|o| o.deadline)),
        );
        match poll(&mut fds, poll_timeout(deadline)) {
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
        // An ended service keeps its pid file, which says why.
        let mut names = if self.state.ended.is_some() {
            vec![LOCK, STOP]
        } else {
            vec![PID, LOCK, STOP]
        };
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
