//! A real OpenSSH server on 127.0.0.1, one per test (or bench) process,
//! with host and user keys generated for the run in a temporary directory.
//!
//! `sshd -D` runs under a watcher shell in its own process group. The
//! watcher reads its stdin, a pipe whose other end only this process holds:
//! when this process ends, however it ends, the pipe closes and the watcher
//! kills its group (sshd and the sessions it forked). Nothing outlives the
//! run; the client side's master connections end with their server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};

/// The test server: where it listens and the client options that reach it.
#[derive(Debug)]
pub struct Sshd {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The directory with the keys, the configuration and `known_hosts`.
    pub dir: PathBuf,
    /// The watcher, never waited for: its stdin stays open until this
    /// process exits, and closing it stops the server.
    _watcher: Mutex<std::process::Child>,
}

/// The host name the tests connect to.
pub const HOST: &str = "127.0.0.1";

/// `$1` sshd, `$2` its directory, `$3` the port, `$4` duet's control
/// directory. Only the log pipeline keeps the watcher's stdout: when sshd
/// exits before it listens, the reader sees end of file at once (and says
/// what sshd printed) instead of waiting forever. At the end the master connections to this server are told to
/// exit (which ends sshd's per-connection processes, in sessions of their
/// own), then the watcher's group goes and the directory with it.
const WATCHER: &str = r#"
"$1" -D -e -f "$2/sshd_config" -p "$3" </dev/null 2>&1 | { sed -u '/Server listening/q'; exec cat >/dev/null; } &
exec >/dev/null
IFS= read -r _
ssh -o ControlPath="$4/%C" -o Port="$3" -O exit 127.0.0.1 2>/dev/null
rm -rf "$2"
kill -TERM 0
"#;

/// The server of this process, started on first use.
pub fn sshd() -> &'static Sshd {
    static SERVER: OnceLock<Sshd> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn run(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (make deps installs OpenSSH)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> Sshd {
    const SSHD: &str = "/usr/sbin/sshd";
    assert!(
        std::path::Path::new(SSHD).is_file(),
        "{SSHD} is missing: the remote tests need an OpenSSH server (make deps installs it)"
    );
    start_with(SSHD)
}

/// Starts `sshd` (the server's path) as [`sshd`] does.
fn start_with(sshd: &str) -> Sshd {
    let dir = std::env::temp_dir().join(format!("duet-sshd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the sshd directory");
    let path = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_string();
    for key in ["host_key", "user_key"] {
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", &path(key)],
        );
    }
    std::fs::copy(path("user_key.pub"), path("authorized_keys")).expect("authorized_keys");
    // sshd insists on its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (run the tests as root)");
    // `SetEnv SHLVL=1`: bash, the login shell, then skips ~/.bashrc, whose
    // cost (on this machine, a pyenv init) is not what the tests measure.
    let config = format!(
        "HostKey {host}\nAuthorizedKeysFile {keys}\nListenAddress {HOST}\n\
         PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n\
         LogLevel INFO\nMaxSessions 100\nMaxStartups 100\nSetEnv SHLVL=1\n",
        host = path("host_key"),
        keys = path("authorized_keys"),
    );
    std::fs::write(path("sshd_config"), config).expect("write sshd_config");
    let port = std::net::TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();

    let mut watcher = std::process::Command::new("sh");
    std::os::unix::process::CommandExt::process_group(&mut watcher, 0);
    let mut watcher = watcher
        .args(["-c", WATCHER, "sshd", sshd])
        .arg(&dir)
        .arg(port.to_string())
        .arg(control_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sshd");
    let mut said = String::new();
    for line in BufReader::new(watcher.stdout.take().expect("piped stdout")).lines() {
        let line = line.expect("read sshd's log");
        if line.contains("Server listening") {
            return Sshd {
                port,
                dir,
                _watcher: Mutex::new(watcher),
            };
        }
        said.push_str(&line);
        said.push('\n');
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    panic!("sshd did not start:\n{said}");
}

/// Where duet keeps its control sockets (see `Command::ssh`).
pub fn control_dir() -> PathBuf {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    std::env::temp_dir().join(format!("duet-ssh-{}", uid.expect("/proc/self")))
}

impl Sshd {
    /// The `-o` options that reach this server with the run's keys.
    pub fn options(&self) -> Vec<String> {
        let file = |name: &str| Path::new(&self.dir).join(name).display().to_string();
        vec![
            format!("Port={}", self.port),
            format!("IdentityFile={}", file("user_key")),
            "IdentitiesOnly=yes".to_string(),
            format!("UserKnownHostsFile={}", file("known_hosts")),
            "StrictHostKeyChecking=accept-new".to_string(),
        ]
    }

    /// `program` on this server: `Command::ssh` with [`options`](Self::options).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> duet::Command {
        let mut cmd = duet::Command::new(program);
        cmd.ssh(HOST);
        for opt in self.options() {
            cmd.ssh_option(opt);
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_exits_before_listening_is_reported_not_waited_for() {
        // `sh -c 'echo …'` in sshd's place prints a line and exits: the
        // harness must see the end of the log and say what it printed.
        let fake = std::env::temp_dir().join(format!("duet-fake-sshd-{}", std::process::id()));
        std::fs::write(&fake, "#!/bin/sh\necho 'fake sshd: bad configuration'\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let fake_path = fake.to_str().unwrap().to_string();
        let err = std::panic::catch_unwind(|| start_with(&fake_path)).unwrap_err();
        let _ = std::fs::remove_file(&fake);
        let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("sshd did not start"), "{message}");
        assert!(
            message.contains("fake sshd: bad configuration"),
            "{message}"
        );
    }
}
