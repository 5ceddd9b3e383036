//! `--transcript FILE`: every byte both ways, one record per line.
//!
//! ```text
//! # duet transcript: bc -q
//!      0.000 > 2+2\n
//!      0.003 < 4\n
//!      0.011 * exited with code 0
//! ```
//!
//! Each record is the seconds since PROG started, a direction (`>` to PROG,
//! `<` from PROG, `*` an event) and the bytes of one line, escaped so that
//! the record stays on one line: `\n`, `\r`, `\t`, `\\`, and `\xHH` for other
//! control bytes and invalid UTF-8. A chunk that does not end a line is a
//! record without `\n`; the rest of the line comes in the next record. The
//! original bytes can be rebuilt by unescaping the records of one direction.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// duet to PROG.
    ToProg,
    /// PROG to duet.
    FromProg,
}

/// An open transcript file.
#[derive(Debug)]
pub struct Transcript {
    out: BufWriter<File>,
    path: PathBuf,
    start: Instant,
}

impl Transcript {
    /// Creates (truncates) `path` and writes the header naming `argv`.
    pub fn create(path: &Path, argv: &[std::ffi::OsString]) -> io::Result<Transcript> {
        let file = File::create(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create the transcript {}: {e}", path.display()))
        })?;
        let mut t = Transcript {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            start: Instant::now(),
        };
        let words: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        writeln!(t.out, "# duet transcript: {}", words.join(" "))?;
        t.out.flush()?;
        Ok(t)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Restarts the clock (when PROG starts).
    pub fn restart_clock(&mut self) {
        self.start = Instant::now();
    }

    /// Records bytes going `dir`, one record per line.
    pub fn record(&mut self, dir: Dir, bytes: &[u8]) -> io::Result<()> {
        let tag = match dir {
            Dir::ToProg => '>',
            Dir::FromProg => '<',
        };
        let secs = self.start.elapsed().as_secs_f64();
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            writeln!(self.out, "{secs:10.3} {tag} {}", escape(line))?;
        }
        self.out.flush()
    }

    /// Records an event such as PROG's exit.
    pub fn event(&mut self, what: &str) -> io::Result<()> {
        let secs = self.start.elapsed().as_secs_f64();
        writeln!(self.out, "{secs:10.3} * {what}")?;
        self.out.flush()
    }
}

/// Escapes bytes so that they fit on one line and can be read back.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_records_on_one_line() {
        assert_eq!(escape(b"a\tb\\c\r\n"), "a\\tb\\\\c\\r\\n");
        assert_eq!(escape(b"\x00\xff\x7f"), "\\x00\\xff\\x7f");
        assert_eq!(escape("é".as_bytes()), "é");
    }
}
