//! `duet run`: run PROG like a shell would, plus supervision in the manner
//! of tini: signal forwarding, zombie reaping, graceful stop, restarts.
//!
//! Without `--pty`, `--transcript` or `--ready`, PROG inherits duet's
//! stdin, stdout and stderr: its bytes never pass through duet, so they are
//! exact and add no latency. With `--pty` or `--transcript` duet pumps all
//! three through one `poll` loop (together with signals), with `--ready`
//! only stdout and stderr: every byte is copied as it arrives.
//!
//! Signals INT, TERM, HUP, QUIT, USR1, USR2 and WINCH are forwarded to PROG
//! (to its process group with `--group`), once per delivery, rewritten by
//! `--map-signal`. With `--pty`, WINCH instead copies duet's terminal size
//! to PROG's pty, and the kernel signals PROG. TERM also stops PROG
//! gracefully: the forwarded TERM is the only one PROG gets, and after
//! `--grace` it gets KILL (a second TERM would reach a program in the
//! middle of its cleanup, which many take as "exit now"). After INT, TERM,
//! HUP or QUIT, PROG is not restarted.
//!
//! One ^C at a terminal is one SIGINT to PROG. Without `--group` (and
//! without `--pty`) PROG shares duet's process group, so the terminal's
//! SIGINT reaches PROG directly: duet sees from the signal's origin
//! (`si_code`) that the kernel sent it to the whole group and does not
//! forward it again (the same for ^\, a resize, a hangup). With `--group`
//! PROG's group is the terminal's foreground group (below), so the
//! terminal signals PROG alone; with `--pty` the outer terminal signals
//! duet alone, which forwards.
//!
//! With `--group` and a terminal on stdin whose foreground group is duet's,
//! PROG's group is made the terminal's foreground group so that it can read
//! it; duet takes the terminal back when it ends. With any other stdin (a
//! pipe, or a terminal where duet runs in the background) duet leaves the
//! terminal alone.
//!
//! Restarts are said on stderr at the default verbosity, as supervisors
//! log them: when PROG exits and a restart waits for its backoff
//! (`duet: ./server exited with code 3; restarting in 200ms (restart 2 of
//! 5)`), and when the last allowed restart is used up (`duet: ./server
//! exited with code 3; giving up after 5 restarts`).
//!
//! Readiness (`--ready`, `--ready-file`, `NOTIFY_SOCKET`) is in
//! [`crate::ready`].
//!
//! As PID 1 (a container's init, `unshare --pid --fork`), duet reaps every
//! orphan as if `--subreaper` were given, and INT and HUP stop PROG
//! gracefully as TERM does (forwarded, then KILL after `--grace`): the
//! kernel gives PID 1 no default action for them, so nothing else would.
//!
//! duet exits with PROG's code, or 128+N when PROG died of signal N.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use duet::supervise::{Backoff, Policy, Step, Supervisor, poll_timeout};
use duet::{Child, Signal, Stdio};
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
use nix::unistd::{Pid, getpgrp, isatty, tcgetpgrp, tcsetpgrp};

use crate::args::{EnvArgs, Program, RestartArg, parse_duration};
use crate::exit::{Failure, ended, exit_code};
use crate::ready::{Readiness, Stream};

/// Run PROG with signal forwarding, reaping, graceful stop and restarts.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  duet run --restart on-failure --max-restarts 5 -- ./server
  duet run --env LC_ALL=C --env PORT=8080 -- ./server
  duet run --ready '^listening' --ready-file server.ready -- ./server &")]
pub struct RunArgs {
    /// Run PROG on a pseudo-terminal; its size follows duet's terminal.
    #[arg(long)]
    pty: bool,
    /// Put PROG in its own process group and signal the whole group.
    #[arg(long)]
    group: bool,
    /// Become a subreaper: reap orphaned grandchildren too (Linux).
    #[arg(long)]
    subreaper: bool,
    /// After forwarding TERM, wait this long before KILL.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    /// Write every byte both ways to FILE, tagged with direction and time
    /// (stderr marked as such).
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// PROG is ready when a line of its output (stdout or stderr) matches
    /// REGEX; the output still passes through.
    #[arg(long, value_name = "REGEX", value_parser = parse_ready)]
    ready: Option<regex::bytes::Regex>,
    /// Create PATH when PROG is ready (removed when PROG exits). Without
    /// --ready, PROG says it is ready with sd_notify's READY=1.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Forward signal TO where duet receives FROM (repeatable), e.g.
    /// TERM=QUIT for a program that stops gracefully on QUIT.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_map)]
    map_signal: Vec<(Signal, Signal)>,
    /// When to start PROG again after it exits.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = RestartArg::Never)]
    restart: RestartArg,
    /// At most N restarts (default: no limit).
    #[arg(long, value_name = "N")]
    max_restarts: Option<u32>,
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    program: Program,
}

/// `--ready REGEX`.
fn parse_ready(text: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(text).map_err(|e| format!("bad regex {text:?}: {e}"))
}

/// `--map-signal FROM=TO`: signal names with or without `SIG`, in either
/// case, or numbers; FROM must be one that duet forwards.
fn parse_map(text: &str) -> Result<(Signal, Signal), String> {
    let (from, to) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not FROM=TO (e.g. TERM=QUIT)"))?;
    let (from, to) = (parse_signal(from)?, parse_signal(to)?);
    if !duet::supervise::FORWARDED.contains(&from) {
        return Err(format!(
            "duet does not forward {from}; FROM is one of INT, TERM, HUP, QUIT, USR1, USR2, WINCH"
        ));
    }
    Ok((from, to))
}

/// A signal by name (`TERM`, `SIGTERM`, `term`) or number (`15`).
fn parse_signal(text: &str) -> Result<Signal, String> {
    let upper = text.trim().to_ascii_uppercase();
    let parsed = match upper.parse::<i32>() {
        Ok(n) => Signal::try_from(n).ok(),
        Err(_) if upper.starts_with("SIG") => upper.parse().ok(),
        Err(_) => format!("SIG{upper}").parse().ok(),
    };
    parsed.ok_or_else(|| format!("{text:?} is not a signal (e.g. TERM, QUIT, USR1, 15)"))
}

/// Runs `duet run`.
pub fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let policy = Policy {
        restart: args.restart.into(),
        max_restarts: args.max_restarts,
        backoff: Backoff::default(),
        grace: args.grace,
        group: args.group,
    };
    let mut readiness = Readiness::new(
        args.ready.clone(),
        args.ready_file.clone(),
        std::env::var_os("NOTIFY_SOCKET"),
        args.program.remote.ssh.is_none(),
    )?;
    let mut sup = Supervisor::new(policy)?;
    // Without --group or --pty, PROG is in duet's process group: the
    // terminal's ^C reaches it without duet.
    sup.set_shares_group(!args.group && !args.pty);
    for &(from, to) in &args.map_signal {
        sup.map_signal(from, to);
    }
    // As PID 1 (a container's init, `unshare --pid --fork`) orphans are
    // duet's to reap, and INT and HUP are the only way to stop it: the
    // kernel gives PID 1 no default action for them.
    let init = std::process::id() == 1;
    if args.subreaper || init {
        sup.set_subreaper()?;
    }
    if init {
        log::info!("run: PID 1: reaping orphans; TERM, INT and HUP stop the program");
        sup.stop_on_signal(Signal::SIGINT);
        sup.stop_on_signal(Signal::SIGHUP);
    }
    if args.pty {
        // The pty follows duet's terminal: resizing it makes the kernel send
        // SIGWINCH to PROG once the new size is in place (a forwarded
        // signal could arrive before it).
        sup.forward_signal(Signal::SIGWINCH, false);
    }
    // What passes through duet: all of PROG's I/O for a pty or a
    // transcript, its output only for --ready.
    let pump_input = args.pty || args.transcript.is_some();
    let pump_output = pump_input || readiness.watches_output();
    // A pty carries stderr with stdout.
    let pump_stderr = pump_output && !args.pty;
    let transcript = match &args.transcript {
        Some(path) => Some(crate::args::open_transcript(path, &args.program)?),
        None => None,
    };
    // Only PROG's own group may read the terminal duet was started on.
    let terminal = (args.group && !pump_input)
        .then(Terminal::foreground)
        .flatten();
    let spawn =
        |transcript: Option<&std::fs::File>, readiness: &Readiness| -> Result<Child, Failure> {
            let mut cmd = args.program.command();
            cmd.process_group(args.group).pty(args.pty);
            args.env.apply(&mut cmd, false);
            readiness.apply(&mut cmd);
            cmd.stdin(if pump_input {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
            cmd.stdout(if pump_output {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
            if pump_stderr {
                cmd.stderr(Stdio::piped());
            }
            let mut child = cmd.spawn()?;
            if let Some(file) = transcript {
                let file = file
                    .try_clone()
                    .map_err(|e| Failure::internal(format!("cannot reuse the transcript: {e}")))?;
                child.set_transcript(file);
            }
            if args.pty {
                follow_terminal_size(&mut child);
            }
            if let Some(t) = &terminal {
                t.give_to(&mut child);
            }
            log::info!("run: started {} (pid {})", args.program.name(), child.id());
            Ok(child)
        };
    sup.start(spawn(transcript.as_ref(), &readiness)?);
    let mut pump = pump_output.then(|| Pump::new(pump_input, pump_stderr));
    // The restart count whose wait was said, so it is said once.
    let mut announced = None;
    loop {
        if let Some(p) = pump.as_mut() {
            p.transfer(&mut sup, &mut readiness)?;
        }
        wait(&sup, pump.as_ref(), &readiness)?;
        readiness.relay()?;
        let was_running = sup.is_running();
        let step = sup.step()?;
        if args.pty && sup.received().contains(&Signal::SIGWINCH) {
            if let Some(child) = sup.child() {
                follow_terminal_size(child);
            }
        }
        if was_running && !sup.is_running() {
            // What PROG wrote before it exited goes out (and may have made
            // it ready) before its exit is said.
            if let (Some(p), Some(child)) = (pump.as_mut(), sup.child()) {
                p.drain_output(child, &mut readiness)?;
            }
            let how = sup.last_status().map_or_else(|| "ended".to_string(), ended);
            let restart = sup.restart_at().map(|_| {
                let name = args.program.name();
                format!("{name} {how}; restarting in {}", restart_delay(&sup))
            });
            readiness.exited(restart.as_deref())?;
        }
        if sup.restart_at().is_some() && announced != Some(sup.restarts()) {
            announced = Some(sup.restarts());
            report_wait(&args.program, &sup);
        }
        match step {
            Step::Running => {}
            Step::Restart => {
                log::info!("run: restarting {}", args.program.name());
                let mut child = spawn(transcript.as_ref(), &readiness)?;
                if pump.as_ref().is_some_and(|p| p.stdin_eof) {
                    let _ = child.close_stdin();
                }
                sup.start(child);
                if let Some(p) = pump.as_mut() {
                    p.restarted();
                }
            }
            Step::Done(status) => {
                if let (Some(p), Some(child)) = (pump.as_mut(), sup.child()) {
                    p.drain_output(child, &mut readiness)?;
                }
                if sup.gave_up() {
                    let n = sup.restarts();
                    eprintln!(
                        "duet: {} {}; giving up after {n} restart{}",
                        args.program.name(),
                        ended(status),
                        if n == 1 { "" } else { "s" }
                    );
                }
                log::info!("run: {} {}", args.program.name(), ended(status));
                return Ok(exit_code(status));
            }
        }
    }
}

/// The wait before the restart that is due: the policy's backoff for it.
fn restart_delay(sup: &Supervisor) -> String {
    duet_script::duration::show(sup.policy().backoff.delay(sup.restarts()))
}

/// The line on stderr when PROG exited and its restart waits:
/// `duet: ./server exited with code 3; restarting in 200ms (restart 2 of 5)`.
fn report_wait(program: &Program, sup: &Supervisor) {
    let how = sup.last_status().map_or_else(|| "ended".to_string(), ended);
    let count = match sup.policy().max_restarts {
        Some(max) => format!("{} of {max}", sup.restarts() + 1),
        None => (sup.restarts() + 1).to_string(),
    };
    eprintln!(
        "duet: {} {how}; restarting in {} (restart {count})",
        program.name(),
        restart_delay(sup)
    );
}

/// The terminal on duet's stdin when duet is in its foreground process
/// group. With `--group` PROG leads a group of its own, which the terminal
/// would stop (SIGTTIN) as soon as PROG reads from it: so PROG's group gets
/// the foreground, and duet's group gets it back when this is dropped.
#[derive(Debug)]
struct Terminal {
    /// duet's own process group, the foreground one when duet started.
    ours: Pid,
}

impl Terminal {
    /// Only when stdin is a terminal whose foreground group is duet's: a
    /// `Terminal` takes the terminal back when dropped, so building one for
    /// any other stdin would make a backgrounded duet the foreground.
    fn foreground() -> Option<Terminal> {
        let stdin = io::stdin();
        let ours = getpgrp();
        if isatty(&stdin).unwrap_or(false) && tcgetpgrp(&stdin).ok() == Some(ours) {
            Some(Terminal { ours })
        } else {
            None
        }
    }

    fn give_to(&self, child: &mut duet::Child) {
        let pgid = Pid::from_raw(child.id() as i32);
        if let Err(e) = set_foreground(pgid) {
            log::warn!("cannot give the terminal to the program: {e}");
        }
        // PROG may have read the terminal before it was its own (and been
        // stopped): let it go on. Through the child (its group, by its
        // pidfd), never by number.
        let _ = child.signal(Signal::SIGCONT);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Err(e) = set_foreground(self.ours) {
            log::warn!("cannot take the terminal back: {e}");
        }
    }
}

/// Makes `pgid` the terminal's foreground group. SIGTTOU is blocked around
/// the call: once PROG's group has the terminal, duet is in the background,
/// and taking the terminal back would stop duet otherwise.
fn set_foreground(pgid: Pid) -> nix::Result<()> {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old))?;
    let result = tcsetpgrp(io::stdin(), pgid);
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    result
}

/// Copies duet's terminal size (stdin's, else stdout's) to the child's pty.
fn follow_terminal_size(child: &mut Child) {
    let size = duet::terminal_size(io::stdin().as_fd())
        .or_else(|| duet::terminal_size(io::stdout().as_fd()));
    if let Some((rows, cols)) = size {
        if let Err(e) = child.set_window_size(rows, cols) {
            log::debug!("cannot set the pty size: {e}");
        }
    }
}

/// Waits for a signal, the supervisor's deadline, a message on PROG's
/// notify socket, input from duet's stdin (when the child can take it),
/// room in the child's stdin for pending input, or output from the child.
fn wait(sup: &Supervisor, pump: Option<&Pump>, readiness: &Readiness) -> Result<(), Failure> {
    let stdin = io::stdin();
    let mut fds = vec![PollFd::new(sup.as_fd(), PollFlags::POLLIN)];
    if let Some(fd) = readiness.notify_fd() {
        fds.push(PollFd::new(fd, PollFlags::POLLIN));
    }
    if let (Some(p), Some(child)) = (pump, sup.child_ref()) {
        if !p.out_eof {
            if let Some(fd) = child.stdout_fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
        }
        if !p.err_eof {
            if let Some(fd) = child.stderr_fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
        }
        // Between a child's exit and its restart, input waits.
        if p.input && sup.is_running() {
            if !p.pending.is_empty() {
                if let Some(fd) = child.stdin_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLOUT));
                }
            } else if !p.stdin_eof {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
    }
    match poll(&mut fds, poll_timeout(sup.deadline())) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(Failure::internal(format!("poll: {e}"))),
    }
}

/// Copies the child's stdout and stderr to duet's, and duet's stdin to the
/// child when it is piped.
#[derive(Debug)]
struct Pump {
    /// duet's stdin goes through duet (else PROG inherits it).
    input: bool,
    /// Read from duet's stdin, not yet sent.
    pending: Vec<u8>,
    /// duet's stdin has ended (and the child's stdin was closed).
    stdin_eof: bool,
    /// The current child's stdout has ended.
    out_eof: bool,
    /// The current child's stderr has ended (or is not piped).
    err_eof: bool,
    /// Whether the child's stderr is piped.
    stderr: bool,
}

/// How much of duet's stdin is read at a time: at most what a pipe that
/// polls writable takes at once.
const CHUNK: usize = 4096;

impl Pump {
    fn new(input: bool, stderr: bool) -> Pump {
        Pump {
            input,
            pending: Vec::new(),
            stdin_eof: !input,
            out_eof: false,
            err_eof: !stderr,
            stderr,
        }
    }

    /// A new child: its output is open again.
    fn restarted(&mut self) {
        self.out_eof = false;
        self.err_eof = !self.stderr;
    }

    /// Moves whatever can move without blocking: the child's output to
    /// duet's stdout and stderr, and, while the child runs, duet's stdin to
    /// it.
    fn transfer(&mut self, sup: &mut Supervisor, readiness: &mut Readiness) -> Result<(), Failure> {
        let running = sup.is_running();
        let Some(child) = sup.child() else {
            return Ok(());
        };
        self.drain_output(child, readiness)?;
        if running && self.input {
            self.feed_input(child)?;
        }
        Ok(())
    }

    /// Copies everything the child has written so far to duet's stdout and
    /// stderr, each chunk shown to `readiness` once it has gone out.
    fn drain_output(
        &mut self,
        child: &mut Child,
        readiness: &mut Readiness,
    ) -> Result<(), Failure> {
        // A notify message PROG sent before this output counts first.
        readiness.relay()?;
        while !self.out_eof {
            match child.read_available(Duration::ZERO) {
                Ok(bytes) if bytes.is_empty() => break,
                Ok(bytes) => {
                    let mut out = io::stdout().lock();
                    out.write_all(&bytes)
                        .and_then(|()| out.flush())
                        .map_err(Failure::stdout)?;
                    readiness.output(Stream::Stdout, &bytes)?;
                }
                Err(duet::Error::Eof { .. }) => self.out_eof = true,
                Err(e) => return Err(e.into()),
            }
        }
        while !self.err_eof {
            match child.read_stderr_available(Duration::ZERO) {
                Ok(bytes) if bytes.is_empty() => break,
                Ok(bytes) => {
                    // duet's stderr closed is no reason to stop PROG.
                    if let Err(e) = io::stderr().lock().write_all(&bytes) {
                        log::debug!("run: cannot copy the program's stderr: {e}");
                    }
                    readiness.output(Stream::Stderr, &bytes)?;
                }
                Err(duet::Error::Eof { .. }) => self.err_eof = true,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads a chunk of duet's stdin when nothing is pending, and sends
    /// pending input when the child's stdin has room.
    fn feed_input(&mut self, child: &mut Child) -> Result<(), Failure> {
        if self.pending.is_empty()
            && !self.stdin_eof
            && ready(io::stdin().as_fd(), PollFlags::POLLIN)
        {
            let mut buf = [0u8; CHUNK];
            match io::stdin().lock().read(&mut buf) {
                Ok(0) => {
                    self.stdin_eof = true;
                    let _ = child.close_stdin();
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::internal(format!("cannot read stdin: {e}"))),
            }
        }
        if !self.pending.is_empty()
            && child
                .stdin_fd()
                .is_some_and(|fd| ready(fd, PollFlags::POLLOUT))
        {
            if let Err(e) = child.send_bytes(&self.pending) {
                // The child stopped reading (it exited or closed its stdin):
                // what it did not take is dropped, as with a pipe.
                log::debug!("run: the program takes no more input: {e}");
            }
            self.pending.clear();
        }
        Ok(())
    }
}

/// True when `fd` polls ready for `flags` (or has hung up / failed) right now.
fn ready(fd: BorrowedFd<'_>, flags: PollFlags) -> bool {
    let mut fds = [PollFd::new(fd, flags)];
    matches!(poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
}
