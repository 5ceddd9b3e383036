//! Shared helpers for the integration tests.

use std::time::Duration;

/// The fixture program built with this package.
pub const FIXTURE: &str = env!("CARGO_BIN_EXE_duet-fixture");

/// A command running the fixture in `mode` with `args`, and a timeout long
/// enough for a loaded CI machine (tests never assert on durations).
pub fn fixture(mode: &str, args: &[&str]) -> duet::Command {
    let mut cmd = duet::Command::new(FIXTURE);
    cmd.arg(mode).args(args).timeout(Duration::from_secs(20));
    cmd
}

/// True while a process with this pid exists (zombie or not).
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A path in the temporary directory that no other test of this run uses:
/// the shared suite runs each test twice at once (blocking and tokio).
pub fn unique_temp(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("duet-test-{}-{tag}-{n}", std::process::id()))
}

/// Starts a stranger, a child of this process in its own process group,
/// that waits for a line and exits 42, and tries to give it `pid`
/// (`ns_last_pid`, where this test may write it). `None` when the system
/// does not let the test choose pids.
pub fn stranger_with_pid(pid: u32) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let mut stranger = std::process::Command::new("sh")
            .args(["-c", "read x; exit 42"])
            .stdin(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        if stranger.id() == pid {
            return Some(stranger);
        }
        // Another test took the pid first: try again.
        drop(stranger.stdin.take());
        stranger.wait().unwrap();
    }
    None
}

/// The `duet` binary: the `duet-cli` package of this workspace, built once
/// per test process (a no-op when it is fresh), so a test never runs a
/// stale one. It lands next to this test's own directory
/// (`target/<profile>/deps/tests-*` → `target/<profile>/duet`).
pub fn duet_bin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let profile_dir = std::env::current_exe()
            .expect("the test's own path")
            .parent()
            .and_then(|deps| deps.parent())
            .expect("tests run from target/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "-p", "duet-cli", "--bin", "duet"]);
        build
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        // The features this test was built with: the same build as
        // `cargo test --workspace` made, so nothing is compiled again.
        if cfg!(feature = "tokio") {
            build.args(["--features", "duet/tokio"]);
        }
        let status = build.status().expect("run cargo build for the duet binary");
        assert!(status.success(), "cargo build -p duet-cli failed: {status}");
        let path = profile_dir.join("duet");
        assert!(
            path.is_file(),
            "{} is missing after cargo build -p duet-cli",
            path.display()
        );
        path.to_str().expect("a UTF-8 target directory").to_string()
    })
}

/// A finished `duet` run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` (duet with `args`) to the end, capturing everything.
    pub fn of(args: &[&str], cmd: duct::Expression) -> Run {
        let out = cmd
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .expect("run duet");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Fails with a framed report of the run unless it exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Run {
        if self.code != Some(code) {
            panic!("{}", self.report(&format!("expected exit code {code}")));
        }
        self
    }

    pub fn expect_stdout(&self, stdout: &str) -> &Run {
        if self.stdout != stdout {
            panic!("{}", self.report(&format!("expected stdout {stdout:?}")));
        }
        self
    }

    pub fn expect_stderr(&self, stderr: &str) -> &Run {
        if self.stderr != stderr {
            panic!("{}", self.report(&format!("expected stderr {stderr:?}")));
        }
        self
    }

    pub fn expect_stdout_has(&self, text: &str) -> &Run {
        if !self.stdout.contains(text) {
            panic!(
                "{}",
                self.report(&format!("expected stdout to contain {text:?}"))
            );
        }
        self
    }

    pub fn expect_stderr_has(&self, text: &str) -> &Run {
        if !self.stderr.contains(text) {
            panic!(
                "{}",
                self.report(&format!("expected stderr to contain {text:?}"))
            );
        }
        self
    }

    pub fn report(&self, what: &str) -> String {
        format!(
            "\n===== {what}\n----- command\nduet {}\n----- exit code\n{:?}\n----- stdout\n{}\n----- stderr\n{}\n=====\n",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `duet ARGS` with `stdin`, capturing everything.
pub fn duet_in(args: &[&str], stdin: &[u8]) -> Run {
    Run::of(
        args,
        duct::cmd(duet_bin(), args).stdin_bytes(stdin.to_vec()),
    )
}

/// Runs `duet ARGS` with no input, capturing everything.
pub fn duet(args: &[&str]) -> Run {
    duet_in(args, b"")
}

/// A fresh directory for one test's files, removed when dropped.
pub struct Dir(pub std::path::PathBuf);

impl Dir {
    /// A new empty directory named after `tag` (unique to this run).
    pub fn new(tag: &str) -> Dir {
        let path = unique_temp(&format!("dir-{tag}"));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }

    /// The text of `name` in the directory.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap()
    }

    /// Runs duet with `args` in this directory, stdin empty.
    pub fn duet(&self, args: &[&str]) -> Run {
        Run::of(args, duct::cmd(duet_bin(), args).dir(&self.0).stdin_null())
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
