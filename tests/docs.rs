//! The documentation does what it says.
//!
//! Every fenced block of the pages below is one of:
//!
//! - ```` ```sh ````: run by bash (`-e -o pipefail`) with the `duet` built
//!   from this workspace first on `PATH` (and the fixture, `duet-fixture`,
//!   beside it). The blocks of one page run in order in one fresh directory,
//!   as a reader following the page would run them, each in a bash of its
//!   own. A block passes when it exits 0 and its stdout holds, in order,
//!   the lines its `# => TEXT` comments name (a comment of its own line or
//!   at the end of a command): whole lines, compared without the spaces at
//!   either end, where `...` stands for any text.
//! - ```` ```text ```` or ```` ```toml ````: shown, never run (a command that
//!   installs something, needs a remote host, or a file shown as it is).
//! - ```` ```rust ```` (with rustdoc's attributes): only on the pages that
//!   `src/lib.rs` compiles as doctests.
//!
//! Relative links between the pages must name files that exist, and
//! headings that exist when they carry a `#fragment`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::{FIXTURE, duet_bin, unique_temp};

/// The repository's root.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The pages a reader finds from the README, and whether `src/lib.rs`
/// compiles their Rust blocks.
const PAGES: &[(&str, bool)] = &[
    ("README.md", true),
    ("CHANGELOG.md", false),
    ("docs/library.md", true),
    ("docs/async.md", true),
    ("docs/design.md", true),
    ("docs/cli.md", false),
    ("docs/script.md", false),
    ("benches/README.md", false),
    ("fuzz/README.md", false),
    ("crates/core/README.md", false),
    ("crates/script/README.md", false),
    ("crates/cli/README.md", false),
];

/// One fenced block of a page.
struct Block {
    /// The fence's info string (`sh`, `rust,no_run`, ...).
    tag: String,
    /// The line of the opening fence, counted from 1.
    line: usize,
    text: String,
}

fn read(page: &str) -> String {
    let path = Path::new(ROOT).join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The fenced blocks of a Markdown text (fences of three backticks at the
/// start of a line).
fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(tag)) => {
                open = Some(Block {
                    tag: tag.trim().to_string(),
                    line: i + 1,
                    text: String::new(),
                })
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.extend(open.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fence is not closed");
    blocks
}

/// The lines a block's `# => TEXT` comments promise on stdout.
fn expected_lines(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| {
            let at = line.find("# =>")?;
            Some(line[at + "# =>".len()..].trim().to_string())
        })
        .collect()
}

/// `line` is `pattern`, where `...` in the pattern stands for any text.
fn matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("...");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The first expected line that stdout does not hold in order, if any.
fn missing_line(expected: &[String], stdout: &str) -> Option<String> {
    let mut lines = stdout.lines().map(str::trim);
    expected
        .iter()
        .find(|want| !lines.any(|got| matches(want, got)))
        .cloned()
}

/// Directories under `dir` that look served (`in` is a FIFO), so a page
/// that failed halfway leaves no `duet serve` behind.
fn served_dirs(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_fifo() && entry.file_name() == "in" {
            found.push(dir.to_path_buf());
        } else if kind.is_dir() && depth > 0 {
            served_dirs(&entry.path(), depth - 1, found);
        }
    }
}

/// Runs the `sh` blocks of `page` as the module documentation says;
/// panics with a report of every block that failed.
fn run_shell_blocks(page: &str) {
    let blocks: Vec<Block> = blocks(&read(page))
        .into_iter()
        .filter(|b| b.tag == "sh")
        .collect();
    let dir = unique_temp("docs");
    std::fs::create_dir_all(&dir).unwrap();
    let duet_dir = Path::new(duet_bin()).parent().unwrap().to_path_buf();
    let fixture_dir = Path::new(FIXTURE).parent().unwrap().to_path_buf();
    let path = std::env::join_paths([duet_dir, fixture_dir].into_iter().chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut failures = Vec::new();
    for block in &blocks {
        let name = format!("{page}:{}", block.line);
        let result = duet::Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &block.text, &name])
            .env("PATH", &path)
            .env_remove("RUST_LOG")
            .current_dir(&dir)
            .process_group(true)
            .timeout(Duration::from_secs(120))
            .output();
        let (code, stdout, stderr) = match result {
            Ok(out) => (
                out.status.to_string(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Err(e) => {
                let out = e.output();
                let text = |b: Option<&Vec<u8>>| {
                    b.map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default()
                };
                (
                    e.to_string(),
                    text(out.map(|o| &o.stdout)),
                    text(out.map(|o| &o.stderr)),
                )
            }
        };
        let what = if code != "exited with code 0" {
            Some("expected exit code 0".to_string())
        } else {
            missing_line(&expected_lines(&block.text), &stdout).map(|line| {
                format!("expected a line {line:?} on stdout (after the ones before it)")
            })
        };
        if let Some(what) = what {
            failures.push(format!(
                "\n===== {name}: {what}\n----- block\n{}----- status\n{code}\n----- stdout\n{stdout}\n----- stderr\n{stderr}\n=====\n",
                block.text
            ));
        }
    }
    let mut served = Vec::new();
    served_dirs(&dir, 2, &mut served);
    for served in &served {
        let _ = std::process::Command::new(duet_bin())
            .arg("stop")
            .arg(served)
            .output();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {} shell blocks of {page} failed:{}",
        failures.len(),
        blocks.len(),
        failures.concat()
    );
    assert!(
        served.is_empty(),
        "{page} left {served:?} served; its blocks should stop what they serve"
    );
}

#[test]
fn readme_shell_blocks_do_what_their_comments_say() {
    run_shell_blocks("README.md");
}

#[test]
fn cli_page_shell_blocks_do_what_their_comments_say() {
    run_shell_blocks("docs/cli.md");
}

#[test]
fn script_page_shell_blocks_do_what_their_comments_say() {
    run_shell_blocks("docs/script.md");
}

#[test]
fn other_pages_shell_blocks_do_what_their_comments_say() {
    for (page, _) in PAGES {
        if !["README.md", "docs/cli.md", "docs/script.md"].contains(page) {
            run_shell_blocks(page);
        }
    }
}

#[test]
fn every_block_is_run_compiled_or_marked_as_shown() {
    let mut wrong = Vec::new();
    for &(page, compiled) in PAGES {
        for block in blocks(&read(page)) {
            let rust = block.tag == "rust" || block.tag.starts_with("rust,");
            let ok = matches!(block.tag.as_str(), "sh" | "text" | "toml") || (rust && compiled);
            if !ok {
                wrong.push(format!("{page}:{}: ```{}", block.line, block.tag));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "blocks that would be neither run nor compiled (tag them sh, text or toml, \
         or compile the page in src/lib.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_docs_page_is_checked() {
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let name = format!("docs/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(
            PAGES.iter().any(|(page, _)| *page == name),
            "{name} is not in PAGES of tests/docs.rs"
        );
    }
}

#[test]
fn readme_is_short() {
    let size = read("README.md").len();
    assert!(
        size < 12 * 1024,
        "README.md is {size} bytes; it is read in five minutes: move detail to docs/"
    );
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The targets of the Markdown links `[text](target)` outside code.
fn links(markdown: &str) -> Vec<String> {
    let mut in_block = false;
    let mut found = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    found
}

#[test]
fn relative_links_name_files_and_headings_that_exist() {
    let mut broken = Vec::new();
    for (page, _) in PAGES {
        let base = Path::new(ROOT).join(page);
        let base = base.parent().unwrap();
        for link in links(&read(page)) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match link.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                Path::new(ROOT).join(page)
            } else {
                base.join(file)
            };
            if !target.exists() {
                broken.push(format!("{page}: {link}: no such file"));
                continue;
            }
            if let Some(fragment) = fragment {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                let headings = text
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|l| anchor(l.trim_start_matches('#')));
                if !headings.clone().any(|a| a == fragment) {
                    broken.push(format!("{page}: {link}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn man_writes_the_script_language_page_and_man_renders_it() {
    let dir = unique_temp("man");
    let out = std::process::Command::new(duet_bin())
        .arg("man")
        .arg("--out-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "duet man: {out:?}");
    let page = dir.join("duet-script.5");
    let roff = std::fs::read_to_string(&page).expect("duet-script.5 is written");
    assert!(roff.starts_with(".TH DUET-SCRIPT 5"), "{roff}");
    let shown = std::process::Command::new("man")
        .arg("--warnings")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&shown.stdout);
    let warnings = String::from_utf8_lossy(&shown.stderr);
    assert!(shown.status.success(), "man -l failed: {warnings}");
    assert!(warnings.is_empty(), "groff warns:\n{warnings}");
    // Every keyword of the reference's tables, on the page as text.
    for keyword in [
        "spawn PROG ARGS...",
        "pty-size ROWSxCOLS",
        "strip-ansi on|off",
        "stream stdout|stderr",
        "expect-line REGEX",
        "wait-line REGEX",
        "exit-status N...",
        "fail-on REGEX",
        "sendline ${answer} / 2",
    ] {
        assert!(text.contains(keyword), "{keyword:?} missing from:\n{text}");
    }
}

#[test]
fn the_expected_output_convention_matches_as_documented() {
    assert!(matches("ok bc (...)", "ok bc (0.01s)"));
    assert!(matches("4", "4"));
    assert!(!matches("4", "42"));
    assert!(matches("...: failed", "a.duet:3: failed"));
    assert!(!matches("a...b", "ab c"));
    assert_eq!(
        expected_lines("duet ask d 2^10   # => 1024\n# => x y\n# =>\necho # no\n"),
        ["1024", "x y", ""]
    );
    assert_eq!(missing_line(&["1".into(), "3".into()], "1\n2\n 3 \n"), None);
    assert_eq!(
        missing_line(&["3".into(), "1".into()], "1\n2\n3\n"),
        Some("1".into())
    );
}
