//! Readiness for `duet run`: when PROG is ready to serve, and who is told.
//!
//! PROG is ready when a line of its output (stdout or stderr) matches
//! `--ready REGEX`, or when it sends `READY=1` to the notify socket duet
//! gives it (the sd_notify protocol of systemd, `NOTIFY_SOCKET`). Then duet
//! creates `--ready-file PATH` and, when duet itself runs with
//! `NOTIFY_SOCKET` in its environment (a systemd `Type=notify` unit), sends
//! `READY=1` there. All of it happens after the line that made PROG ready
//! was passed on to duet's own output, so whoever waits for the file finds
//! the line already in the log; and a `READY=1` from PROG is handled before
//! any output PROG wrote after sending it.
//!
//! Readiness belongs to one run of PROG, as a systemd service's does: when
//! PROG exits, the file is removed, and a restarted PROG is ready again only
//! when it says so again (`READY=1` is sent once more; systemd ignores a
//! repeated one). The outer socket also hears `STATUS=` lines about
//! restarts.
//!
//! PROG gets a notify socket of its own (a datagram socket in a private
//! directory, `NOTIFY_SOCKET` in its environment) when duet has one, and
//! when `--ready-file` is given without `--ready` (then PROG's `READY=1` is
//! the only way to be ready); never on another host (`--ssh`), where only
//! `--ready` tells. duet passes on `STATUS=`, `STOPPING=`,
//! `RELOADING=`, `MONOTONIC_USEC=`, `WATCHDOG=`, `ERRNO=`, `BUSERROR=` and
//! `EXTEND_TIMEOUT_USEC=` lines; it drops `MAINPID=` (duet is the main
//! process, and PROG's pid changes with each restart), file-descriptor
//! store messages and anything else. Relaying from duet's own pid is what
//! lets a unit keep systemd's default `NotifyAccess=main`.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use regex::bytes::Regex;

use crate::exit::Failure;

/// The lines of PROG's notify messages that are passed on.
const RELAYED: [&str; 8] = [
    "STATUS=",
    "STOPPING=",
    "RELOADING=",
    "MONOTONIC_USEC=",
    "WATCHDOG=",
    "ERRNO=",
    "BUSERROR=",
    "EXTEND_TIMEOUT_USEC=",
];

/// The longest unfinished output line kept for `--ready`; a longer one is
/// dropped (it cannot be a readiness line worth waiting for).
const MAX_LINE: usize = 1 << 20;

/// Which of PROG's output streams bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// PROG's stdout (or its pty).
    Stdout,
    /// PROG's piped stderr.
    Stderr,
}

/// Whether PROG is ready, and everything that is told when it becomes so.
#[derive(Debug)]
pub struct Readiness {
    regex: Option<Regex>,
    file: Option<PathBuf>,
    outer: Option<Outer>,
    inner: Option<Inner>,
    ready: bool,
    /// The unfinished last line of stdout and of stderr.
    partial: [Vec<u8>; 2],
}

impl Readiness {
    /// Readiness by `regex` and by PROG's notify socket (only for a
    /// `local` PROG: one on another host cannot reach it), told through
    /// `file` and through `notify_socket` (duet's own `NOTIFY_SOCKET`). A
    /// `file` left by an earlier run is removed now: it must not say
    /// "ready" before this PROG is.
    pub fn new(
        regex: Option<Regex>,
        file: Option<PathBuf>,
        notify_socket: Option<OsString>,
        local: bool,
    ) -> Result<Readiness, Failure> {
        if let Some(path) = &file {
            // Checked now, not when PROG is ready and running.
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(Failure::internal(format!(
                    "cannot use the ready file {}: {} is not a directory",
                    path.display(),
                    dir.display()
                )));
            }
            remove(path)?;
        }
        let outer = match notify_socket {
            Some(addr) if !addr.is_empty() => Some(Outer::new(&addr)?),
            _ => None,
        };
        let inner = if local && (outer.is_some() || (file.is_some() && regex.is_none())) {
            Some(Inner::new()?)
        } else {
            None
        };
        Ok(Readiness {
            regex,
            file,
            outer,
            inner,
            ready: false,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Gives PROG's command its notify socket (and never duet's own).
    /// systemd's `WATCHDOG_PID` names duet, and sd_notify's
    /// `sd_watchdog_enabled` in PROG would find it is not PROG and stay
    /// silent: it goes, so PROG's `WATCHDOG=1` pings come through duet.
    pub fn apply(&self, cmd: &mut duet::Command) {
        match &self.inner {
            Some(inner) => cmd
                .env("NOTIFY_SOCKET", &inner.path)
                .env_remove("WATCHDOG_PID"),
            None => cmd.env_remove("NOTIFY_SOCKET"),
        };
    }

    /// PROG's notify socket, readable when PROG sent a message.
    pub fn notify_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.as_ref().map(|i| i.socket.as_fd())
    }

    /// True when output must be read line by line for `--ready`.
    pub fn watches_output(&self) -> bool {
        self.regex.is_some()
    }

    /// Output from PROG, once duet has passed it on: a complete line that
    /// matches `--ready` makes PROG ready.
    pub fn output(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Failure> {
        let Some(regex) = &self.regex else {
            return Ok(());
        };
        if self.ready {
            return Ok(());
        }
        let partial = &mut self.partial[stream as usize];
        let mut matched = false;
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            partial.extend_from_slice(piece);
            if partial.ends_with(b"\n") {
                let line = partial.strip_suffix(b"\n").unwrap_or(partial);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                matched |= regex.is_match(line);
                partial.clear();
            } else if partial.len() > MAX_LINE {
                partial.clear();
            }
        }
        if matched {
            log::info!("run: the program is ready (its output matched --ready)");
            self.become_ready(true)?;
        }
        Ok(())
    }

    /// Reads what PROG sent to its notify socket and passes it on.
    pub fn relay(&mut self) -> Result<(), Failure> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Some(inner) = &self.inner else {
                return Ok(());
            };
            let n = match inner.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::internal(format!(
                        "cannot read the program's notify socket: {e}"
                    )));
                }
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            let mut relayed = Vec::new();
            let mut ready = false;
            for line in text.lines() {
                if line == "READY=1" {
                    ready = true;
                } else if RELAYED.iter().any(|key| line.starts_with(key)) {
                    relayed.push(line.to_string());
                } else if !line.is_empty() {
                    log::debug!("run: not passing on the program's notify line {line:?}");
                }
            }
            if ready && !self.ready {
                log::info!("run: the program is ready (it sent READY=1)");
                self.become_ready(false)?;
                relayed.insert(0, "READY=1".to_string());
            }
            if !relayed.is_empty() {
                self.tell(&relayed.join("\n"));
            }
        }
    }

    /// PROG has exited: it is not ready any more. `restart` (a `STATUS=`
    /// text) tells the outer socket that a restart waits.
    pub fn exited(&mut self, restart: Option<&str>) -> Result<(), Failure> {
        self.partial = [Vec::new(), Vec::new()];
        if self.ready {
            self.ready = false;
            if let Some(path) = &self.file {
                remove(path)?;
            }
        }
        if let Some(status) = restart {
            self.tell(&format!("STATUS={status}"));
        }
        Ok(())
    }

    /// Makes the ready file and, unless the caller passes the message on
    /// itself (`tell: false`), sends `READY=1` to the outer socket.
    fn become_ready(&mut self, tell: bool) -> Result<(), Failure> {
        self.ready = true;
        if let Some(path) = &self.file {
            std::fs::File::create(path).map_err(|e| {
                Failure::internal(format!(
                    "cannot create the ready file {}: {e}",
                    path.display()
                ))
            })?;
        }
        if tell {
            self.tell("READY=1");
        }
        Ok(())
    }

    /// Sends `message` to the outer socket, if there is one. A supervisor
    /// that stopped listening costs a warning, never the program.
    fn tell(&self, message: &str) {
        if let Some(outer) = &self.outer {
            if let Err(e) = outer.socket.send_to_addr(message.as_bytes(), &outer.addr) {
                log::warn!("cannot notify NOTIFY_SOCKET: {e}");
            }
        }
    }
}

impl Drop for Readiness {
    /// duet ends: PROG is not ready any more.
    fn drop(&mut self) {
        if self.ready {
            if let Some(path) = &self.file {
                if let Err(e) = std::fs::remove_file(path) {
                    log::warn!("cannot remove the ready file {}: {e}", path.display());
                }
            }
        }
    }
}

/// Removes the ready file if it is there.
fn remove(path: &Path) -> Result<(), Failure> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Failure::internal(format!(
            "cannot remove the ready file {}: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// duet's own `NOTIFY_SOCKET`: a path, or `@name` in the abstract namespace.
#[derive(Debug)]
struct Outer {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Outer {
    fn new(addr: &std::ffi::OsStr) -> Result<Outer, Failure> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        let bad = |e: io::Error| {
            Failure::internal(format!(
                "NOTIFY_SOCKET={} cannot be used: {e}",
                addr.to_string_lossy()
            ))
        };
        let bytes = addr.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(addr),
        }
        .map_err(bad)?;
        let socket = UnixDatagram::unbound().map_err(bad)?;
        Ok(Outer { socket, addr })
    }
}

/// PROG's notify socket, in a directory only duet's user can enter;
/// removed with the directory when dropped.
#[derive(Debug)]
struct Inner {
    socket: UnixDatagram,
    dir: PathBuf,
    path: PathBuf,
}

impl Inner {
    fn new() -> Result<Inner, Failure> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = private_dir(&base).map_err(|e| {
            Failure::internal(format!(
                "cannot make a directory for the program's notify socket in {}: {e}",
                base.display()
            ))
        })?;
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| {
                let _ = std::fs::remove_dir(&dir);
                Failure::internal(format!(
                    "cannot make the program's notify socket {}: {e}",
                    path.display()
                ))
            })?;
        Ok(Inner { socket, dir, path })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A new directory under `base`, mode 0700, with a name no one else has.
fn private_dir(base: &Path) -> io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut n = 0u32;
    loop {
        let dir = base.join(format!("duet-notify-{}-{nanos:x}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_regex(re: &str) -> Readiness {
        Readiness::new(Some(Regex::new(re).unwrap()), None, None, true).unwrap()
    }

    #[test]
    fn a_line_is_matched_only_once_it_is_complete() {
        let mut r = by_regex("^listening$");
        r.output(Stream::Stdout, b"starting\nlisten").unwrap();
        assert!(!r.ready);
        r.output(Stream::Stdout, b"ing").unwrap();
        assert!(!r.ready, "an unfinished line never matches");
        r.output(Stream::Stdout, b"\r\n").unwrap();
        assert!(r.ready, "a line ending in \\r\\n matches without the \\r");
    }

    #[test]
    fn streams_keep_their_own_unfinished_lines() {
        let mut r = by_regex("^listening$");
        r.output(Stream::Stdout, b"list").unwrap();
        r.output(Stream::Stderr, b"listening\n").unwrap();
        assert!(r.ready, "stderr's line is whole on its own");
        let mut r = by_regex("^listening$");
        r.output(Stream::Stderr, b"list").unwrap();
        r.output(Stream::Stdout, b"ening\n").unwrap();
        assert!(!r.ready, "the halves came on different streams");
    }

    #[test]
    fn an_exit_forgets_readiness_and_half_lines() {
        let mut r = by_regex("^up$");
        r.output(Stream::Stdout, b"up\nu").unwrap();
        assert!(r.ready);
        r.exited(Some("restarting")).unwrap();
        assert!(!r.ready);
        r.output(Stream::Stdout, b"p\n").unwrap();
        assert!(!r.ready, "the half line died with the old PROG");
    }
}
