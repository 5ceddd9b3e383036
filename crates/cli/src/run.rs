//! `duet run`: run PROG like a shell would, plus supervision in the manner
//! of tini: signal forwarding, zombie reaping, graceful stop, restarts.
//!
//! Without `--pty` or `--transcript`, PROG inherits duet's stdin, stdout and
//! stderr: its bytes never pass through duet, so they are exact and add no
//! latency. With either option duet pumps them through one `poll` loop
//! (together with signals): every byte is copied as it arrives.
//!
//! Signals INT, TERM, HUP, QUIT, USR1, USR2 and WINCH are forwarded to PROG
//! (to its process group with `--group`), once per delivery. With `--pty`,
//! WINCH instead copies duet's terminal size to PROG's pty, and the kernel
//! signals PROG. TERM also stops PROG gracefully: the forwarded TERM is the
//! only one PROG gets, and after `--grace` it gets KILL (a second TERM
//! would reach a program in the middle of its cleanup, which many take as
//! "exit now"). After INT, TERM, HUP or QUIT, PROG is not restarted.
//! Without `--group`, PROG shares duet's process group, so a Ctrl-C typed
//! at a terminal reaches PROG directly *and* through duet (twice); use
//! `--group` when that matters.
//!
//! With `--group` and a terminal on stdin whose foreground group is duet's,
//! PROG's group is made the terminal's foreground group so that it can read
//! it; duet takes the terminal back when it ends. With any other stdin (a
//! pipe, or a terminal where duet runs in the background) duet leaves the
//! terminal alone.
//!
//! Each restart is one line on stderr, as supervisors log them:
//! `duet: ./server exited with code 3; restart 1 of 5`.
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
use crate::exit::{Failure, exit_code};

/// Run PROG with signal forwarding, reaping, graceful stop and restarts.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  duet run --restart on-failure --max-restarts 5 -- ./server
  duet run --env LC_ALL=C --env PORT=8080 -- ./server")]
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
    /// Write every byte both ways to FILE, tagged with direction and time.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
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

/// Runs `duet run`.
pub fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let policy = Policy {
        restart: args.restart.into(),
        max_restarts: args.max_restarts,
        backoff: Backoff::default(),
        grace: args.grace,
        group: args.group,
    };
    let mut sup = Supervisor::new(policy)?;
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
    let pump = args.pty || args.transcript.is_some();
    let transcript = match &args.transcript {
        Some(path) => Some(crate::args::open_transcript(path, &args.program)?),
        None => None,
    };
    // Only PROG's own group may read the terminal duet was started on.
    let terminal = (args.group && !pump).then(Terminal::foreground).flatten();
    let spawn = |transcript: Option<&std::fs::File>| -> Result<Child, Failure> {
        let mut cmd = args.program.command();
        cmd.process_group(args.group).pty(args.pty);
        args.env.apply(&mut cmd, false);
        if pump {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit());
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
    sup.start(spawn(transcript.as_ref())?);
    let mut pump = if pump { Some(Pump::default()) } else { None };
    loop {
        if let Some(p) = pump.as_mut() {
            p.transfer(&mut sup)?;
        }
        wait(&sup, pump.as_ref())?;
        let step = sup.step()?;
        if args.pty && sup.received().contains(&Signal::SIGWINCH) {
            if let Some(child) = sup.child() {
                follow_terminal_size(child);
            }
        }
        match step {
            Step::Running => {}
            Step::Restart => {
                crate::args::report_restart(&args.program, &sup);
                let mut child = spawn(transcript.as_ref())?;
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
                    p.drain_output(child)?;
                }
                log::info!(
                    "run: {} {}",
                    args.program.name(),
                    crate::exit::ended(status)
                );
                return Ok(exit_code(status));
            }
        }
    }
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

/// Waits for a signal, the supervisor's deadline, input from duet's stdin
/// (when the child can take it), room in the child's stdin for pending
/// input, or output from the child.
fn wait(sup: &Supervisor, pump: Option<&Pump>) -> Result<(), Failure> {
    let stdin = io::stdin();
    let mut fds = vec![PollFd::new(sup.as_fd(), PollFlags::POLLIN)];
    if let (Some(p), Some(child)) = (pump, sup.child_ref()) {
        if !p.out_eof {
            if let Some(fd) = child.stdout_fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
        }
        // Between a child's exit and its restart, input waits.
        if sup.is_running() {
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

/// Copies duet's stdin to the child and the child's stdout to duet's.
#[derive(Debug, Default)]
struct Pump {
    /// Read from duet's stdin, not yet sent.
    pending: Vec<u8>,
    /// duet's stdin has ended (and the child's stdin was closed).
    stdin_eof: bool,
    /// The current child's stdout has ended.
    out_eof: bool,
}

/// How much of duet's stdin is read at a time: at most what a pipe that
/// polls writable takes at once.
const CHUNK: usize = 4096;

impl Pump {
    /// A new child: its output is open again.
    fn restarted(&mut self) {
        self.out_eof = false;
    }

    /// Moves whatever can move without blocking: the child's output to
    /// duet's stdout, and, while the child runs, duet's stdin to it.
    fn transfer(&mut self, sup: &mut Supervisor) -> Result<(), Failure> {
        let running = sup.is_running();
        let Some(child) = sup.child() else {
            return Ok(());
        };
        self.drain_output(child)?;
        if running {
            self.feed_input(child)?;
        }
        Ok(())
    }

    /// Copies everything the child has written so far to duet's stdout.
    fn drain_output(&mut self, child: &mut Child) -> Result<(), Failure> {
        if self.out_eof {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        loop {
            match child.read_available(Duration::ZERO) {
                Ok(bytes) if bytes.is_empty() => return Ok(()),
                Ok(bytes) => out
                    .write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(Failure::stdout)?,
                Err(duet::Error::Eof { .. }) => {
                    self.out_eof = true;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
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
