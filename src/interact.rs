//! Handing a conversation to the person at duet's own terminal (pexpect's
//! and Tcl Expect's `interact`): what they type goes to the child, what the
//! child writes comes to them, until the child exits or they type `^]`.
//!
//! One `poll` waits on duet's stdin, the child's outputs, its pidfd and,
//! when the child is on a pty and duet on a terminal, a SIGWINCH pipe.
//! Output goes through the conversation core first, so the watches keep
//! acting; what they leave is written out and consumed.

use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::poll::PollFlags;
use nix::sys::termios::{self, SetArg, Termios};

use crate::driver::{Written, drain_deadline};
use crate::session::Session;
use crate::{ExitStatus, Result, sys};
use duet_core::Stream;

/// `^]`, the escape that ends the hand-over (as telnet's and pexpect's).
pub(crate) const ESCAPE: u8 = 0x1d;

/// How much of the person's input is read at once.
const CHUNK: usize = 4096;

impl Session {
    /// See [`Child::interact`](crate::Child::interact).
    pub(crate) fn interact(&mut self) -> Result<Option<ExitStatus>> {
        let (stdin, stdout) = (io::stdin(), io::stdout());
        let input = stdin.as_fd();
        let on_pty = self.streams.stdin.as_ref().is_some_and(|i| i.is_pty());
        // Restored when this guard drops: on return, on error, on a panic
        // unwinding through here (an observer's, say).
        let _raw = RawMode::enter(input, !on_pty)?;
        let terminal = [input, stdout.as_fd()]
            .into_iter()
            .find(|fd| fd.is_terminal());
        let pty = self
            .streams
            .stdin
            .as_ref()
            .filter(|i| i.is_pty())
            .map(|i| i.fd().try_clone_to_owned())
            .transpose()?;
        let winch = match (&pty, terminal) {
            (Some(pty), Some(tty)) => {
                follow_size(tty, pty.as_fd());
                Some(Winch::new()?)
            }
            _ => None,
        };
        let mut typing = true;
        loop {
            self.streams
                .flush_replies(sys::deadline_after(self.timeout))?;
            if let Some(e) = self.streams.core.take_failure() {
                return Err(e.into());
            }
            show(self)?;
            let exited = self.process.as_ref().map(|p| p.pidfd());
            if exited.is_none() && self.streams.core.all_eof() {
                // No process to wait for: the end of its output is the end.
                return Ok(None);
            }
            let ready = {
                let mut fds = Vec::with_capacity(5);
                let mut what = Vec::with_capacity(5);
                if let Some(w) = &winch {
                    fds.push(sys::poll_fd(w.read.as_fd(), PollFlags::POLLIN));
                    what.push(Source::Winch);
                }
                if typing {
                    fds.push(sys::poll_fd(input, PollFlags::POLLIN));
                    what.push(Source::Person);
                }
                for s in [Stream::Stdout, Stream::Stderr] {
                    if let Some(fd) = self.streams.output_fd(s)
                        && !self.streams.core.is_eof(s)
                    {
                        fds.push(sys::poll_fd(fd, PollFlags::POLLIN));
                        what.push(Source::Output(s));
                    }
                }
                if let Some(fd) = exited {
                    fds.push(sys::poll_fd(fd, PollFlags::POLLIN));
                    what.push(Source::Exit);
                }
                sys::poll(&mut fds, None)?;
                let ready: Vec<Source> = fds
                    .iter()
                    .zip(what)
                    .filter(|(fd, _)| fd.any().unwrap_or(true))
                    .map(|(_, w)| w)
                    .collect();
                ready
            };
            for source in ready {
                match source {
                    Source::Winch => {
                        if let (Some(w), Some(pty), Some(tty)) = (&winch, &pty, terminal) {
                            w.drain();
                            follow_size(tty, pty.as_fd());
                        }
                    }
                    Source::Person => {
                        let mut buf = [0u8; CHUNK];
                        let n = sys::read(input, &mut buf)?;
                        let typed = &buf[..n];
                        if n == 0 {
                            // Our input ended (a pipe): so does the child's.
                            typing = false;
                            self.close_stdin()?;
                            continue;
                        }
                        let escape = typed.iter().position(|&b| b == ESCAPE);
                        let (give, stop) = match escape {
                            Some(at) => (&typed[..at], true),
                            None => (typed, false),
                        };
                        if !give.is_empty() && !self.type_in(give)? {
                            // The child no longer reads: its exit or its
                            // output will end the hand-over.
                            typing = false;
                        }
                        if stop {
                            show(self)?;
                            return Ok(None);
                        }
                    }
                    Source::Output(s) => {
                        self.streams.read_stream(s)?;
                    }
                    Source::Exit => return self.ended().map(Some),
                }
            }
        }
    }

    /// Writes what the person typed, as typed (their terminal is raw: the
    /// child's own terminal does the editing). `Ok(false)`: the child's
    /// input is closed.
    fn type_in(&mut self, typed: &[u8]) -> Result<bool> {
        let start = std::time::Instant::now();
        let outcome = match self
            .streams
            .write_control(typed, start.checked_add(self.timeout))
        {
            Ok(outcome) => outcome,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if outcome != Written::All {
            self.written(outcome, start, || {
                format!("the child to read what was typed ({} bytes)", typed.len())
            })?;
        }
        Ok(true)
    }

    /// The child exited: shows the rest of its output (for at most
    /// `DRAIN_GRACE` when a descendant holds it open) and returns its status.
    fn ended(&mut self) -> Result<ExitStatus> {
        let deadline = drain_deadline(None);
        while !self.streams.core.all_eof() && self.streams.drain(deadline, None)? {
            self.streams.flush_replies(deadline)?;
            show(self)?;
        }
        show(self)?;
        let process = self.process.as_mut().expect("only a child's session exits");
        Ok(process
            .wait_deadline(None)?
            .expect("no deadline: the child's status"))
    }
}

/// What one `poll` of `interact` found ready.
#[derive(Clone, Copy, Debug)]
enum Source {
    Winch,
    Person,
    Output(Stream),
    Exit,
}

/// Writes what the core holds unread to duet's stdout (stdout) and stderr
/// (a piped stderr), consuming it.
fn show(session: &mut Session) -> Result<()> {
    let out = session.streams.core.take_all(Stream::Stdout);
    if !out.is_empty() {
        let mut stdout = io::stdout().lock();
        stdout.write_all(&out)?;
        stdout.flush()?;
    }
    let err = session.streams.core.take_all(Stream::Stderr);
    if !err.is_empty() {
        io::stderr().lock().write_all(&err)?;
    }
    Ok(())
}

/// Gives the child's pty the size of duet's terminal.
fn follow_size(tty: BorrowedFd<'_>, pty: BorrowedFd<'_>) {
    match sys::window_size(tty) {
        Ok((rows, cols)) if rows > 0 && cols > 0 => {
            if let Err(e) = sys::set_window_size(pty, rows, cols) {
                log::debug!("could not pass the window size on: {e}");
            }
        }
        _ => {}
    }
}

/// The terminal on duet's stdin in raw mode while this lives: keys reach
/// the child one by one, `^C` and `^Z` included (the child's own terminal,
/// if it has one, acts on them). For a child on pipes, output processing
/// is left as it was, so its `\n` still starts a new line; a child on a
/// pty has its own terminal's `\r\n`, which passes untouched.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// `None` when `fd` is not a terminal. `keep_output`: output
    /// processing stays as it was.
    fn enter(fd: BorrowedFd<'a>, keep_output: bool) -> io::Result<Option<RawMode<'a>>> {
        if !fd.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if keep_output {
            raw.output_flags = saved.output_flags;
        }
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        // TCSANOW: waiting for output to drain could wait forever on a
        // terminal nobody reads.
        if let Err(e) = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved) {
            log::warn!("could not restore the terminal's settings: {e}");
        }
    }
}

/// SIGWINCH, as a readable descriptor, while this lives.
struct Winch {
    read: UnixStream,
    id: signal_hook::SigId,
}

impl Winch {
    fn new() -> io::Result<Winch> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let id = signal_hook::low_level::pipe::register(signal_hook::consts::SIGWINCH, write)?;
        Ok(Winch { read, id })
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!(io::Read::read(&mut &self.read, &mut buf), Ok(n) if n > 0) {}
    }
}

impl Drop for Winch {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}
