//! What a library user compiles: a clean debug build of the `duet` library
//! alone (`cargo build -p duet-process --lib`), against the last commit
//! before the workspace split, where the library and the command line were
//! one package: built as a user got it by default (the `cli` feature, so
//! clap, env_logger, clap_complete and clap_mangen came along) and with
//! `default-features = false`.
//!
//! Each variant builds into a target directory of its own that is emptied
//! before every sample, offline, from the crates already in Cargo's cache;
//! the variant names say how many crates each compiled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Row, Unit, Variant, compare, rows};

/// The last commit before the workspace split.
const BEFORE_SPLIT: &str = "587e816387272b0686778f7d7805c190dfedd303";

/// One clean build of `args` in `dir`, into `target`; how long it took and
/// how many crates it compiled.
fn clean_build(dir: &Path, target: &Path, args: &[&str]) -> (Duration, usize) {
    let _ = std::fs::remove_dir_all(target);
    let start = Instant::now();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir)
        .args(["build", "--offline", "--locked"])
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo build");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo build {args:?} in {}:\n{stderr}",
        dir.display()
    );
    let crates = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling "))
        .count();
    (took, crates)
}

/// The rows, or the reason there are none when the old commit is not in this
/// clone (a shallow one).
pub fn rows_for() -> Result<Vec<Row>, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = std::env::temp_dir().join(format!("duet-bench-build-{}", std::process::id()));
    let before = scratch.join("before");
    std::fs::create_dir_all(&before).map_err(|e| e.to_string())?;
    let archive = Command::new("sh")
        .arg("-c")
        .arg(r#"git -C "$1" archive "$2" | tar -x -C "$3""#)
        .args([
            "sh",
            &repo.display().to_string(),
            BEFORE_SPLIT,
            &before.display().to_string(),
        ])
        .status()
        .map_err(|e| e.to_string())?;
    if !archive.success() {
        return Err(format!("commit {BEFORE_SPLIT} is not in this clone"));
    }
    eprintln!("measuring clean builds of the library (three builds, a minute or two) …");
    let targets: [PathBuf; 3] =
        ["now", "before", "before-lean"].map(|t| scratch.join(format!("target-{t}")));
    let builds: [(&Path, &[&str]); 3] = [
        (repo, &["-p", "duet-process", "--lib"]),
        (&before, &["--lib"]),
        (&before, &["--lib", "--no-default-features"]),
    ];
    let names = [
        "duet-process (the library crate)",
        "before the split, default features",
        "before the split, default-features = false",
    ];
    let mut variants: Vec<Variant<'_>> = Vec::new();
    for (i, ((dir, args), target)) in builds.iter().zip(&targets).enumerate() {
        variants.push(Variant {
            name: names[i],
            ops: 1,
            sample: Box::new(move || {
                let (took, n) = clean_build(dir, target, args);
                // The count goes into the row's name below.
                COUNTS.with(|c| c.borrow_mut()[i] = n);
                took
            }),
            target: None,
            against: None,
        });
    }
    let samples = compare(0, 1, &mut variants);
    drop(variants);
    let _ = std::fs::remove_dir_all(&scratch);
    let mut rows = rows(
        "clean build of the library (debug)",
        Unit::Time,
        &samples,
        1,
    );
    COUNTS.with(|c| {
        for (row, n) in rows.iter_mut().zip(c.borrow().iter()) {
            row.variant = format!("{}: {n} crates", row.variant);
        }
    });
    Ok(rows)
}

thread_local! {
    static COUNTS: std::cell::RefCell<[usize; 3]> = const { std::cell::RefCell::new([0; 3]) };
}
