//! [`Suite`]: `.duet` scripts as one `cargo test`, as trycmd runs its cases.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::case::Loaded;
use crate::report::{Outcome, summary};
use crate::runner::Config;

/// Scripts run as one test: every script that fails (or cannot run) is
/// reported, then the test panics with all the reports.
///
/// ```no_run
/// // tests/sessions.rs
/// #[test]
/// fn sessions() {
///     duet_script::Suite::new().case("tests/sessions/*.duet").run();
/// }
/// ```
///
/// Globs are relative to the current directory, which `cargo test` sets to
/// the package's root; `*`, `?` and `[...]` match within one path
/// component, `**` any number of directories; a directory stands for its `*.duet` files.
/// A glob that matches nothing is a failure
/// (a typo must not pass silently). Scripts run in parallel, as many at
/// once as there are CPUs.
///
/// With `DUET_UPDATE=1` in the environment, a failing `expect-line` or
/// `exit-status` is rewritten in its file to what came (as `duet test
/// --update`), each rewrite is printed, and the test passes when nothing
/// else failed.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    globs: Vec<String>,
    timeout: Option<Duration>,
    jobs: Option<usize>,
    update: Option<bool>,
}

impl Suite {
    /// A suite of no scripts yet.
    pub fn new() -> Suite {
        Suite::default()
    }

    /// Adds the scripts a glob matches (or one path).
    pub fn case(&mut self, glob: impl Into<String>) -> &mut Suite {
        self.globs.push(glob.into());
        self
    }

    /// The limit for each step until a script's `timeout` changes it
    /// (default 10 s).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Suite {
        self.timeout = Some(timeout);
        self
    }

    /// How many scripts run at once (default: the number of CPUs).
    pub fn jobs(&mut self, jobs: usize) -> &mut Suite {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Rewrite failing expectations (default: `DUET_UPDATE=1` in the
    /// environment).
    pub fn update(&mut self, update: bool) -> &mut Suite {
        self.update = Some(update);
        self
    }

    /// Runs every script and returns the outcomes in path order, without
    /// panicking; a glob that matches nothing is an error.
    ///
    /// # Errors
    /// A glob matches no file, or a directory cannot be read.
    pub fn outcomes(&self) -> Result<Vec<Outcome>, String> {
        let mut files = Vec::new();
        for glob in &self.globs {
            let found = expand(glob)?;
            if found.is_empty() {
                return Err(format!("no file matches {glob:?}"));
            }
            files.extend(found);
        }
        files.sort();
        files.dedup();
        let update = self.update.unwrap_or_else(update_from_env);
        let timeout = self.timeout.unwrap_or(Duration::from_secs(10));
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(files.len().max(1));
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(files.iter().map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else { break };
                        let mut config = Config::new(file);
                        config.timeout = timeout;
                        config.update = update;
                        let outcome = Loaded::read(file).run(&config);
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
                    }
                });
            }
        });
        Ok(results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .map(|o| o.expect("every script ran"))
            .collect())
    }

    /// Runs every script, prints a line per script, and panics with the
    /// report of each failure (and error) when there is one.
    ///
    /// # Panics
    /// When a script fails or cannot run, or a glob matches nothing.
    pub fn run(&self) {
        let outcomes = self
            .outcomes()
            .unwrap_or_else(|e| panic!("duet_script::Suite: {e}"));
        let mut failures = Vec::new();
        for outcome in &outcomes {
            println!("{}", outcome.line());
            for line in outcome.change_lines() {
                println!("updated {line}");
            }
            if outcome.failed() {
                failures.push(outcome.failure_report());
            }
        }
        println!("{}", summary(&outcomes));
        if !failures.is_empty() {
            panic!(
                "{} of {} scripts failed ({}):\n\n{}\n\nTo accept what came instead of a failing \
                 `expect-line` or `exit-status`, run again with DUET_UPDATE=1.",
                failures.len(),
                outcomes.len(),
                summary(&outcomes),
                failures.join("\n\n")
            );
        }
    }
}

/// `DUET_UPDATE=1` (or any value but empty and `0`).
fn update_from_env() -> bool {
    std::env::var_os("DUET_UPDATE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The files a glob matches, sorted; a glob without a wildcard is the
/// path itself, when it exists.
fn expand(glob: &str) -> Result<Vec<PathBuf>, String> {
    // A directory stands for its scripts, as in `duet test DIR`.
    if !glob.contains(['*', '?', '[']) && Path::new(glob).is_dir() {
        return expand(&format!("{}/*.duet", glob.trim_end_matches('/')));
    }
    let absolute = glob.starts_with('/');
    let parts: Vec<&str> = glob
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let start = if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    };
    let mut found = Vec::new();
    walk(&start, &parts, &mut found)?;
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, parts: &[&str], found: &mut Vec<PathBuf>) -> Result<(), String> {
    let Some((part, rest)) = parts.split_first() else {
        if dir.is_file() {
            found.push(dir.to_path_buf());
        }
        return Ok(());
    };
    if !part.contains(['*', '?', '[']) {
        let next = dir.join(part);
        if rest.is_empty() || next.is_dir() {
            walk(&next, rest, found)?;
        }
        return Ok(());
    }
    let listed = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = std::fs::read_dir(listed)
        .map_err(|e| format!("cannot read the directory {}: {e}", listed.display()))?;
    let mut names: Vec<(String, bool)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let dir = e.file_type().ok()?.is_dir() || e.path().is_dir();
            Some((e.file_name().to_string_lossy().into_owned(), dir))
        })
        .collect();
    names.sort();
    if *part == "**" {
        // No directory at all, or any one and then `**` again.
        walk(dir, rest, found)?;
        for (name, is_dir) in names {
            if is_dir && !name.starts_with('.') {
                walk(&dir.join(name), parts, found)?;
            }
        }
        return Ok(());
    }
    for (name, is_dir) in names {
        if name.starts_with('.') && !part.starts_with('.') {
            continue;
        }
        if matches(part.as_bytes(), name.as_bytes()) && (rest.is_empty() || is_dir) {
            walk(&dir.join(name), rest, found)?;
        }
    }
    Ok(())
}

/// Matches one path component against a pattern with `*`, `?` and
/// `[...]` (`[!...]` negated).
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| matches(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && matches(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&b| b == b']').map(|p| p + 1) else {
                return name.first() == Some(&b'[') && matches(rest, &name[1..]);
            };
            let (set, after) = (&rest[..close], &rest[close + 1..]);
            let (negated, set) = match set.first() {
                Some(b'!' | b'^') => (true, &set[1..]),
                _ => (false, set),
            };
            let Some(&c) = name.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negated && matches(after, &name[1..])
        }
        Some((&b, rest)) => name.first() == Some(&b) && matches(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_like_a_shell() {
        assert!(matches(b"*.duet", b"bc.duet"));
        assert!(!matches(b"*.duet", b"bc.duet.bak"));
        assert!(matches(b"b?.duet", b"bc.duet"));
        assert!(matches(b"[a-c]*", b"bc"));
        assert!(!matches(b"[!a-c]*", b"bc"));
        assert!(matches(b"*", b""));
    }
}
