//! `duet completions` and `duet man`: generated, and accepted by the tools
//! that read them.

use std::process::Command;

use crate::util::duet_bin;
const SUBCOMMANDS: [&str; 9] = [
    "run", "chat", "script", "serve", "ask", "send", "recv", "status", "stop",
];

fn duet(args: &[&str]) -> String {
    let out = Command::new(duet_bin())
        .args(args)
        .output()
        .expect("run duet");
    assert!(
        out.status.success(),
        "duet {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("duet-gen-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn bash_completions_name_every_subcommand_and_parse() {
    let script = duet(&["completions", "bash"]);
    for sub in SUBCOMMANDS.iter().chain(&["completions", "man"]) {
        assert!(
            script.contains(sub),
            "{sub} missing from the bash completions"
        );
    }
    assert!(script.contains("--ssh-option"));
    let path = scratch("bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Loaded into bash, it registers a completion for duet.
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!(". {}; complete -p duet", path.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("duet"),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn zsh_and_fish_completions_are_generated() {
    let zsh = duet(&["completions", "zsh"]);
    assert!(
        zsh.starts_with("#compdef duet"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    let fish = duet(&["completions", "fish"]);
    assert!(fish.contains("complete -c duet"));
    for sub in SUBCOMMANDS {
        assert!(zsh.contains(sub) && fish.contains(sub), "{sub}");
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = Command::new(duet_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_page_renders_with_man() {
    let page = duet(&["man"]);
    assert!(
        page.contains(".TH duet 1"),
        "{}",
        &page[..page.len().min(300)]
    );
    let path = scratch("man");
    std::fs::write(&path, &page).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man (Debian package man-db)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NAME") && text.contains("SUBCOMMANDS"),
        "{text}"
    );
    for sub in SUBCOMMANDS {
        assert!(text.contains(&format!("duet-{sub}(1)")), "{sub}: {text}");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn man_out_dir_writes_a_page_per_subcommand() {
    let dir = scratch("pages");
    duet(&["man", "--out-dir", dir.to_str().unwrap()]);
    for page in ["duet.1", "duet-run.1", "duet-serve.1", "duet-completions.1"] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    assert!(
        std::fs::read_to_string(dir.join("duet-run.1"))
            .unwrap()
            .contains("ssh")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_demo_finds_the_binaries_in_any_target_directory() {
    // A target directory that is not ./target, and a working directory
    // without one: the demo must go by TARGET_DIR alone.
    let root = scratch("demo");
    let debug = root.join("elsewhere/debug");
    std::fs::create_dir_all(&debug).unwrap();
    for (name, path) in [
        ("duet", duet_bin()),
        ("duet-fixture", env!("CARGO_BIN_EXE_duet-fixture")),
    ] {
        std::os::unix::fs::symlink(path, debug.join(name)).unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cli-demo.sh");
    let out = Command::new("sh")
        .arg(script)
        .current_dir(&root)
        .env("TARGET_DIR", root.join("elsewhere"))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(DIR removed)"), "{stdout}");
    let _ = std::fs::remove_dir_all(&root);
}
