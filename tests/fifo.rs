//! `duet::fifo`: FIFOs in a checked directory, and every refusal.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use duet::Error;
use duet::fifo::{Access, FifoDir};

/// A path under the temp dir that no other test uses; nothing is created.
fn unique_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("duet-fifo-{tag}-{}-{n}", std::process::id()))
}

fn io_kind(err: &Error) -> ErrorKind {
    match err {
        Error::Io(e) => e.kind(),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn create_makes_a_private_dir_and_private_fifos() {
    let path = unique_path("modes");
    let dir = FifoDir::create(&path).unwrap();
    assert!(dir.created());
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    let fifo = dir.fifo("in").unwrap();
    let meta = std::fs::symlink_metadata(fifo.path()).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    drop(fifo);
    assert!(!path.join("in").exists(), "a dropped FIFO is removed");
    dir.remove().unwrap();
    assert!(!path.exists());
}

#[test]
fn an_existing_private_dir_is_adopted_not_created() {
    let path = unique_path("existing");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = FifoDir::create(&path).unwrap();
    assert!(!dir.created());
    drop(dir);
    std::fs::remove_dir(&path).unwrap();
}

#[test]
fn a_group_writable_dir_is_refused() {
    let path = unique_path("groupw");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o770)).unwrap();
    let err = FifoDir::create(&path).unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::PermissionDenied);
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );
    std::fs::remove_dir(&path).unwrap();
}

#[test]
fn a_symlinked_dir_is_refused() {
    let target = unique_path("target");
    std::fs::create_dir(&target).unwrap();
    let link = unique_path("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = FifoDir::create(&link).unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("symlink"), "{err}");
    // A trailing slash would make the kernel follow the link: still refused.
    let slashed = PathBuf::from(format!("{}//", link.display()));
    let err = FifoDir::open(&slashed).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_dir(&target).unwrap();
}

#[test]
fn a_regular_file_in_place_of_the_dir_is_refused() {
    let path = unique_path("file");
    std::fs::write(&path, "data").unwrap();
    let err = FifoDir::create(&path).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_dir_owned_by_someone_else_is_refused() {
    // As root, give a directory away; otherwise `/` belongs to someone else.
    let path = if nix::unistd::geteuid().is_root() {
        let path = unique_path("owner");
        std::fs::create_dir(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        path
    } else {
        PathBuf::from("/")
    };
    let err = FifoDir::open(&path).unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("not by you"), "{err}");
    if path != Path::new("/") {
        std::fs::remove_dir(&path).unwrap();
    }
}

#[test]
fn opening_a_missing_dir_says_not_found() {
    let err = FifoDir::open(unique_path("missing")).unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::NotFound);
}

#[test]
fn a_symlink_in_place_of_a_fifo_is_refused_and_not_followed() {
    let path = unique_path("fifolink");
    let dir = FifoDir::create(&path).unwrap();
    let victim = unique_path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, path.join("in")).unwrap();
    let err = dir.fifo("in").unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("symlink"), "{err}");
    let err = dir.existing_fifo("in").unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    let err = dir.open_file("in", nix::fcntl::OFlag::O_RDWR).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    dir.remove_entry("in").unwrap();
    dir.remove().unwrap();
    std::fs::remove_file(&victim).unwrap();
}

#[test]
fn a_regular_file_in_place_of_a_fifo_is_refused_and_kept() {
    let path = unique_path("fifofile");
    let dir = FifoDir::create(&path).unwrap();
    std::fs::write(path.join("out"), "keep me").unwrap();
    let err = dir.fifo("out").unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("regular file"), "{err}");
    assert_eq!(
        std::fs::read_to_string(path.join("out")).unwrap(),
        "keep me"
    );
    dir.remove_entry("out").unwrap();
    dir.remove().unwrap();
}

#[test]
fn create_fifo_refuses_an_existing_fifo_but_fifo_adopts_it() {
    let path = unique_path("adopt");
    let dir = FifoDir::create(&path).unwrap();
    let first = dir.fifo("in").unwrap().keep();
    let err = dir.create_fifo("in").unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::AlreadyExists);
    let adopted = dir.fifo("in").unwrap();
    assert_eq!(adopted.path(), first);
    drop(adopted);
    assert!(!first.exists());
    dir.remove().unwrap();
}

#[test]
fn bad_names_are_refused() {
    let path = unique_path("names");
    let dir = FifoDir::create(&path).unwrap();
    for name in ["", ".", "..", "a/b", "../escape"] {
        let err = dir.fifo(name).unwrap_err();
        assert_eq!(io_kind(&err), ErrorKind::InvalidInput, "{name:?}");
    }
    dir.remove().unwrap();
}

#[test]
fn nonblocking_write_without_reader_says_no_reader() {
    let path = unique_path("noreader");
    let dir = FifoDir::create(&path).unwrap();
    let fifo = dir.fifo("in").unwrap();
    let err = fifo.open(Access::Write, true).unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::NotConnected);
    assert!(err.to_string().contains("no reader"), "{err}");
    drop(fifo);
    dir.remove().unwrap();
}

#[test]
fn a_read_write_end_passes_data_and_outlives_writers() {
    let path = unique_path("rw");
    let dir = FifoDir::create(&path).unwrap();
    let fifo = dir.fifo("in").unwrap();
    let mut held = fifo.open(Access::ReadWrite, true).unwrap();
    for word in ["one\n", "two\n"] {
        // Each writer comes and goes; the held end never sees end-of-file.
        let mut writer = fifo.open(Access::Write, true).unwrap();
        writer.write_all(word.as_bytes()).unwrap();
    }
    let mut buf = [0u8; 8];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"one\ntwo\n");
    let err = held.read(&mut buf).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::WouldBlock,
        "no EOF, just nothing yet"
    );
    drop(fifo);
    dir.remove().unwrap();
}

#[test]
fn a_kept_fifo_survives_and_an_existing_one_can_be_opened() {
    let path = unique_path("kept");
    let dir = FifoDir::create(&path).unwrap();
    let kept = dir.fifo("out").unwrap().keep();
    assert!(
        std::fs::symlink_metadata(&kept)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let again = dir.existing_fifo("out").unwrap();
    let _reader = again.open(Access::Read, true).unwrap();
    drop(again);
    assert!(kept.exists(), "existing_fifo does not remove on drop");
    let err = dir.existing_fifo("missing").unwrap_err();
    assert_eq!(io_kind(&err), ErrorKind::NotFound);
    dir.remove_entry("out").unwrap();
    dir.remove().unwrap();
}

#[test]
fn open_file_creates_private_regular_files() {
    use nix::fcntl::OFlag;
    let path = unique_path("files");
    let dir = FifoDir::create(&path).unwrap();
    let mut log = dir
        .open_file("log", OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND)
        .unwrap();
    log.write_all(b"line\n").unwrap();
    let meta = std::fs::symlink_metadata(path.join("log")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    let _fifo = dir.fifo("pipe").unwrap();
    let err = dir.open_file("pipe", OFlag::O_RDONLY).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let mut names = dir.entries().unwrap();
    names.sort();
    assert_eq!(names, ["log", "pipe"]);
    drop(_fifo);
    dir.remove_entry("log").unwrap();
    dir.remove().unwrap();
}
