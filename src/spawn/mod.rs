//! The spawn engine: turns a [`Command`] into a running process and the
//! parent's ends of its streams ([`Spawned`]). A driver assembles its
//! child from those parts: the blocking `Child`, or the async one.
//!
//! Everything the child needs is prepared here, in the parent, before the
//! process exists: C strings for argv and envp, the program's candidate
//! paths from the `PATH` search, the descriptor plan. The child itself
//! (`after_fork`) only executes that plan.

pub(crate) mod after_fork;

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::ptr;

use nix::libc::c_char;
use nix::sys::termios;
use nix::unistd::Pid;

use crate::command::{Command, DEFAULT_TIMEOUT, Limit, OnDrop, StdioKind};
use crate::driver::{Input, Streams};
use crate::error::SpawnFailure;
use crate::process::Process;
use crate::{Result, sys};
use after_fork::{ChildPlan, Method, PID_DIGITS, Rlimit, Step};

/// The name of the channel's pid variable, `=` included.
const PID_ENTRY_NAME: &[u8] = b"DUET_CHANNEL_PID=";

/// An array of C strings and the null-terminated pointer array over them.
struct CStrings {
    owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrings {
    fn new(owned: Vec<CString>) -> CStrings {
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(ptr::null());
        CStrings { owned, ptrs }
    }
}

fn cstring(bytes: &[u8], step: &'static str) -> Result<CString, SpawnFailure> {
    CString::new(bytes).map_err(|_| SpawnFailure {
        step,
        path: Some(String::from_utf8_lossy(bytes).replace('\0', "\\0")),
        os: io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"),
    })
}

/// The child's environment as `KEY=value` strings, and its `PATH`.
fn environment(cmd: &Command) -> Result<(Vec<CString>, Option<OsString>), SpawnFailure> {
    let mut vars: Vec<(OsString, OsString)> = if cmd.env_clear {
        Vec::new()
    } else {
        std::env::vars_os().collect()
    };
    for (key, value) in &cmd.env {
        vars.retain(|(k, _)| k != key);
        if let Some(value) = value {
            if key.is_empty() || key.as_bytes().contains(&b'=') {
                return Err(SpawnFailure {
                    step: "environment",
                    path: Some(key.to_string_lossy().into_owned()),
                    os: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a variable name cannot be empty or contain '='",
                    ),
                });
            }
            vars.push((key.clone(), value.clone()));
        }
    }
    let path = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let strings = vars
        .into_iter()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv, "environment")
        })
        .collect::<Result<_, _>>()?;
    Ok((strings, path))
}

/// The paths `execve` will try, in order, like `execvp`: the program itself
/// when it contains a `/`, else each `PATH` entry that holds a file of that
/// name. Finding none is reported here, before any process is created.
fn candidates(program: &OsStr, path: Option<&OsStr>) -> Result<Vec<CString>, SpawnFailure> {
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Err(SpawnFailure {
            step: "exec",
            path: Some(String::new()),
            os: io::Error::from_raw_os_error(nix::libc::ENOENT),
        });
    }
    if bytes.contains(&b'/') {
        return Ok(vec![cstring(bytes, "exec")?]);
    }
    let default_path = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let search = path.unwrap_or(default_path);
    let mut found = Vec::new();
    for dir in search.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
        let full = Path::new(OsStr::from_bytes(dir)).join(program);
        if full.is_file() {
            found.push(cstring(full.as_os_str().as_bytes(), "exec")?);
        }
    }
    if found.is_empty() {
        return Err(SpawnFailure {
            step: "search PATH for",
            path: Some(program.to_string_lossy().into_owned()),
            os: io::Error::from_raw_os_error(nix::libc::ENOENT),
        });
    }
    Ok(found)
}

/// The descriptors of one spawn: what the child gets, what the parent keeps.
#[derive(Default)]
struct Plumbing {
    /// Descriptors the child receives, by target number.
    child_ends: Vec<(RawFd, OwnedFd)>,
    parent_stdin: Option<OwnedFd>,
    parent_stdout: Option<OwnedFd>,
    parent_stderr: Option<OwnedFd>,
    pty_master: Option<OwnedFd>,
    channel: Option<OwnedFd>,
}

fn plumb(cmd: &Command) -> io::Result<Plumbing> {
    let mut p = Plumbing::default();
    let pty = cmd.pty || cmd.pty_stdout;
    let mut slave: Option<OwnedFd> = None;
    if pty {
        let (master, s) = sys::open_pty()?;
        configure_pty(&s, cmd)?;
        p.pty_master = Some(master);
        slave = Some(s);
    }
    let dup_slave = |slave: &Option<OwnedFd>| -> io::Result<OwnedFd> {
        sys::dup(slave.as_ref().expect("pty slave").as_fd())
    };

    // stdin
    if cmd.pty {
        p.child_ends.push((0, dup_slave(&slave)?));
    } else {
        match &cmd.stdin.0 {
            StdioKind::Piped => {
                let (r, w) = sys::pipe()?;
                p.child_ends.push((0, r));
                p.parent_stdin = Some(w);
            }
            other => push_simple(&mut p, 0, other)?,
        }
    }
    // stdout
    if pty {
        p.child_ends.push((1, dup_slave(&slave)?));
    } else {
        match &cmd.stdout.0 {
            StdioKind::Piped => {
                let (r, w) = sys::pipe()?;
                p.child_ends.push((1, w));
                p.parent_stdout = Some(r);
            }
            other => push_simple(&mut p, 1, other)?,
        }
    }
    // stderr. Merged, it is a duplicate of the child's 1 made in the child
    // after the moves (as `2>&1` and CPython do), so it goes wherever
    // stdout goes, an inherited stdout included.
    match cmd.stderr.as_ref().map(|s| &s.0) {
        _ if cmd.merge_stderr => {}
        None if cmd.pty => p.child_ends.push((2, dup_slave(&slave)?)),
        None | Some(StdioKind::Inherit) => {}
        Some(StdioKind::Piped) => {
            let (r, w) = sys::pipe()?;
            p.child_ends.push((2, w));
            p.parent_stderr = Some(r);
        }
        Some(other) => push_simple(&mut p, 2, other)?,
    }
    if cmd.channel {
        let (parent, child) = sys::socket_pair()?;
        p.child_ends.push((3, child));
        p.channel = Some(parent);
    }
    for (target, fd) in &cmd.passed_fds {
        p.child_ends.push((*target, sys::dup(fd.as_fd())?));
    }
    if let Some(size) = cmd.pipe_size {
        for fd in [&p.parent_stdin, &p.parent_stdout, &p.parent_stderr]
            .into_iter()
            .flatten()
        {
            sys::set_pipe_size(fd.as_fd(), size)?;
        }
    }
    Ok(p)
}

fn push_simple(p: &mut Plumbing, target: RawFd, kind: &StdioKind) -> io::Result<()> {
    match kind {
        StdioKind::Inherit => {}
        StdioKind::Null => p.child_ends.push((target, sys::dev_null()?)),
        StdioKind::Fd(fd) => p.child_ends.push((target, sys::dup(fd.as_fd())?)),
        StdioKind::Piped => unreachable!("pipes are created by plumb"),
    }
    Ok(())
}

/// Terminal settings for a child's pty, applied before the child exists.
fn configure_pty(slave: &OwnedFd, cmd: &Command) -> io::Result<()> {
    let mut t = termios::tcgetattr(slave)?;
    if cmd.pty_echo && cmd.pty {
        t.local_flags.insert(termios::LocalFlags::ECHO);
    } else {
        t.local_flags.remove(
            termios::LocalFlags::ECHO
                | termios::LocalFlags::ECHOE
                | termios::LocalFlags::ECHOK
                | termios::LocalFlags::ECHONL,
        );
    }
    if !cmd.pty {
        // Only stdout is on the pty: bytes pass exactly as written.
        t.output_flags.remove(termios::OutputFlags::OPOST);
    }
    termios::tcsetattr(slave, termios::SetArg::TCSANOW, &t)?;
    sys::set_window_size(slave.as_fd(), cmd.pty_size.0, cmd.pty_size.1)?;
    Ok(())
}

/// Refuses, before anything is created, what the child could not carry
/// out or would carry out wrongly: descriptor targets that collide with
/// the standard streams or the channel, limits whose soft value is above
/// the hard one, a mask beyond the permission bits, `setsid(false)` on a
/// pty.
fn check(cmd: &Command) -> Result<(), SpawnFailure> {
    let invalid = |step, path: String, why: String| SpawnFailure {
        step,
        path: Some(path),
        os: io::Error::new(io::ErrorKind::InvalidInput, why),
    };
    let max_fds = sys::max_fds();
    for (target, _) in &cmd.passed_fds {
        let why = match *target {
            t if t < 0 => "a descriptor number cannot be negative".to_string(),
            0..=2 => "0, 1 and 2 are the standard streams: give them with \
                      stdin, stdout or stderr and Stdio::from"
                .to_string(),
            3 if cmd.channel => "descriptor 3 is the channel's (Command::channel)".to_string(),
            t if t >= max_fds => {
                format!("above the limit on open descriptors ({max_fds})")
            }
            _ => continue,
        };
        return Err(invalid("pass a descriptor as", target.to_string(), why));
    }
    for &(limit, soft, hard) in &cmd.rlimits {
        if soft > hard {
            return Err(invalid(
                "set the limit on",
                limit.name().to_string(),
                format!("the soft limit ({soft}) is above the hard limit ({hard})"),
            ));
        }
    }
    if let Some(mask) = cmd.umask
        && mask > 0o777
    {
        return Err(invalid(
            "set the file mode creation mask to",
            format!("{mask:#o}"),
            "a mask has only permission bits (at most 0o777)".to_string(),
        ));
    }
    if cmd.pty && cmd.setsid == Some(false) {
        return Err(SpawnFailure {
            step: "keep the parent's session (setsid(false)) on a pty",
            path: None,
            os: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a child on a pty always starts a session: the pty becomes its \
                 controlling terminal (drop setsid(false) or pty(true))",
            ),
        });
    }
    Ok(())
}

/// The `setrlimit` resource number of `limit`.
fn resource(limit: Limit) -> nix::libc::c_int {
    use nix::libc;
    (match limit {
        Limit::Cpu => libc::RLIMIT_CPU,
        Limit::FileSize => libc::RLIMIT_FSIZE,
        Limit::NoFile => libc::RLIMIT_NOFILE,
        Limit::AddressSpace => libc::RLIMIT_AS,
        Limit::Core => libc::RLIMIT_CORE,
        Limit::NProc => libc::RLIMIT_NPROC,
    }) as nix::libc::c_int
}

/// A started child before a driver owns it: the parent's ends, the
/// process, and what the `Child` needs to know of the command.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) streams: Streams,
    pub(crate) process: Process,
    pub(crate) program: String,
    pub(crate) timeout: std::time::Duration,
    pub(crate) on_drop: OnDrop,
    pub(crate) channel: Option<OwnedFd>,
}

/// Starts `cmd` on this host and hands over its parts, for the blocking
/// `Child` or the async one. See `Command::spawn`.
pub(crate) fn spawn(cmd: &Command) -> Result<Spawned> {
    let program = cmd.program_name();
    let fail = |f: SpawnFailure| f.into_error(&program);
    let io_fail = |step: &'static str| {
        let program = &program;
        move |os: io::Error| {
            SpawnFailure {
                step,
                path: None,
                os,
            }
            .into_error(program)
        }
    };

    check(cmd).map_err(fail)?;
    // Everything the child reads is built here, before it exists.
    let arg0 = cmd.arg0.as_ref().unwrap_or(&cmd.program);
    let mut argv = vec![cstring(arg0.as_bytes(), "argument").map_err(fail)?];
    for arg in &cmd.args {
        argv.push(cstring(arg.as_bytes(), "argument").map_err(fail)?);
    }
    let (mut env, path) = environment(cmd).map_err(fail)?;
    // With a channel, `DUET_CHANNEL_PID=` gets the child's own pid, which
    // only the child knows: it writes the digits into this buffer (room
    // for any pid and a NUL) before it execs.
    let mut pid_entry: Vec<u8> = Vec::new();
    if cmd.channel {
        env.retain(|kv| {
            let kv = kv.as_bytes();
            !kv.starts_with(b"DUET_CHANNEL_FD=") && !kv.starts_with(b"DUET_CHANNEL_PID=")
        });
        env.push(CString::new("DUET_CHANNEL_FD=3").expect("no NUL"));
        pid_entry.extend_from_slice(PID_ENTRY_NAME);
        pid_entry.resize(PID_ENTRY_NAME.len() + PID_DIGITS + 1, 0);
    }
    let cands = candidates(&cmd.program, path.as_deref()).map_err(fail)?;
    let cwd = match &cmd.cwd {
        Some(dir) => Some(cstring(dir.as_os_str().as_bytes(), "chdir").map_err(fail)?),
        None => None,
    };
    let argv = CStrings::new(argv);
    let mut envp = CStrings::new(env);
    // One pointer from the buffer serves both the array and the child's
    // writes, so neither invalidates the other.
    let pid_slot = match pid_entry.is_empty() {
        true => ptr::null_mut(),
        false => {
            let entry = pid_entry.as_mut_ptr();
            envp.ptrs
                .insert(envp.ptrs.len() - 1, entry as *const c_char);
            entry.wrapping_add(PID_ENTRY_NAME.len())
        }
    };
    let cand_ptrs = CStrings::new(cands);

    let plumbing = plumb(cmd).map_err(io_fail("open descriptors for the child"))?;
    let (err_read, err_write) = sys::pipe().map_err(io_fail("open the error pipe"))?;

    let pairs: Vec<(RawFd, RawFd)> = plumbing
        .child_ends
        .iter()
        .map(|(target, fd)| (fd.as_raw_fd(), *target))
        .collect();
    let moves = after_fork::plan_moves(&pairs);
    let mut sources: Vec<RawFd> = vec![0; moves.len()];
    let keep = after_fork::plan_keep(&pairs);
    let first_free = keep.last().map_or(3, |t| t + 1);
    let groups: Vec<nix::libc::gid_t> = cmd.groups.clone().unwrap_or_default();
    let rlimits: Vec<Rlimit> = cmd
        .rlimits
        .iter()
        .map(|&(limit, soft, hard)| Rlimit {
            resource: resource(limit),
            limit: nix::libc::rlimit64 {
                rlim_cur: soft,
                rlim_max: hard,
            },
        })
        .collect();
    let plan = ChildPlan {
        candidates: cand_ptrs.ptrs.as_ptr(),
        argv: argv.ptrs.as_ptr(),
        envp: envp.ptrs.as_ptr(),
        cwd: cwd.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
        moves: moves.as_ptr(),
        n_moves: moves.len(),
        sources: sources.as_mut_ptr(),
        keep: keep.as_ptr(),
        n_keep: keep.len(),
        first_free,
        err_fd: err_write.as_raw_fd(),
        lift_err: pairs.iter().any(|&(_, t)| t == err_write.as_raw_fd())
            || (cmd.merge_stderr && err_write.as_raw_fd() == 2),
        stderr_to_stdout: cmd.merge_stderr,
        pid_slot,
        max_fds: sys::max_fds(),
        close_by_loop: cmd.legacy_kernel,
        groups: groups.as_ptr(),
        n_groups: groups.len(),
        set_groups: cmd.groups.is_some(),
        drop_groups: cmd.uid.is_some() && cmd.groups.is_none(),
        gid: cmd.gid,
        uid: cmd.uid,
        rlimits: rlimits.as_ptr(),
        n_rlimits: rlimits.len(),
        umask: cmd.umask,
        setsid: cmd.pty || cmd.setsid == Some(true),
        controlling_tty: cmd.pty,
        process_group: cmd.process_group,
    };
    let method = if cmd.use_fork {
        Method::Fork
    } else {
        Method::Vfork
    };
    let (pid, pidfd) =
        after_fork::create(&plan, method, cmd.legacy_kernel).map_err(io_fail("create process"))?;
    // The child has exec'd or exited: what its plan pointed into may go.
    drop((moves, sources, keep, groups, rlimits));
    let pid = Pid::from_raw(pid);

    // The child's ends belong to the child now.
    drop(err_write);
    let Plumbing {
        child_ends,
        parent_stdin,
        parent_stdout,
        parent_stderr,
        pty_master,
        channel,
    } = plumbing;
    drop(child_ends);

    if let Some(failure) = read_failure(&err_read, cmd, &cand_ptrs) {
        // The child has exited (it reported and called _exit): reap it.
        let _ = sys::wait_pidfd(pidfd.as_fd(), true);
        return Err(failure.into_error(&program));
    }
    drop(err_read);

    let group = cmd.pty || cmd.process_group;
    let process = Process::new(pid, pidfd, group, cmd.legacy_kernel);
    let streams = build_streams(cmd, parent_stdin, parent_stdout, parent_stderr, pty_master)
        .map_err(io_fail("set up the parent's ends"))?;
    Ok(Spawned {
        streams,
        process,
        program,
        timeout: cmd.timeout.unwrap_or(DEFAULT_TIMEOUT),
        on_drop: cmd.on_drop,
        channel,
    })
}

/// Reads the child's error frame. `None`: the pipe closed empty, so exec
/// succeeded.
fn read_failure(err_read: &OwnedFd, cmd: &Command, candidates: &CStrings) -> Option<SpawnFailure> {
    let mut frame = [0u8; 8];
    let mut got = 0;
    while got < frame.len() {
        match sys::read(err_read.as_fd(), &mut frame[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    if got == 0 {
        return None;
    }
    let (errno, step, index) = after_fork::decode_failure(&frame);
    let os = io::Error::from_raw_os_error(errno);
    let candidate = |i: usize| -> Option<String> {
        candidates
            .owned
            .get(i)
            .map(|c| c.to_string_lossy().into_owned())
    };
    Some(match step {
        Some(Step::Exec) => SpawnFailure {
            step: "exec",
            path: candidate(index),
            os,
        },
        Some(Step::Chdir) => SpawnFailure {
            step: "chdir to",
            path: cmd.cwd.as_ref().map(|d| d.display().to_string()),
            os,
        },
        Some(Step::Session) => SpawnFailure {
            step: if cmd.pty {
                "start a session on the pty"
            } else if cmd.setsid == Some(true) {
                "start a new session"
            } else {
                "start a process group"
            },
            path: None,
            os,
        },
        Some(Step::Groups) => SpawnFailure {
            step: "set the supplementary groups to",
            path: Some(format!("{:?}", cmd.groups.as_deref().unwrap_or_default())),
            os,
        },
        Some(Step::Gid) => SpawnFailure {
            step: "set the group id to",
            path: cmd.gid.map(|g| g.to_string()),
            os,
        },
        Some(Step::Uid) => SpawnFailure {
            step: "set the user id to",
            path: cmd.uid.map(|u| u.to_string()),
            os,
        },
        Some(Step::Rlimit) => SpawnFailure {
            step: "set the limit on",
            path: cmd
                .rlimits
                .get(index)
                .map(|&(limit, soft, hard)| format!("{} (soft {soft}, hard {hard})", limit.name())),
            os,
        },
        Some(Step::Fds) => SpawnFailure {
            step: "move descriptors into place in the child",
            path: None,
            os,
        },
        Some(Step::Signals) | None => SpawnFailure {
            step: "reset signals",
            path: None,
            os,
        },
    })
}

fn build_streams(
    cmd: &Command,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    pty_master: Option<OwnedFd>,
) -> io::Result<Streams> {
    let (stdin, stdout) = match pty_master {
        Some(master) if cmd.pty => {
            let reader = sys::dup(master.as_fd())?;
            (Some(Input::pty(master)?), Some(reader))
        }
        Some(master) => (stdin.map(Input::pipe).transpose()?, Some(master)),
        None => (stdin.map(Input::pipe).transpose()?, stdout),
    };
    let mut streams = Streams::new(stdin, stdout, stderr, cmd.max_line, cmd.max_buffer)?;
    streams.core.set_strip_ansi(cmd.strip_ansi);
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_lists_existing_files_in_order() {
        let found = candidates(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .unwrap();
        assert!(!found.is_empty());
        assert!(found[0].to_bytes().ends_with(b"/sh"));
        let missing =
            candidates(OsStr::new("no-such-program-duet"), Some(OsStr::new("/bin"))).unwrap_err();
        assert_eq!(missing.os.kind(), io::ErrorKind::NotFound);
        assert_eq!(missing.step, "search PATH for");
    }

    #[test]
    fn interior_nul_is_refused_before_any_process_exists() {
        let err = cstring(b"a\0b", "argument").unwrap_err();
        assert_eq!(err.os.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.path.as_deref(), Some("a\\0b"));
    }
}
