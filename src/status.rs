//! How a child ended: its exit status, and what a finished child produced.
//! Plain data: this module imports nothing of the crate.

use std::fmt;
use std::time::Duration;

/// The exit status of a child: a code it passed to `exit`, or the signal that
/// killed it, or (rarely) unknown.
///
/// A status is *unknown* in two cases. The child had not exited when duet
/// stopped waiting (the output of a timed-out `communicate`). Or the system
/// discarded the status before duet could collect it: the program ignores
/// SIGCHLD (an ignored disposition survives `exec`, so a program can start
/// that way without knowing), or another part of the program reaped the
/// child with its own `waitpid`, and the kernel is older than 6.15, which
/// keeps the status for the child's pidfd; the child has ended all the
/// same, and output captured from it is kept. Then [`code`](Self::code)
/// and [`signal`](Self::signal) are `None`, [`success`](Self::success) is
/// false and [`is_unknown`](Self::is_unknown) is true; `Display` says which
/// case it is. duet never substitutes another process's status.
///
/// ```
/// let status = duet::Command::new("sh").args(["-c", "exit 3"]).output()?.status;
/// assert_eq!(status.code(), Some(3));
/// assert!(!status.success());
/// assert_eq!(status.to_string(), "exited with code 3");
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExitStatus(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Code(i32),
    Signal {
        signal: i32,
        core_dumped: bool,
    },
    /// Nothing is known: the child had not exited (the output of a timed-out
    /// `communicate`).
    Unknown,
    /// The child ended, but the system discarded its status (reaped outside
    /// duet on a kernel that keeps none for pidfds).
    Discarded,
}

impl ExitStatus {
    /// A status for a child that called `exit(code)`.
    ///
    /// ```
    /// let status = duet::ExitStatus::from_code(0);
    /// assert!(status.success());
    /// assert_eq!(status.to_string(), "exited with code 0");
    /// ```
    pub fn from_code(code: i32) -> Self {
        ExitStatus(Kind::Code(code))
    }

    /// A status for a child killed by `signal`.
    ///
    /// ```
    /// let status = duet::ExitStatus::from_signal(9, false);
    /// assert_eq!((status.code(), status.signal()), (None, Some(9)));
    /// assert_eq!(status.to_string(), "killed by signal 9 (SIGKILL)");
    /// ```
    pub fn from_signal(signal: i32, core_dumped: bool) -> Self {
        ExitStatus(Kind::Signal {
            signal,
            core_dumped,
        })
    }

    /// The status of a child that has not ended as far as duet knows.
    pub(crate) fn unknown() -> Self {
        ExitStatus(Kind::Unknown)
    }

    /// A child that has ended but whose status the system discarded.
    pub(crate) fn discarded() -> Self {
        ExitStatus(Kind::Discarded)
    }

    /// Decodes a `wait(2)`-style status word (`code << 8`, or the signal
    /// number with 0x80 for a core dump).
    pub(crate) fn from_wait_status(status: i32) -> Self {
        let signal = status & 0x7f;
        if signal == 0 {
            ExitStatus::from_code((status >> 8) & 0xff)
        } else {
            ExitStatus::from_signal(signal, status & 0x80 != 0)
        }
    }

    /// True when the status is not known (see the type's documentation).
    pub fn is_unknown(&self) -> bool {
        matches!(self.0, Kind::Unknown | Kind::Discarded)
    }

    /// True when the child exited with code 0.
    ///
    /// ```
    /// assert!(duet::Command::new("true").output()?.status.success());
    /// assert!(!duet::Command::new("false").output()?.status.success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn success(&self) -> bool {
        self.0 == Kind::Code(0)
    }

    /// The exit code, or `None` when a signal killed the child.
    ///
    /// ```
    /// let out = duet::Command::new("sh").args(["-c", "exit 7"]).output()?;
    /// assert_eq!(out.status.code(), Some(7));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn code(&self) -> Option<i32> {
        match self.0 {
            Kind::Code(code) => Some(code),
            Kind::Signal { .. } | Kind::Unknown | Kind::Discarded => None,
        }
    }

    /// The signal that killed the child, if one did.
    ///
    /// ```
    /// let mut sleep = duet::Command::new("sleep").arg("60").spawn()?;
    /// sleep.kill()?;
    /// assert_eq!(sleep.wait()?.signal(), Some(9));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn signal(&self) -> Option<i32> {
        match self.0 {
            Kind::Code(_) | Kind::Unknown | Kind::Discarded => None,
            Kind::Signal { signal, .. } => Some(signal),
        }
    }

    /// True when the child was killed by a signal and dumped core.
    ///
    /// ```
    /// let mut sleep = duet::Command::new("sleep").arg("60").spawn()?;
    /// sleep.kill()?;                        // SIGKILL never dumps core
    /// assert!(!sleep.wait()?.core_dumped());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn core_dumped(&self) -> bool {
        matches!(
            self.0,
            Kind::Signal {
                core_dumped: true,
                ..
            }
        )
    }

    /// The status as a shell reports it: the code, or 128 + the signal
    /// (125, duet's own failure, when the status is not known).
    ///
    /// ```
    /// use duet::ExitStatus;
    /// assert_eq!(ExitStatus::from_code(3).shell_code(), 3);
    /// assert_eq!(ExitStatus::from_signal(15, false).shell_code(), 143);   // 128 + 15
    /// ```
    pub fn shell_code(&self) -> i32 {
        match self.0 {
            Kind::Code(code) => code,
            Kind::Signal { signal, .. } => 128 + signal,
            Kind::Unknown | Kind::Discarded => 125,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Kind::Code(code) => write!(f, "exited with code {code}"),
            Kind::Unknown => write!(f, "had not exited"),
            Kind::Discarded => write!(
                f,
                "ended with an unknown status (reaped outside duet, as when SIGCHLD is ignored)"
            ),
            Kind::Signal {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by signal {signal}")?;
                if let Ok(sig) = nix::sys::signal::Signal::try_from(signal) {
                    write!(f, " ({})", sig.as_str())?;
                }
                if core_dumped {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// How long `communicate` keeps reading after the child exited while a
/// descendant still holds its output pipes open.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// What a finished child produced ([`Command::output`](crate::Command::output),
/// [`Child::communicate`](crate::Child::communicate)).
///
/// ```
/// let out = duet::Command::new("sh").args(["-c", "echo out; echo err >&2; exit 2"]).output()?;
/// assert_eq!(out.stdout, b"out\n");
/// assert_eq!(out.stderr, b"err\n");           // output() pipes stderr
/// assert_eq!(out.status.code(), Some(2));
/// assert!(!out.still_open);
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// How the child ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to a piped stderr.
    pub stderr: Vec<u8>,
    /// True when the child had exited but its output pipes were still open
    /// (held by a descendant) after [`DRAIN_GRACE`]: duet stopped reading
    /// instead of hanging, and `stdout`/`stderr` hold what arrived until then.
    pub still_open: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_code_and_signal() {
        assert_eq!(ExitStatus::from_code(2).to_string(), "exited with code 2");
        assert_eq!(
            ExitStatus::from_signal(9, false).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(ExitStatus::from_signal(11, true).shell_code(), 139);
        assert!(ExitStatus::from_signal(11, true).core_dumped());
        let lost = ExitStatus::discarded();
        assert!(lost.is_unknown() && !lost.success());
        assert_eq!((lost.code(), lost.signal()), (None, None));
    }

    #[test]
    fn wait_status_words_decode_like_waitpid() {
        assert_eq!(
            ExitStatus::from_wait_status(3 << 8),
            ExitStatus::from_code(3)
        );
        assert_eq!(
            ExitStatus::from_wait_status(9),
            ExitStatus::from_signal(9, false)
        );
        assert_eq!(
            ExitStatus::from_wait_status(11 | 0x80),
            ExitStatus::from_signal(11, true)
        );
    }
}
