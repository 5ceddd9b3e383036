//! Finding the package's binaries from a bench (shared by `bench` and `stress`).

use std::path::PathBuf;

/// A package binary: Cargo's path for it (`from_cargo`, an
/// `option_env!("CARGO_BIN_EXE_…")`), or the one next to the bench
/// executable's directory (`target/release/deps/bench-*` →
/// `target/release/NAME`).
pub fn binary(name: &str, from_cargo: Option<&str>) -> PathBuf {
    let path = match from_cargo {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .expect("the bench's own path")
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the bench runs from target/<profile>/deps")
            .join(name),
    };
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release --bin {name}`",
        path.display()
    );
    path
}

/// The fixture program.
pub fn fixture() -> PathBuf {
    binary("duet-fixture", option_env!("CARGO_BIN_EXE_duet-fixture"))
}

/// The `duet` binary.
pub fn duet() -> PathBuf {
    binary("duet", option_env!("CARGO_BIN_EXE_duet"))
}
