//! A separate stderr for the script runner and the recorder: the library
//! reads stdout, and a pipe of their own carries stderr, drained by a
//! thread so that the program never blocks on it however long the runner
//! waits in the library (a send, an exit). The thread hands each chunk over
//! with the time it arrived and wakes the caller's `poll` through a pipe.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// A pipe for the program's stderr: the read end, and the write end to
/// give to the program (`duet::Stdio::from`).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// A separate stderr: a thread reads the pipe and hands the chunks over,
/// waking the runner's `poll` through a pipe.
pub struct ErrFeed {
    chunks: mpsc::Receiver<(Instant, Vec<u8>)>,
    wake: OwnedFd,
    /// Closing it stops the thread.
    stop: Option<OwnedFd>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ErrFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErrFeed")
    }
}

impl ErrFeed {
    /// Starts the thread reading `source`.
    pub fn start(source: OwnedFd) -> io::Result<ErrFeed> {
        let (wake, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let (stop_r, stop) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (tx, chunks) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("duet-stderr".into())
            .spawn(move || relay(&source, &stop_r, &wake_w, &tx))?;
        Ok(ErrFeed {
            chunks,
            wake,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The descriptor to poll: readable when chunks are waiting.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The chunks that arrived, each with its time; an empty chunk is the
    /// end of the stream.
    pub fn take(&self) -> Vec<(Instant, Vec<u8>)> {
        self.drain_wake();
        self.chunks.try_iter().collect()
    }

    /// Empties the wake pipe; the chunks are in the channel.
    fn drain_wake(&self) {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.wake, &mut buf), Ok(n) if n > 0) {}
    }
}

impl Drop for ErrFeed {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The stderr thread: read, hand over, wake; an empty chunk is the end.
fn relay(source: &OwnedFd, stop: &OwnedFd, wake: &OwnedFd, tx: &mpsc::Sender<(Instant, Vec<u8>)>) {
    let mut buf = vec![0u8; 65536];
    let hand_over = |bytes: Vec<u8>| {
        let _ = tx.send((Instant::now(), bytes));
        // A full wake pipe already wakes the runner.
        let _ = nix::unistd::write(wake, b"x");
    };
    loop {
        let mut fds = [
            PollFd::new(source.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return hand_over(Vec::new()),
        }
        if fds[1].any().unwrap_or(false) {
            return;
        }
        match nix::unistd::read(source, &mut buf) {
            Ok(0) => return hand_over(Vec::new()),
            Ok(n) => hand_over(buf[..n].to_vec()),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => return hand_over(Vec::new()),
        }
    }
}
