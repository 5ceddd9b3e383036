//! `duet serve`: keep PROG running behind named pipes in DIR.
//!
//! The layout of DIR, the liveness lock and the ask protocol are described
//! in [`super::served`]. This module is the server: one thread, one `poll`
//! loop over the FIFOs, PROG's output and input, and signals.
//!
//! serve keeps its own ends of `in`, `out` and `ctl` open read-write (as
//! `empty` does): clients come and go without PROG seeing end-of-file, and
//! writers never get `ENXIO`/`EPIPE` because a reader vanished.
//!
//! It is ready (and prints DIR on stdout) once the FIFOs exist, PROG runs
//! and the pid file is written; with `--daemon` the parent prints DIR only
//! then and exits, so `dir=$(duet serve --daemon /tmp/x -- bc -q)` can be
//! followed by `duet ask "$dir" ...` at once.
//!
//! It ends when PROG ends for good (per `--restart`), or on TERM, INT or HUP
//! (`duet stop` sends TERM after writing the grace period to `DIR/stop`):
//! PROG gets TERM, then KILL after the grace period; then every file serve
//! made is removed, and DIR too if serve created it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use duet::fifo::{Access, Fifo, FifoDir};
use duet::supervise::{Backoff, Policy, Restart, Step, Supervisor, poll_timeout};
use duet::{Child, Signal, Stdio};
use nix::fcntl::{Flock, OFlag};
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::framing::{Collector, Framing};
use super::served::{
    self, CTL, IN, LOCK, LOG, OUT, PID, REPLY_PREFIX, Reply, Request, STOP, State,
};
use super::{Failure, Program, parse_duration};

/// Keep PROG running behind DIR/in and DIR/out for `duet ask`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: dir=$(duet serve --daemon /tmp/calc -- bc -q); duet ask \"$dir\" 2+2"
)]
pub struct ServeArgs {
    /// The directory for the FIFOs (created 0700, or an existing private one).
    dir: PathBuf,
    /// Detach: print DIR when ready and return; serve logs to DIR/log.
    #[arg(long)]
    daemon: bool,
    /// Run PROG on a pseudo-terminal.
    #[arg(long)]
    pty: bool,
    /// When to start PROG again after it exits.
    #[arg(long, value_name = "WHEN", default_value = "never")]
    restart: Restart,
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
    if args.daemon && !args.detached {
        return daemonize();
    }
    if args.detached {
        // A new session: no controlling terminal, no SIGHUP when it closes.
        nix::unistd::setsid().map_err(|e| Failure::internal(format!("setsid: {e}")))?;
    }
    let mut server = Server::start(&args)?;
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
        .map_or(super::INTERNAL, |c| c.clamp(1, 255) as u8);
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

/// A request being answered.
#[derive(Debug)]
struct Active {
    request: Request,
    collector: Collector,
    deadline: Instant,
    /// For `--quiet` framing: the reply ends when nothing arrives until then.
    quiet_until: Option<Instant>,
}

/// Most output kept for `out` when nobody reads it; older bytes are dropped.
const OUT_BACKLOG: usize = 1 << 20;

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
    /// Bytes for PROG's stdin.
    to_child: Vec<u8>,
    /// Raw bytes from `in`, forwarded between requests.
    raw_in: Vec<u8>,
    /// Output for `out`.
    raw_out: VecDeque<u8>,
    /// A partial request line from `ctl`.
    ctl_buf: Vec<u8>,
    queue: VecDeque<Request>,
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
}

impl Server {
    /// Checks and prepares DIR, starts PROG, writes the pid file.
    fn start(args: &ServeArgs) -> Result<Server, Failure> {
        let dir = FifoDir::create(&args.dir).map_err(|e| Failure::internal(format!("{e}")))?;
        let Some(alive) = served::claim(&dir)? else {
            let who =
                served::read_state(&dir).map_or(String::new(), |s| format!(" (pid {})", s.pid));
            return Err(Failure::internal(format!(
                "{} is already served{who}; stop it first with `duet stop {}`",
                args.dir.display(),
                args.dir.display()
            )));
        };
        let mut created = dir.created();
        if !created {
            match served::read_state(&dir) {
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
        dir.open_file(LOCK, OFlag::O_RDWR | OFlag::O_CREAT)
            .map_err(Failure::internal)?;
        let policy = Policy {
            restart: args.restart,
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
                started: served::now_secs(),
                restarts: 0,
                created_dir: created,
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
        };
        match server.spawn() {
            Ok(child) => server.sup.start(child),
            Err(e) => {
                server.cleanup();
                return Err(e);
            }
        }
        if let Err(e) = served::write_state(&server.dir, &server.state) {
            server.cleanup();
            return Err(e);
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
        self.out_eof = false;
        Ok(child)
    }

    /// The event loop. Returns when PROG is gone for good or serve was stopped.
    fn serve(&mut self) -> Result<ExitCode, Failure> {
        loop {
            self.pump_output()?;
            self.read_requests();
            self.next_input();
            self.write_input();
            self.write_output();
            self.check_timers();
            self.wait()?;
            if let Some(grace) = self.stop_requested() {
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
                    "serve: stopping {} (grace {:?})",
                    self.program.name(),
                    self.grace
                );
                self.stopping = true;
                self.sup.stop(self.grace)?;
            }
            match step {
                Step::Running => {}
                Step::Restart => {
                    let child = self.spawn()?;
                    self.sup.start(child);
                    self.state.restarts = self.sup.restarts();
                    served::write_state(&self.dir, &self.state)?;
                }
                Step::Done(status) => {
                    self.pump_output()?;
                    self.fail_active(
                        "eof",
                        &format!("the program {status} before the reply was complete"),
                    );
                    for request in std::mem::take(&mut self.queue) {
                        self.send_reply(
                            &request,
                            String::new(),
                            Some(("eof", format!("the program {status}"))),
                        );
                    }
                    log::info!("serve: {} {status}; serve ends", self.program.name());
                    return Ok(if self.dir_lost {
                        ExitCode::from(125)
                    } else if self.stopping {
                        ExitCode::SUCCESS
                    } else {
                        super::exit_code(status)
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

    /// The grace period `duet stop` asked for, if it wrote one.
    fn stop_requested(&self) -> Option<Duration> {
        let mut text = String::new();
        self.dir
            .open_file(STOP, OFlag::O_RDONLY)
            .ok()?
            .read_to_string(&mut text)
            .ok()?;
        text.trim().parse::<u64>().ok().map(Duration::from_millis)
    }

    /// Reads everything PROG has written and routes it: to the active
    /// request, or to `out`.
    fn pump_output(&mut self) -> Result<(), Failure> {
        while !self.out_eof {
            let Some(child) = self.sup.child() else {
                return Ok(());
            };
            match child.read_available(Duration::ZERO) {
                Ok(bytes) if bytes.is_empty() => return Ok(()),
                Ok(bytes) => self.route(&bytes),
                Err(duet::Error::Eof { .. }) => {
                    self.out_eof = true;
                    self.fail_active(
                        "eof",
                        "the program closed its output before the reply was complete",
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn route(&mut self, bytes: &[u8]) {
        let Some(active) = self.active.as_mut() else {
            self.queue_out(bytes);
            return;
        };
        if let Framing::QuietMs(ms) = active.request.framing {
            active.quiet_until = Some(Instant::now() + Duration::from_millis(ms));
        }
        if let Some(rest) = active.collector.feed(bytes) {
            let active = self.active.take().expect("active request");
            let output = String::from_utf8_lossy(active.collector.reply()).into_owned();
            self.send_reply(&active.request, output, None);
            self.queue_out(&rest);
        }
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
        while let Some(pos) = self.ctl_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.ctl_buf.drain(..=pos).collect();
            match serde_json::from_slice::<Request>(&line) {
                Ok(request)
                    if request.reply.starts_with(REPLY_PREFIX) && !request.reply.contains('/') =>
                {
                    log::debug!("serve: request {} {:?}", request.id, request.line);
                    self.queue.push_back(request);
                }
                Ok(request) => log::warn!(
                    "serve: ignoring a request with reply FIFO {:?}",
                    request.reply
                ),
                Err(e) => log::warn!("serve: ignoring a malformed request ({e})"),
            }
        }
    }

    /// Chooses what PROG gets next: raw input from `in` between requests,
    /// else the next request.
    fn next_input(&mut self) {
        let mut buf = [0u8; 8192];
        while self.raw_in.len() < OUT_BACKLOG {
            match (&self.input).read(&mut buf) {
                Ok(n) if n > 0 => self.raw_in.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        if self.active.is_some() || self.stopping || !self.sup.is_running() || self.out_eof {
            return;
        }
        if !self.raw_in.is_empty() {
            self.to_child.append(&mut self.raw_in);
            return;
        }
        if !self.to_child.is_empty() {
            return;
        }
        let Some(request) = self.queue.pop_front() else {
            return;
        };
        // Output that arrived before this request belongs to no request.
        if let Err(e) = self.pump_output() {
            log::warn!("serve: {}", e.message);
        }
        let collector = match Collector::new(request.framing.clone()) {
            Ok(c) => c,
            Err(e) => {
                self.send_reply(
                    &request,
                    String::new(),
                    Some(("bad-request", format!("bad regex: {e}"))),
                );
                return;
            }
        };
        self.to_child.extend_from_slice(request.line.as_bytes());
        self.to_child.push(b'\n');
        self.active = Some(Active {
            deadline: Instant::now() + Duration::from_millis(request.timeout_ms),
            request,
            collector,
            quiet_until: None,
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
                self.queue.push_front(active.request);
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

    fn check_timers(&mut self) {
        let now = Instant::now();
        let Some(active) = self.active.as_ref() else {
            return;
        };
        if active.quiet_until.is_some_and(|q| now >= q) {
            let active = self.active.take().expect("active request");
            let output = String::from_utf8_lossy(active.collector.reply()).into_owned();
            self.send_reply(&active.request, output, None);
        } else if now >= active.deadline {
            let waited = super::duration::show(Duration::from_millis(active.request.timeout_ms));
            let describe = active.request.framing.describe();
            self.fail_active(
                "timeout",
                &format!("timed out after {waited} waiting for {describe}"),
            );
        }
    }

    fn fail_active(&mut self, kind: &str, message: &str) {
        if let Some(active) = self.active.take() {
            let partial = String::from_utf8_lossy(active.collector.reply()).into_owned();
            self.send_reply(&active.request, partial, Some((kind, message.to_string())));
        }
    }

    /// Writes a reply to the request's FIFO; a client that is gone (no
    /// reader) loses it, which is the point. The FIFO is removed after.
    fn send_reply(&mut self, request: &Request, output: String, error: Option<(&str, String)>) {
        let (error, message) = match error {
            Some((kind, message)) => (Some(kind.to_string()), message),
            None => (None, String::new()),
        };
        let reply = Reply {
            id: request.id.clone(),
            output,
            error,
            message,
        };
        let result = self.dir.existing_fifo(&request.reply).and_then(|fifo| {
            let mut file = fifo.open(Access::Write, true)?;
            let mut line = serde_json::to_vec(&reply)?;
            line.push(b'\n');
            served::write_all_until(&mut file, &line, Instant::now() + Duration::from_secs(5))?;
            Ok(())
        });
        match result {
            Ok(()) => log::debug!("serve: replied to {}", request.id),
            Err(e) => log::info!("serve: the client of {} is gone: {e}", request.id),
        }
        let _ = self.dir.remove_entry(&request.reply);
    }

    /// Polls everything serve waits for, until the nearest deadline.
    fn wait(&self) -> Result<(), Failure> {
        let mut deadline = self.sup.deadline();
        if let Some(a) = &self.active {
            let d = a.quiet_until.map_or(a.deadline, |q| q.min(a.deadline));
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
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
        match poll(&mut fds, poll_timeout(deadline)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(Failure::internal(format!("poll: {e}"))),
        }
    }

    /// Stops PROG if it still runs and removes what serve made: the FIFOs,
    /// the pid, lock, stop and log files, leftover reply FIFOs, and DIR if
    /// duet created it. Idempotent.
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
        let mut names = vec![PID, LOCK, STOP];
        if self.state.created_dir {
            names.push(LOG);
        }
        for name in names {
            if let Err(e) = self.dir.remove_entry(name) {
                log::warn!("serve: {e}");
            }
        }
        if self.state.created_dir {
            if let Err(e) = std::fs::remove_dir(self.dir.path()) {
                log::warn!("serve: cannot remove {}: {e}", self.dir.path().display());
            }
        }
    }
}
