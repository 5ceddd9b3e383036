//! Writing to a child's terminal so that what is sent arrives unchanged.
//!
//! A terminal in canonical mode (the default, and what line-reading programs
//! get) edits its input: a line longer than 4095 bytes is cut, and control
//! characters such as `^C`, `^D`, `^U` or DEL act instead of arriving
//! (pexpect's long-standing bug). While the child's terminal is canonical,
//! the encoder therefore
//!
//! - puts the "literal next" character (`^V`) before every character the
//!   terminal would act on or translate: the special characters, and `\r`
//!   when `ICRNL` or `IGNCR` would turn it into a newline or drop it (a
//!   line holding a `\r` would otherwise arrive as two lines);
//! - ends a line with `^V`, `\n` and the end-of-file character when `INLCR`
//!   is set, which would turn the newline into `\r` and never finish the
//!   line: the escaped newline arrives as itself and end-of-file hands the
//!   line over; and
//! - ends every 4000 bytes of an unfinished line with the end-of-file
//!   character, which in the middle of a line hands the bytes to the reader
//!   without a newline; the program's next read continues the same line.
//!
//! When the child switches its terminal to raw mode (as readline does), the
//! bytes go through untouched. The mode is read before every write.

use std::os::fd::BorrowedFd;

use nix::sys::termios::{self, InputFlags, LocalFlags, SpecialCharacterIndices as Cc};

/// Longest run of bytes without a newline handed to the terminal at once;
/// below its 4095-byte canonical limit.
const CHUNK: usize = 4000;

#[derive(Debug, Default)]
pub(crate) struct Encoder {
    /// Bytes written since the last newline or push.
    column: usize,
}

/// The terminal's current special characters, when it is canonical.
struct Canonical {
    special: [u8; 16],
    n_special: usize,
    literal_next: Option<u8>,
    end_of_file: u8,
    /// `INLCR`: a newline arrives as `\r` unless escaped.
    newline_to_cr: bool,
}

fn canonical(fd: BorrowedFd<'_>) -> Option<Canonical> {
    let t = termios::tcgetattr(fd).ok()?;
    if !t.local_flags.contains(LocalFlags::ICANON) {
        return None;
    }
    let cc = &t.control_chars;
    let mut special = [0u8; 16];
    let mut n_special = 0;
    let mut add = |c: u8| {
        // 0 is _POSIX_VDISABLE: that function is switched off.
        if c != 0 && n_special < special.len() {
            special[n_special] = c;
            n_special += 1;
        }
    };
    for idx in [Cc::VEOF, Cc::VEOL, Cc::VEOL2, Cc::VERASE, Cc::VKILL] {
        add(cc[idx as usize]);
    }
    let extended = t.local_flags.contains(LocalFlags::IEXTEN);
    if extended {
        for idx in [Cc::VWERASE, Cc::VREPRINT, Cc::VLNEXT] {
            add(cc[idx as usize]);
        }
    }
    if t.local_flags.contains(LocalFlags::ISIG) {
        for idx in [Cc::VINTR, Cc::VQUIT, Cc::VSUSP] {
            add(cc[idx as usize]);
        }
    }
    if t.input_flags.contains(InputFlags::IXON) {
        for idx in [Cc::VSTART, Cc::VSTOP] {
            add(cc[idx as usize]);
        }
    }
    // Input translation happens before the line discipline looks at a
    // character, except for one that follows `^V`.
    if t.input_flags
        .intersects(InputFlags::ICRNL | InputFlags::IGNCR)
    {
        add(b'\r');
    }
    let lnext = cc[Cc::VLNEXT as usize];
    Some(Canonical {
        special,
        n_special,
        literal_next: (extended && lnext != 0).then_some(lnext),
        end_of_file: cc[Cc::VEOF as usize],
        newline_to_cr: t.input_flags.contains(InputFlags::INLCR),
    })
}

/// The terminal's interrupt character (`^C` unless changed).
pub(crate) fn interrupt_char(fd: BorrowedFd<'_>) -> u8 {
    termios::tcgetattr(fd)
        .ok()
        .map(|t| t.control_chars[Cc::VINTR as usize])
        .filter(|&c| c != 0)
        .unwrap_or(0x03)
}

impl Encoder {
    /// Encodes `parts` for the terminal behind `fd`.
    pub(crate) fn encode(&mut self, fd: BorrowedFd<'_>, parts: &[&[u8]]) -> Vec<u8> {
        let mode = canonical(fd);
        let total = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut out = Vec::with_capacity(total + total / 64 + 8);
        for &b in parts.iter().flat_map(|p| p.iter()) {
            if b == b'\n' {
                if let Some(m) = &mode
                    && m.newline_to_cr
                    && m.end_of_file != 0
                    && let Some(lnext) = m.literal_next
                {
                    out.extend_from_slice(&[lnext, b, m.end_of_file]);
                } else {
                    out.push(b);
                }
                self.column = 0;
                continue;
            }
            if let Some(m) = &mode {
                if self.column >= CHUNK && m.end_of_file != 0 {
                    out.push(m.end_of_file);
                    self.column = 0;
                }
                if let Some(lnext) = m.literal_next
                    && m.special[..m.n_special].contains(&b)
                {
                    out.push(lnext);
                }
            }
            out.push(b);
            self.column += 1;
        }
        out
    }

    /// A control character went to the terminal unencoded: `^C`, `^D`
    /// and their kind end or discard the line being typed.
    pub(crate) fn control_written(&mut self) {
        self.column = 0;
    }

    /// The bytes that make the child read end-of-file.
    pub(crate) fn end_of_file(&mut self, fd: BorrowedFd<'_>) -> Vec<u8> {
        let eof = canonical(fd).map_or(4, |m| m.end_of_file);
        let eof = if eof == 0 { 4 } else { eof };
        // After a partial line the first one only pushes that line out.
        let out = if self.column > 0 {
            vec![eof, eof]
        } else {
            vec![eof]
        };
        self.column = 0;
        out
    }
}
