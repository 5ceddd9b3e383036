//! Named pipes (FIFOs) inside a checked directory.
//!
//! A FIFO in a shared place such as `/tmp` is an invitation to mischief:
//! another user can pre-create the path as a symlink to a file of yours, as a
//! regular file that collects what you meant for a pipe, or as a FIFO of
//! theirs. This module closes those doors:
//!
//! - [`FifoDir`] opens the directory once, with `O_NOFOLLOW | O_DIRECTORY`,
//!   and checks the *open descriptor* (`fstat`): it must be a directory owned
//!   by the effective user and writable by nobody else. A directory that duet
//!   creates itself is made with mode 0700.
//! - Every later operation (`mkfifoat`, `openat`, `fstatat`, `unlinkat`) is
//!   relative to that descriptor, never to the path again, so the directory
//!   cannot be swapped between the check and the use.
//! - FIFOs are made with mode 0600; opening one uses `O_NOFOLLOW` and checks
//!   with `fstat` that what was opened is really a FIFO. A name that exists as
//!   a symlink or as anything but a FIFO is refused, never followed or
//!   overwritten.
//! - A [`Fifo`] removes its path when dropped unless [`Fifo::keep`] was called.
//!
//! ```
//! use duet::fifo::{Access, FifoDir};
//! use std::io::{Read, Write};
//!
//! let path = std::env::temp_dir().join(format!("duet-doc-fifo-{}", std::process::id()));
//! let dir = FifoDir::create(&path)?;
//! let fifo = dir.fifo("in")?;
//! let mut reader = fifo.open(Access::Read, true)?; // non-blocking: no writer needed yet
//! let mut writer = fifo.open(Access::Write, false)?;
//! writer.write_all(b"hello\n")?;
//! let mut buf = [0; 6];
//! reader.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"hello\n");
//! drop(fifo);              // removes `in`
//! dir.remove()?;           // removes the directory duet created
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, geteuid, mkfifoat, unlinkat};

use crate::error::{Error, Result};

/// How to open a FIFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The read end. A blocking open waits for a writer; a non-blocking one
    /// returns at once.
    Read,
    /// The write end. A blocking open waits for a reader; a non-blocking one
    /// fails with `ENXIO` (reported as "no reader") when there is none.
    Write,
    /// Both ends (Linux): never blocks, and reads never see end-of-file
    /// because this descriptor is itself a writer. This is how a server keeps
    /// a FIFO usable while clients come and go.
    ReadWrite,
}

/// A directory that has been checked to be safe for FIFOs, held open.
///
/// Dropping it closes the descriptor and leaves the directory alone; call
/// [`FifoDir::remove`] to delete it.
#[derive(Debug)]
pub struct FifoDir {
    fd: OwnedFd,
    path: PathBuf,
    created: bool,
}

impl FifoDir {
    /// Creates `path` with mode 0700, or opens it if it already exists and is
    /// safe: a real directory (not a symlink), owned by the effective user,
    /// not writable by group or others.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path and the problem: a symlink, not a
    /// directory, another owner, group/world writable, or an OS error.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-create-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;            // made 0700
    /// assert!(dir.created());
    /// assert!(FifoDir::create("/tmp").is_err());    // others can write there
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<FifoDir> {
        let path = &without_trailing_slashes(path.as_ref());
        let created = match mkdirat(nix::fcntl::AT_FDCWD, path, Mode::S_IRWXU) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(os_error(e, path, "cannot create the directory")),
        };
        let dir = Self::open_checked(path, created)?;
        if created {
            // The umask may have taken bits away; 0700 is what we promise.
            fchmod(&dir.fd, Mode::S_IRWXU)
                .map_err(|e| os_error(e, path, "cannot set mode 0700 on the directory"))?;
        }
        Ok(dir)
    }

    /// Opens an existing directory with the same checks as
    /// [`FifoDir::create`], for clients of a directory someone else set up.
    ///
    /// # Errors
    ///
    /// As for [`FifoDir::create`]; a missing directory is `NotFound`.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-open-{}", std::process::id()));
    /// std::fs::create_dir(&path)?;
    /// let dir = FifoDir::open(&path)?;              // must exist, and be safe
    /// assert!(!dir.created());
    /// assert!(FifoDir::open(path.join("missing")).is_err());
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<FifoDir> {
        Self::open_checked(&without_trailing_slashes(path.as_ref()), false)
    }

    fn open_checked(path: &Path, created: bool) -> Result<FifoDir> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(nix::fcntl::AT_FDCWD, path, flags, Mode::empty()) {
            Ok(fd) => fd,
            // Linux says ENOTDIR for a symlink opened with O_NOFOLLOW |
            // O_DIRECTORY, other systems ELOOP. The lstat below only chooses
            // the message; the refusal itself does not depend on it.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let is_link = fstatat(nix::fcntl::AT_FDCWD, path, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits());
                return Err(if is_link {
                    refusal(
                        io::ErrorKind::InvalidInput,
                        path,
                        "it is a symlink; duet does not follow symlinks here, give the real directory",
                    )
                } else {
                    refusal(
                        io::ErrorKind::AlreadyExists,
                        path,
                        "it exists and is not a directory",
                    )
                });
            }
            Err(e) => return Err(os_error(e, path, "cannot open the directory")),
        };
        let st = fstat(&fd).map_err(|e| os_error(e, path, "cannot stat the directory"))?;
        check_owner(&st, path)?;
        if st.st_mode & 0o022 != 0 {
            return Err(refusal(
                io::ErrorKind::PermissionDenied,
                path,
                &format!(
                    "its mode is {:04o}, writable by group or others; use `chmod 700` or another directory",
                    st.st_mode & 0o7777
                ),
            ));
        }
        Ok(FifoDir {
            fd,
            path: path.to_path_buf(),
            created,
        })
    }

    /// The directory's path as it was given.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-dirpath-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// assert_eq!(dir.path(), path);
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when [`FifoDir::create`] made the directory (it did not exist).
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-created-{}", std::process::id()));
    /// let first = FifoDir::create(&path)?;
    /// let second = FifoDir::create(&path)?;         // exists now: checked and adopted
    /// assert!(first.created() && !second.created());
    /// first.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn created(&self) -> bool {
        self.created
    }

    /// Makes the FIFO `name` (mode 0600), or adopts an existing FIFO of that
    /// name owned by the user. The returned [`Fifo`] removes the name when
    /// dropped, unless kept.
    ///
    /// # Errors
    ///
    /// A bad name (empty, `.`, `..`, or containing `/`), a name that exists as
    /// a symlink or as anything but a FIFO, a FIFO owned by someone else.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// use std::os::unix::fs::FileTypeExt;
    /// let path = std::env::temp_dir().join(format!("duet-doc-fifo-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let fifo = dir.fifo("in")?;
    /// assert!(std::fs::metadata(fifo.path())?.file_type().is_fifo());
    /// std::fs::write(path.join("plain"), "")?;
    /// assert!(dir.fifo("plain").is_err());          // never a regular file
    /// drop(fifo);                                    // removes `in`
    /// dir.remove_entry("plain")?;
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fifo(&self, name: &str) -> Result<Fifo> {
        self.make_fifo(name, false)
    }

    /// Like [`FifoDir::fifo`], but fails with `AlreadyExists` when the name
    /// exists in any form: the FIFO is certainly new.
    ///
    /// # Errors
    ///
    /// As for [`FifoDir::fifo`], plus any existing entry.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-createfifo-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let fifo = dir.create_fifo("out")?;
    /// assert!(dir.create_fifo("out").is_err());     // exists already
    /// drop(fifo);
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_fifo(&self, name: &str) -> Result<Fifo> {
        self.make_fifo(name, true)
    }

    /// Refers to the existing FIFO `name` without creating it. The returned
    /// [`Fifo`] is already kept: dropping it leaves the name in place.
    ///
    /// # Errors
    ///
    /// A missing name (`NotFound`), a symlink, anything but a FIFO, another owner.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-existing-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// assert!(dir.existing_fifo("in").is_err());    // not made yet
    /// let made = dir.fifo("in")?.keep();
    /// let existing = dir.existing_fifo("in")?;
    /// assert_eq!(existing.path(), made);
    /// drop(existing);                                // kept: still there
    /// dir.remove_entry("in")?;
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn existing_fifo(&self, name: &str) -> Result<Fifo> {
        check_name(name)?;
        self.check_entry(name, SFlag::S_IFIFO, "a FIFO")?;
        Ok(Fifo {
            dir: self.dup()?,
            path: self.path.join(name),
            name: name.to_string(),
            keep: true,
        })
    }

    fn make_fifo(&self, name: &str, exclusive: bool) -> Result<Fifo> {
        check_name(name)?;
        let path = self.path.join(name);
        match mkfifoat(&self.fd, name, Mode::S_IRUSR | Mode::S_IWUSR) {
            Ok(()) => {}
            Err(Errno::EEXIST) if !exclusive => self.check_entry(name, SFlag::S_IFIFO, "a FIFO")?,
            Err(Errno::EEXIST) => {
                return Err(refusal(
                    io::ErrorKind::AlreadyExists,
                    &path,
                    "it already exists",
                ));
            }
            Err(e) => return Err(os_error(e, &path, "cannot create the FIFO")),
        }
        Ok(Fifo {
            dir: self.dup()?,
            path,
            name: name.to_string(),
            keep: false,
        })
    }

    /// Checks that `name` is a `kind` (FIFO, regular file) owned by the user,
    /// without following a symlink.
    fn check_entry(&self, name: &str, kind: SFlag, what: &str) -> Result<()> {
        let path = self.path.join(name);
        let st = fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| os_error(e, &path, "cannot stat"))?;
        check_kind(&st, kind, what, &path)?;
        check_owner(&st, &path)
    }

    /// Opens the regular file `name` in the directory with `flags`
    /// (`O_NOFOLLOW` and `O_CLOEXEC` are always added; a created file gets
    /// mode 0600), and checks that what was opened is a regular file.
    /// For the pid, lock and log files that live beside the FIFOs.
    ///
    /// # Errors
    ///
    /// A bad name, a symlink, anything but a regular file, an OS error.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// use nix::fcntl::OFlag;
    /// use std::io::Write;
    /// let path = std::env::temp_dir().join(format!("duet-doc-openfile-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let mut pid = dir.open_file("pid", OFlag::O_WRONLY | OFlag::O_CREAT)?;
    /// writeln!(pid, "{}", std::process::id())?;
    /// assert!(dir.open_file("../escape", OFlag::O_RDONLY).is_err());
    /// dir.remove_entry("pid")?;
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_file(&self, name: &str, flags: OFlag) -> Result<File> {
        check_name(name)?;
        let path = self.path.join(name);
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = openat(&self.fd, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|e| entry_error(e, &path))?;
        let st = fstat(&fd).map_err(|e| os_error(e, &path, "cannot stat"))?;
        check_kind(&st, SFlag::S_IFREG, "a regular file", &path)?;
        // O_NONBLOCK only guarded the open against a FIFO planted in place of
        // the file; regular files ignore it, so clear it for clarity.
        let file = File::from(fd);
        nix::fcntl::fcntl(
            &file,
            nix::fcntl::FcntlArg::F_SETFL(flags & OFlag::O_APPEND),
        )
        .map_err(|e| os_error(e, &path, "cannot set flags"))?;
        Ok(file)
    }

    /// Removes the entry `name` (not a directory) if it exists. A missing
    /// entry is not an error.
    ///
    /// # Errors
    ///
    /// A bad name, or an OS error other than `ENOENT`.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-rmentry-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// std::fs::write(path.join("stale.log"), "old")?;
    /// dir.remove_entry("stale.log")?;
    /// dir.remove_entry("stale.log")?;               // gone already: fine
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_entry(&self, name: &str) -> Result<()> {
        check_name(name)?;
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(os_error(e, &self.path.join(name), "cannot remove")),
        }
    }

    /// The names in the directory (without `.` and `..`). The listing goes
    /// through the path; use the names only with this value's `*_entry` and
    /// `fifo` methods, which work relative to the checked descriptor.
    ///
    /// # Errors
    ///
    /// An OS error reading the directory.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-entries-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let (a, b) = (dir.fifo("in")?, dir.fifo("out")?);
    /// let mut names = dir.entries()?;
    /// names.sort();
    /// assert_eq!(names, ["in", "out"]);
    /// drop((a, b));
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entries(&self) -> Result<Vec<String>> {
        let read = |e: io::Error| {
            Error::Io(io::Error::new(
                e.kind(),
                format!("cannot read the directory {}: {e}", self.path.display()),
            ))
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(read)? {
            names.push(
                entry
                    .map_err(read)?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        Ok(names)
    }

    /// Removes the (empty) directory itself.
    ///
    /// # Errors
    ///
    /// The directory is not empty, or another OS error.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-remove-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// dir.remove()?;
    /// assert!(!path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir(&self.path).map_err(|e| {
            Error::Io(io::Error::new(
                e.kind(),
                format!("cannot remove the directory {}: {e}", self.path.display()),
            ))
        })
    }

    fn dup(&self) -> Result<OwnedFd> {
        self.fd.try_clone().map_err(Error::Io)
    }
}

impl AsFd for FifoDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A FIFO in a [`FifoDir`]. Dropping it removes the name (unless
/// [`Fifo::keep`] was called); descriptors already opened stay usable.
#[derive(Debug)]
pub struct Fifo {
    dir: OwnedFd,
    path: PathBuf,
    name: String,
    keep: bool,
}

impl Fifo {
    /// The FIFO's path.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-fifopath-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let fifo = dir.fifo("in")?;
    /// assert_eq!(fifo.path(), path.join("in"));
    /// drop(fifo);
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the FIFO, without following a symlink, and checks that what was
    /// opened is a FIFO. With `nonblocking`, the open does not wait for the
    /// other end and the descriptor is left in non-blocking mode.
    ///
    /// # Errors
    ///
    /// The name is now a symlink or not a FIFO; a non-blocking write open
    /// with no reader (`NotConnected`, "no reader"); another OS error.
    ///
    /// ```
    /// use duet::fifo::{Access, FifoDir};
    /// use std::io::{BufRead, BufReader, Write};
    /// let path = std::env::temp_dir().join(format!("duet-doc-fifoopen-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let fifo = dir.fifo("in")?;
    /// assert!(fifo.open(Access::Write, true).is_err());  // no reader yet
    /// let server = fifo.open(Access::ReadWrite, false)?; // never sees end-of-file
    /// let mut client = fifo.open(Access::Write, false)?;
    /// writeln!(client, "request")?;
    /// let mut line = String::new();
    /// BufReader::new(server).read_line(&mut line)?;
    /// assert_eq!(line, "request\n");
    /// drop(fifo);
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&self, access: Access, nonblocking: bool) -> Result<File> {
        let mut flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        flags |= match access {
            Access::Read => OFlag::O_RDONLY,
            Access::Write => OFlag::O_WRONLY,
            Access::ReadWrite => OFlag::O_RDWR,
        };
        if nonblocking {
            flags |= OFlag::O_NONBLOCK;
        }
        let fd = loop {
            match openat(&self.dir, self.name.as_str(), flags, Mode::empty()) {
                Err(Errno::EINTR) => continue,
                Err(Errno::ENXIO) => {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::NotConnected,
                        format!("{}: no reader has the FIFO open", self.path.display()),
                    )));
                }
                other => break other.map_err(|e| entry_error(e, &self.path))?,
            }
        };
        let st = fstat(&fd).map_err(|e| os_error(e, &self.path, "cannot stat"))?;
        check_kind(&st, SFlag::S_IFIFO, "a FIFO", &self.path)?;
        check_owner(&st, &self.path)?;
        Ok(File::from(fd))
    }

    /// Keeps the FIFO: dropping this value will not remove it. Returns its path.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-keep-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let kept = dir.fifo("in")?.keep();            // dropped, yet still there
    /// assert!(kept.exists());
    /// dir.remove_entry("in")?;
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }

    /// Removes the FIFO now. Idempotent: a FIFO already gone is not an error.
    ///
    /// # Errors
    ///
    /// An OS error other than `ENOENT`.
    ///
    /// ```
    /// use duet::fifo::FifoDir;
    /// let path = std::env::temp_dir().join(format!("duet-doc-fiforemove-{}", std::process::id()));
    /// let dir = FifoDir::create(&path)?;
    /// let mut fifo = dir.fifo("in")?;
    /// fifo.remove()?;
    /// fifo.remove()?;                                // idempotent
    /// assert!(!path.join("in").exists());
    /// dir.remove()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self) -> Result<()> {
        self.keep = true;
        match unlinkat(&self.dir, self.name.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(os_error(e, &self.path, "cannot remove the FIFO")),
        }
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = self.remove() {
                log::warn!("{e}");
            }
        }
    }
}

/// `dir/` names the same directory as `dir`, but a trailing slash makes the
/// kernel follow a symlink even under `O_NOFOLLOW`: drop it.
fn without_trailing_slashes(path: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let trimmed = bytes.len() - bytes.iter().rev().take_while(|&&b| b == b'/').count();
    if trimmed == 0 {
        return path.to_path_buf();
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..trimmed]))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name (no `/`, not `.` or `..`)"),
        )));
    }
    Ok(())
}

fn check_kind(st: &FileStat, kind: SFlag, what: &str, path: &Path) -> Result<()> {
    let actual = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if actual == kind {
        return Ok(());
    }
    let (found, errkind) = if actual == SFlag::S_IFLNK {
        ("a symlink", io::ErrorKind::InvalidInput)
    } else if actual == SFlag::S_IFREG {
        ("a regular file", io::ErrorKind::AlreadyExists)
    } else if actual == SFlag::S_IFDIR {
        ("a directory", io::ErrorKind::AlreadyExists)
    } else if actual == SFlag::S_IFIFO {
        ("a FIFO", io::ErrorKind::AlreadyExists)
    } else {
        ("a special file", io::ErrorKind::AlreadyExists)
    };
    Err(refusal(
        errkind,
        path,
        &format!(
            "it is {found}, not {what}; duet will not follow or overwrite it, remove it first"
        ),
    ))
}

fn check_owner(st: &FileStat, path: &Path) -> Result<()> {
    let me = geteuid().as_raw();
    if st.st_uid != me {
        return Err(refusal(
            io::ErrorKind::PermissionDenied,
            path,
            &format!("it is owned by uid {}, not by you (uid {me})", st.st_uid),
        ));
    }
    Ok(())
}

/// An `openat`/`fstatat` error on an entry, with `ELOOP` explained.
fn entry_error(e: Errno, path: &Path) -> Error {
    if e == Errno::ELOOP {
        refusal(
            io::ErrorKind::InvalidInput,
            path,
            "it is a symlink; duet will not follow it, remove it first",
        )
    } else {
        os_error(e, path, "cannot open")
    }
}

fn refusal(kind: io::ErrorKind, path: &Path, why: &str) -> Error {
    Error::Io(io::Error::new(
        kind,
        format!("refusing {}: {why}", path.display()),
    ))
}

fn os_error(e: Errno, path: &Path, what: &str) -> Error {
    let os = io::Error::from(e);
    Error::Io(io::Error::new(
        os.kind(),
        format!("{what} {}: {os}", path.display()),
    ))
}
