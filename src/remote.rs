//! Programs on other hosts through OpenSSH ([`Command::ssh`]).
//!
//! A remote child is a local `ssh` process whose remote command is a small
//! POSIX `sh` wrapper composed here:
//!
//! 1. the remote login shell applies the working directory and the
//!    variables to remove, then `exec env [-i] NAME=VALUE... sh -c WRAPPER
//!    MARK PROG ARGS...`, every word single-quoted, so the words arrive
//!    exactly as given (the login shell must be a POSIX shell: sh, bash,
//!    dash, ksh or zsh);
//! 2. the wrapper checks that PROG can be run (`command -v`, or the file
//!    itself when the name has a `/`) and prints one line on stdout, the
//!    *marker*: `MARK ok PID START` (PID is its own pid, START the start time
//!    from `/proc/PID/stat` or `-`) or `MARK fail WHY`; then it `exec`s PROG,
//!    which keeps that pid;
//! 3. [`spawn`] reads lines up to the marker (lines before it come from the
//!    remote login scripts and are dropped) and hands the rest of stdout to
//!    the caller untouched.
//!
//! MARK carries a random nonce, so nothing a login script prints can pass
//! for it. Signals go to PID with `kill` run over the same multiplexed
//! connection, after checking that PID still has the start time it had (the
//! remote counterpart of a pidfd: a recycled pid is never signalled).
//!
//! One master connection per host: `ControlMaster=auto` with the socket in
//! a private 0700 directory (`$TMPDIR/duet-ssh-UID`) and
//! `ControlPersist=60`, so later spawns to the same host, from this process
//! or another, skip the TCP and key exchange.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use crate::command::{Command, DEFAULT_TIMEOUT, StdioKind};
use crate::error::SpawnFailure;
use crate::process::Remote;
use crate::{Child, Error, Result, Signal, Stdio, sys};

/// How long an idle master connection stays open after its last session.
const CONTROL_PERSIST: &str = "ControlPersist=60";

/// How long signalling a remote program may take before duet gives up and
/// signals the local `ssh` instead.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a SIGKILL delivered on the remote host waits for the local
/// `ssh` to end by itself before it is killed too.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The field of `/proc/PID/stat` after the command name that holds the
/// start time (field 22 of the whole line).
const START_FIELD: usize = 20;

/// Quotes `word` for a POSIX shell: inside single quotes every byte stands
/// for itself, and a quote is written `'\''`.
pub(crate) fn quote(word: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(word.len() + 2);
    out.push(b'\'');
    for &b in word {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// True for a name the shell's `unset` accepts.
fn is_identifier(name: &[u8]) -> bool {
    match name.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
        _ => return false,
    }
    name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn failure(step: &'static str, path: impl Into<String>, os: io::Error) -> SpawnFailure {
    SpawnFailure {
        step,
        path: Some(path.into()),
        os,
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}

/// Extracts field [`START_FIELD`] of `/proc/$VAR/stat` into `t` (`-` when
/// there is no `/proc`), in POSIX sh. The command name in parentheses may
/// hold spaces, so the fields are counted after its last `) `.
fn start_time_script(pid_var: &str) -> String {
    format!(
        "t=-; if [ -r /proc/{pid_var}/stat ]; then read -r s </proc/{pid_var}/stat; \
         s=${{s##*) }}; i=0; for w in $s; do i=$((i+1)); \
         if [ \"$i\" -eq {START_FIELD} ]; then t=$w; fi; done; fi; "
    )
}

/// The wrapper run by `sh -c` on the remote host; `$0` is the marker and
/// `"$@"` the program and its arguments.
fn wrapper() -> String {
    let mut s = String::from(
        "p=$1; case $p in \
         */*) if [ ! -e \"$p\" ]; then echo \"$0 fail missing\"; exit 127; fi; \
              if [ -d \"$p\" ] || [ ! -x \"$p\" ]; then echo \"$0 fail noexec\"; exit 126; fi;; \
         *) if ! command -v \"$p\" >/dev/null 2>&1; then echo \"$0 fail missing\"; exit 127; fi;; \
         esac; ",
    );
    s.push_str(&start_time_script("$$"));
    s.push_str("echo \"$0 ok $$ $t\"; exec \"$@\"");
    s
}

/// The remote command line for `cmd`: see the module documentation.
pub(crate) fn remote_command(cmd: &Command, mark: &str) -> Result<Vec<u8>, SpawnFailure> {
    let mut line: Vec<u8> = Vec::new();
    if let Some(mask) = cmd.umask {
        if mask > 0o777 {
            return Err(failure(
                "set the file mode creation mask to",
                format!("{mask:#o}"),
                invalid("a mask has only permission bits (at most 0o777)"),
            ));
        }
        line.extend_from_slice(format!("umask {mask:04o}; ").as_bytes());
    }
    if cmd.pty && !cmd.pty_echo {
        line.extend_from_slice(b"stty -echo 2>/dev/null; ");
    }
    if let Some(dir) = &cmd.cwd {
        let mut dir = dir.as_os_str().as_bytes().to_vec();
        if !dir.starts_with(b"/") {
            // Relative to the remote home; `./` keeps CDPATH out of it.
            dir.splice(0..0, *b"./");
        }
        let q = quote(&dir);
        line.extend_from_slice(b"cd -P -- ");
        line.extend_from_slice(&q);
        line.extend_from_slice(b" 2>/dev/null || { if [ -d ");
        line.extend_from_slice(&q);
        line.extend_from_slice(b" ]; then e=denied; else e=missing; fi; echo \"");
        line.extend_from_slice(mark.as_bytes());
        line.extend_from_slice(b" fail chdir-$e\"; exit 125; }; ");
    }

    // The last change to each variable wins, as locally.
    let mut changes: Vec<(&OsStr, Option<&OsStr>)> = Vec::new();
    for (key, value) in &cmd.env {
        let bytes = key.as_bytes();
        if bytes.is_empty() || bytes.contains(&b'=') {
            return Err(failure(
                "environment",
                key.to_string_lossy(),
                invalid("a variable name cannot be empty or contain '='"),
            ));
        }
        changes.retain(|(k, _)| *k != key.as_os_str());
        changes.push((key, value.as_deref()));
    }
    let removed: Vec<&OsStr> = changes
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !cmd.env_clear && !removed.is_empty() {
        line.extend_from_slice(b"unset");
        for key in removed {
            if !is_identifier(key.as_bytes()) {
                return Err(failure(
                    "environment",
                    key.to_string_lossy(),
                    invalid("on a remote host only a shell identifier can be removed"),
                ));
            }
            line.push(b' ');
            line.extend_from_slice(key.as_bytes());
        }
        line.extend_from_slice(b"; ");
    }

    line.extend_from_slice(b"exec env");
    if cmd.env_clear {
        line.extend_from_slice(b" -i");
    }
    for (key, value) in &changes {
        if let Some(value) = value {
            let mut kv = key.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(value.as_bytes());
            line.push(b' ');
            line.extend_from_slice(&quote(&kv));
        }
    }
    line.extend_from_slice(b" sh -c ");
    line.extend_from_slice(&quote(wrapper().as_bytes()));
    line.push(b' ');
    line.extend_from_slice(&quote(mark.as_bytes()));
    for word in std::iter::once(&cmd.program).chain(&cmd.args) {
        line.push(b' ');
        line.extend_from_slice(&quote(word.as_bytes()));
    }
    if cmd.merge_stderr {
        line.extend_from_slice(b" 2>&1");
    }
    if line.contains(&0) {
        return Err(failure(
            "argument",
            cmd.program_name(),
            invalid("contains a NUL byte"),
        ));
    }
    Ok(line)
}

/// The private directory holding the control sockets and the per-spawn
/// logs: `$TMPDIR/duet-ssh-UID`, created 0700. An existing one must be a
/// real directory owned by this user and closed to others.
pub(crate) fn control_dir() -> io::Result<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    let uid = nix::unistd::getuid().as_raw();
    let dir = std::env::temp_dir().join(format!("duet-ssh-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory owned by uid {uid} with mode 0700",
                dir.display()
            ),
        ));
    }
    Ok(DIR.get_or_init(|| dir))
}

/// A random token for the marker and the log's name.
fn nonce() -> String {
    let mut bytes = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // Unpredictability is a nicety here (login scripts cannot guess the
        // marker anyway); uniqueness comes from the pid and the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = (t ^ u64::from(std::process::id()) << 32).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `ssh` options and destination shared by the program's session and
/// the `kill` sessions: the caller's options first (the first value of an
/// option wins in ssh, so they override duet's), then duet's.
fn ssh_args(cmd: &Command, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    for opt in &cmd.ssh_options {
        args.push("-o".into());
        args.push(opt.clone());
    }
    let mut control_path = OsString::from("ControlPath=");
    control_path.push(dir.join("%C"));
    for opt in [
        OsString::from("BatchMode=yes"),
        "ControlMaster=auto".into(),
        control_path,
        CONTROL_PERSIST.into(),
        "LogLevel=ERROR".into(),
    ] {
        args.push("-o".into());
        args.push(opt);
    }
    args
}

/// What a remote child needs to be signalled: how to reach its host and
/// which process it is there. The local `ssh` process holds it as its
/// [`Remote`].
#[derive(Debug)]
pub(crate) struct Target {
    /// `ssh` options and `--`, then the host.
    ssh: Vec<OsString>,
    pid: u32,
    start: String,
    group: bool,
    /// Hangs up when the thread copying a non-piped stdout has finished.
    relay: Option<mpsc::Receiver<()>>,
}

impl Remote for Target {
    /// Delivers `signal` to the remote program. Returns true when nothing
    /// more is to be done locally; false when the local `ssh` (`local`, its
    /// pidfd) should get the signal too: when the host could not be reached
    /// (the remote program has lost its session then, and the local side
    /// must still follow the request), or after a SIGKILL when `ssh` has not
    /// ended within [`KILL_GRACE`] (a remote descendant holds the output
    /// open; waiting for its end must not depend on the remote host).
    /// Waiting for `ssh` to end on its own after a SIGKILL means that, once
    /// the child is reaped, sshd has reaped the remote program.
    fn deliver(&self, signal: Signal, local: BorrowedFd<'_>) -> bool {
        match self.send(signal) {
            Ok(()) if signal == Signal::SIGKILL => {
                let mut fds = [sys::poll_fd(local, PollFlags::POLLIN)];
                sys::poll(&mut fds, sys::deadline_after(KILL_GRACE)).unwrap_or(0) > 0
            }
            Ok(()) => true,
            Err(e) => {
                log::warn!(
                    "could not send {signal} to remote pid {}: {e}; signalling the local ssh",
                    self.pid
                );
                false
            }
        }
    }

    /// Called once the local ssh has been reaped: lets the stdout relay
    /// write what is left (bounded: a remote descendant may hold the
    /// output open), so a caller that exits next loses no output.
    fn reaped(&mut self) {
        if let Some(done) = self.relay.take() {
            let _ = done.recv_timeout(crate::DRAIN_GRACE);
        }
    }
}

impl Target {
    fn send(&self, signal: Signal) -> Result<()> {
        let name = signal.as_str().trim_start_matches("SIG");
        let target = if self.group {
            format!("-{}", self.pid)
        } else {
            self.pid.to_string()
        };
        let script = format!(
            "{}if [ \"$t\" = \"$2\" ]; then kill -s \"$3\" -- \"$4\" 2>/dev/null; fi; exit 0",
            start_time_script("$1")
        );
        let mut remote = b"exec sh -c ".to_vec();
        remote.extend_from_slice(&quote(script.as_bytes()));
        for word in ["sh", &self.pid.to_string(), &self.start, name, &target] {
            remote.push(b' ');
            remote.extend_from_slice(&quote(word.as_bytes()));
        }
        let mut ssh = Command::new("ssh");
        ssh.arg("-T")
            .args(["-o", "ConnectTimeout=10"])
            .args(&self.ssh)
            .arg(OsStr::from_bytes(&remote))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .timeout(SIGNAL_TIMEOUT);
        let out = Child::output_here(&ssh)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Io(io::Error::other(format!(
                "ssh {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))))
        }
    }
}

/// Starts `cmd` on its remote host. See [`Command::ssh`].
pub(crate) fn spawn(cmd: &Command) -> Result<Child> {
    let program = cmd.program_name();
    let fail = |f: SpawnFailure| f.into_error(&program);
    let host = cmd.ssh_host.clone().expect("spawn::remote needs a host");
    let host_name = host.to_string_lossy().into_owned();
    if cmd.channel {
        return Err(fail(failure(
            "give a channel to",
            host_name,
            io::Error::new(
                io::ErrorKind::Unsupported,
                "a channel cannot reach a program on another host",
            ),
        )));
    }
    // What only this host's kernel can do for a child: refused rather
    // than silently applied to the local ssh process instead.
    let local_only = [
        (
            !cmd.passed_fds.is_empty(),
            "pass a descriptor to",
            "a descriptor cannot reach a program on another host",
        ),
        (
            cmd.uid.is_some() || cmd.gid.is_some() || cmd.groups.is_some(),
            "set the credentials of",
            "credentials cannot be changed on another host: log in as that user (ssh(\"user@host\"))",
        ),
        (
            !cmd.rlimits.is_empty(),
            "set resource limits of",
            "resource limits apply only to local children",
        ),
        (
            cmd.setsid == Some(true),
            "start a new session for",
            "the remote program's session is sshd's to start",
        ),
        (
            cmd.arg0.is_some(),
            "set argv[0] of",
            "the remote shell runs the program under its own name",
        ),
    ];
    if let Some((_, step, why)) = local_only.into_iter().find(|(refused, _, _)| *refused) {
        return Err(fail(failure(
            step,
            host_name,
            io::Error::new(io::ErrorKind::Unsupported, why),
        )));
    }
    let dir =
        control_dir().map_err(|e| fail(failure("create the ssh control directory", "", e)))?;
    let token = nonce();
    let mark = format!("duet-remote-{token}");
    let remote = remote_command(cmd, &mark).map_err(fail)?;
    let log = dir.join(format!("log-{token}"));

    let shared = ssh_args(cmd, dir);
    let mut ssh = cmd.clone();
    ssh.program = "ssh".into();
    ssh.args = Vec::new();
    ssh.env = Vec::new();
    ssh.env_clear = false;
    ssh.cwd = None;
    ssh.ssh_host = None;
    ssh.ssh_options = Vec::new();
    ssh.umask = None;
    ssh.setsid = None;
    ssh.arg(if cmd.pty { "-tt" } else { "-T" })
        .args(["-e", "none", "-E"])
        .arg(&log)
        .args(&shared)
        .arg("--")
        .arg(&host)
        .arg(OsStr::from_bytes(&remote));

    // Without a piped stdout the marker still has to be read: stdout goes
    // to a pipe duet reads up to the marker, then a thread copies the rest
    // to where the caller sent it.
    let relay_to = match &cmd.stdout.0 {
        _ if cmd.pty || cmd.pty_stdout => None,
        StdioKind::Piped => None,
        other => Some(other.clone()),
    };
    let mut relay_read = None;
    if relay_to.is_some() {
        let (r, w) = sys::pipe().map_err(|e| fail(failure("create a pipe for", "stdout", e)))?;
        ssh.stdout(Stdio::from(w));
        relay_read = Some(r);
    }
    let timeout = cmd.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let spawned = crate::spawn::spawn(&ssh);
    drop(ssh); // our copy of the relay pipe's write end
    let mut child = Child::from_spawned(spawned?);

    let marker = match &relay_read {
        Some(r) => read_marker_raw(r, &mark, timeout),
        None => read_marker(&mut child, &mark, timeout),
    };
    let outcome = finish(&mut child, marker, &host_name, cmd, &log);
    let _ = std::fs::remove_file(&log);
    let (pid, start) = outcome?;

    let mut relay_done = None;
    if let (Some(r), Some(to)) = (relay_read, relay_to) {
        relay_done =
            Some(relay(r, to).map_err(|e| fail(failure("copy stdout from", host_name, e)))?);
    }
    let mut target = shared;
    target.push("--".into());
    target.push(host);
    child.process_mut().set_remote(Target {
        ssh: target,
        pid,
        start,
        group: cmd.process_group || cmd.pty,
        relay: relay_done,
    });
    Ok(child)
}

/// What came instead of the program.
enum Marker {
    Ok(String),
    Fail(String),
    /// stdout ended first: ssh failed.
    Eof,
    TimedOut,
}

fn parse_marker(line: &[u8], mark: &str) -> Option<Marker> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches('\r');
    let rest = line.strip_prefix(mark)?;
    if let Some(ok) = rest.strip_prefix(" ok ") {
        Some(Marker::Ok(ok.to_string()))
    } else {
        rest.strip_prefix(" fail ")
            .map(|why| Marker::Fail(why.to_string()))
    }
}

/// Reads stdout lines through the child until the marker.
fn read_marker(child: &mut Child, mark: &str, timeout: Duration) -> Result<Marker> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match child.read_line_timeout(left) {
            Ok(line) => match parse_marker(line.as_bytes(), mark) {
                Some(m) => return Ok(m),
                None => log::debug!("before the remote program started: {line:?}"),
            },
            Err(Error::InvalidUtf8 { .. }) => {}
            Err(Error::Eof { .. }) => return Ok(Marker::Eof),
            Err(Error::Timeout { .. }) => return Ok(Marker::TimedOut),
            Err(e) => return Err(e),
        }
    }
}

/// Reads the marker straight from a pipe, one byte at a time so that not a
/// byte of the program's output is taken from the pipe.
fn read_marker_raw(fd: &OwnedFd, mark: &str, timeout: Duration) -> Result<Marker> {
    let deadline = sys::deadline_after(timeout);
    let mut line = Vec::new();
    loop {
        let mut fds = [sys::poll_fd(fd.as_fd(), PollFlags::POLLIN)];
        if sys::poll(&mut fds, deadline)? == 0 {
            return Ok(Marker::TimedOut);
        }
        let mut byte = [0u8];
        if sys::read(fd.as_fd(), &mut byte)? == 0 {
            return Ok(Marker::Eof);
        }
        if byte[0] == b'\n' {
            if let Some(m) = parse_marker(&line, mark) {
                return Ok(m);
            }
            line.clear();
        } else {
            line.push(byte[0]);
        }
    }
}

/// Turns the marker into the remote pid and start time, or the spawn error.
fn finish(
    child: &mut Child,
    marker: Result<Marker>,
    host: &str,
    cmd: &Command,
    log: &Path,
) -> Result<(u32, String)> {
    let program = cmd.program_name();
    let on_host = |what: &str| format!("{host}:{what}");
    let err = |f: SpawnFailure| Err(f.into_error(&program));
    match marker? {
        Marker::Ok(rest) => {
            let mut words = rest.split(' ');
            let pid = words.next().and_then(|p| p.parse().ok());
            let start = words.next().unwrap_or("-").to_string();
            match pid {
                Some(pid) => Ok((pid, start)),
                None => err(failure(
                    "start",
                    on_host(&program),
                    io::Error::other(format!(
                        "unexpected reply from the remote wrapper: {rest:?}"
                    )),
                )),
            }
        }
        Marker::Fail(why) => {
            let _ = child.wait_timeout(Duration::from_secs(5));
            let dir = || {
                cmd.cwd
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            };
            match why.as_str() {
                "missing" if program.contains('/') => err(failure(
                    "exec",
                    on_host(&program),
                    io::Error::from_raw_os_error(nix::libc::ENOENT),
                )),
                "missing" => err(failure(
                    "search PATH for",
                    on_host(&program),
                    io::Error::from_raw_os_error(nix::libc::ENOENT),
                )),
                "noexec" => err(failure(
                    "exec",
                    on_host(&program),
                    io::Error::from_raw_os_error(nix::libc::EACCES),
                )),
                "chdir-missing" => err(failure(
                    "chdir to",
                    on_host(&dir()),
                    io::Error::from_raw_os_error(nix::libc::ENOENT),
                )),
                "chdir-denied" => err(failure(
                    "chdir to",
                    on_host(&dir()),
                    io::Error::from_raw_os_error(nix::libc::EACCES),
                )),
                other => err(failure(
                    "start",
                    on_host(&program),
                    io::Error::other(format!("the remote wrapper failed: {other}")),
                )),
            }
        }
        Marker::Eof => {
            let status = child.wait_timeout(Duration::from_secs(5)).ok().flatten();
            let said = std::fs::read_to_string(log).unwrap_or_default();
            let said = said.trim();
            let status = status.map_or_else(|| "still running".to_string(), |s| s.to_string());
            let message = if said.is_empty() {
                format!("ssh {status} before the program started")
            } else {
                format!("{said} (ssh {status})")
            };
            err(failure(
                "connect through ssh to",
                host,
                io::Error::new(io::ErrorKind::ConnectionRefused, message),
            ))
        }
        Marker::TimedOut => {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            err(failure(
                "connect through ssh to",
                host,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the remote program did not start within {:?}{}",
                        cmd.timeout.unwrap_or(DEFAULT_TIMEOUT),
                        if said.trim().is_empty() {
                            String::new()
                        } else {
                            format!("; ssh said {:?}", said.trim())
                        }
                    ),
                ),
            ))
        }
    }
}

/// Copies the rest of the remote stdout to its destination on a thread
/// that ends at end-of-file.
fn relay(from: OwnedFd, to: StdioKind) -> io::Result<mpsc::Receiver<()>> {
    let to: Option<File> = match to {
        StdioKind::Null => None,
        StdioKind::Inherit => Some(File::from(sys::dup(io::stdout().as_fd())?)),
        StdioKind::Fd(fd) => Some(File::from(sys::dup(fd.as_fd())?)),
        StdioKind::Piped => unreachable!("a piped stdout needs no relay"),
    };
    let (done, finished) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("duet-ssh-stdout".into())
        .spawn(move || {
            let _done = done;
            let mut from = File::from(from);
            let result = match to {
                Some(mut to) => copy_flushing(&mut from, &mut to),
                None => io::copy(&mut from, &mut io::sink()).map(|_| ()),
            };
            if let Err(e) = result {
                log::debug!("copying a remote program's stdout stopped: {e}");
            }
        })?;
    Ok(finished)
}

/// Copies as bytes arrive (no buffering on the way: a prompt without a
/// newline reaches the terminal at once).
fn copy_flushing(from: &mut File, to: &mut File) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_keeps_every_byte_inside_single_quotes() {
        assert_eq!(quote(b""), b"''");
        assert_eq!(quote(b"a b"), b"'a b'");
        assert_eq!(quote(b"it's"), b"'it'\\''s'");
        assert_eq!(quote(b"$x;\n\\"), b"'$x;\n\\'");
    }

    #[test]
    fn quoted_words_reach_sh_byte_for_byte() {
        let words: [&[u8]; 6] = [b"a b", b"'", b"$HOME;`id`", b"\n\\n", "é ü".as_bytes(), b""];
        let mut line = b"printf '%s\\0'".to_vec();
        for w in words {
            line.push(b' ');
            line.extend_from_slice(&quote(w));
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(OsStr::from_bytes(&line))
            .output()
            .unwrap();
        let got: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        assert_eq!(&got[..words.len()], &words[..]);
    }

    #[test]
    fn identifiers_are_what_unset_accepts() {
        assert!(is_identifier(b"PATH"));
        assert!(is_identifier(b"_x1"));
        assert!(!is_identifier(b"1x"));
        assert!(!is_identifier(b"a-b"));
        assert!(!is_identifier(b""));
    }

    #[test]
    fn the_wrapper_runs_locally_with_sh_as_the_login_shell() {
        let mut cmd = Command::new("printf");
        cmd.args(["%s|", "a b", "$x"])
            .env("DUET_A", "1 2")
            .current_dir("/");
        let line = remote_command(&cmd, "M").unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(OsStr::from_bytes(&line))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (marker, rest) = text.split_once('\n').unwrap();
        assert!(marker.starts_with("M ok "), "{marker}");
        assert_eq!(rest, "a b|$x|");
    }
}
