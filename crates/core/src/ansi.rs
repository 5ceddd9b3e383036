//! `Command::strip_ansi`: terminal escape
//! sequences removed from output as it arrives, before lines, patterns and
//! watches see it.
//!
//! Removed: CSI sequences (`ESC [`, parameter bytes `0x30..=0x3f`,
//! intermediate bytes `0x20..=0x2f`, a final byte `0x40..=0x7e`), the
//! charset switches `ESC ( X` and `ESC ) X`, and the keypad modes `ESC =`
//! and `ESC >`. Any other `ESC` stays, as do malformed sequences. A
//! sequence cut between two reads is held back until the rest arrives (at
//! most [`HOLD`] bytes, then it passes as it is); at end-of-file what is
//! held back passes as it is.

/// The longest unfinished sequence held back between reads.
pub const HOLD: usize = 256;

const ESC: u8 = 0x1b;

/// The filter of one stream: an unfinished sequence from the last read.
#[derive(Debug, Default)]
pub struct Filter {
    pending: Vec<u8>,
    /// The raw bytes of the read being filtered (kept for its capacity).
    scratch: Vec<u8>,
}

/// What the bytes at the start of a slice beginning with ESC are.
enum Seq {
    /// A sequence to remove, this long.
    Remove(usize),
    /// Not one of ours: keep the ESC.
    Keep,
    /// Could still become one: more bytes are needed.
    Unfinished,
}

fn sequence(bytes: &[u8]) -> Seq {
    match bytes.get(1) {
        None => Seq::Unfinished,
        Some(b'[') => {
            let mut i = 2;
            while let Some(&b) = bytes.get(i) {
                match b {
                    // Parameter bytes (0x30..=0x3f), then intermediate bytes (0x20..=0x2f).
                    0x20..=0x3f => i += 1,
                    0x40..=0x7e => return Seq::Remove(i + 1),
                    _ => return Seq::Keep,
                }
            }
            Seq::Unfinished
        }
        Some(b'(' | b')') => match bytes.get(2) {
            None => Seq::Unfinished,
            Some(0x20..=0x7e) => Seq::Remove(3),
            Some(_) => Seq::Keep,
        },
        Some(b'=' | b'>') => Seq::Remove(2),
        Some(_) => Seq::Keep,
    }
}

impl Filter {
    /// Filters the bytes of `data` from `from` on (the ones a read just
    /// appended), in place: what an earlier read held back goes first, an
    /// unfinished sequence at the end is held back for the next read.
    pub fn strip_from(&mut self, data: &mut Vec<u8>, from: usize) {
        if self.pending.is_empty() && memchr::memchr(ESC, &data[from..]).is_none() {
            return;
        }
        let mut raw = std::mem::take(&mut self.scratch);
        raw.clear();
        raw.append(&mut self.pending);
        raw.extend_from_slice(&data[from..]);
        data.truncate(from);
        self.feed(&raw, data);
        self.scratch = raw;
    }

    /// At end-of-file: what was held back, as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }

    /// Appends `bytes` to `out` without their escape sequences.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < bytes.len() {
            let Some(at) = memchr::memchr(ESC, &bytes[i..]) else {
                out.extend_from_slice(&bytes[i..]);
                return;
            };
            out.extend_from_slice(&bytes[i..i + at]);
            i += at;
            match sequence(&bytes[i..]) {
                Seq::Remove(n) => i += n,
                Seq::Unfinished if bytes.len() - i < HOLD => {
                    self.pending.extend_from_slice(&bytes[i..]);
                    return;
                }
                Seq::Keep | Seq::Unfinished => {
                    out.push(ESC);
                    i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `chunks` as successive reads into one buffer, then end-of-file.
    fn strip(chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = Filter::default();
        let mut data = Vec::new();
        for c in chunks {
            let from = data.len();
            data.extend_from_slice(c);
            f.strip_from(&mut data, from);
        }
        f.finish(&mut data);
        data
    }

    #[test]
    fn removes_csi_charset_and_keypad_sequences() {
        let input = b"\x1b[1;31mred\x1b[0m \x1b[?2004hok\x1b(B\x1b)0\x1b=\x1b>done\x1b[2J";
        assert_eq!(strip(&[input]), b"red okdone");
    }

    #[test]
    fn keeps_other_escapes_and_malformed_sequences() {
        assert_eq!(strip(&[b"a\x1b]0;title\x07b"]), b"a\x1b]0;title\x07b");
        assert_eq!(strip(&[b"a\x1b[1\nb"]), b"a\x1b[1\nb");
        assert_eq!(strip(&[b"a\x1b(\x01"]), b"a\x1b(\x01");
    }

    #[test]
    fn a_sequence_cut_between_reads_is_still_removed() {
        let input: &[u8] = b"x\x1b[38;5;208my\x1b(Bz\x1b=";
        for cut in 0..=input.len() {
            for cut2 in cut..=input.len() {
                let got = strip(&[&input[..cut], &input[cut..cut2], &input[cut2..]]);
                assert_eq!(got, b"xyz", "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn bytes_before_the_read_are_left_alone() {
        let mut f = Filter::default();
        let mut data = b"\x1b[1m kept".to_vec();
        let from = data.len();
        data.extend_from_slice(b" \x1b[0mnew");
        f.strip_from(&mut data, from);
        assert_eq!(data, b"\x1b[1m kept new");
    }

    #[test]
    fn an_unfinished_sequence_passes_at_the_end_or_past_the_limit() {
        assert_eq!(strip(&[b"a\x1b["]), b"a\x1b[");
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', HOLD));
        assert_eq!(strip(&[&long, b"m"]), [&long[..], b"m"].concat());
    }
}
