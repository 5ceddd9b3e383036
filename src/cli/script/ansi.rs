//! `strip-ansi on`: terminal escape sequences removed from output before
//! the script matches it.
//!
//! Removed: CSI sequences (`ESC [`, parameter bytes `0x30..=0x3f`,
//! intermediate bytes `0x20..=0x2f`, a final byte `0x40..=0x7e`), the
//! charset switches `ESC ( X` and `ESC ) X`, and the keypad modes `ESC =`
//! and `ESC >`. Any other `ESC` stays, as do malformed sequences. A
//! sequence cut between two reads is held back until the rest arrives (at
//! most [`HOLD`] bytes, then it passes as it is).

/// The longest unfinished sequence held back between reads.
pub const HOLD: usize = 256;

const ESC: u8 = 0x1b;

/// The filter's state: an unfinished sequence from the last read.
#[derive(Debug, Default)]
pub struct Filter {
    pending: Vec<u8>,
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
    /// Appends `input` to `out` without its escape sequences.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let joined;
        let bytes: &[u8] = if self.pending.is_empty() {
            input
        } else {
            let mut j = std::mem::take(&mut self.pending);
            j.extend_from_slice(input);
            joined = j;
            &joined
        };
        let mut i = 0;
        while i < bytes.len() {
            let Some(at) = bytes[i..].iter().position(|&b| b == ESC) else {
                out.extend_from_slice(&bytes[i..]);
                return;
            };
            out.extend_from_slice(&bytes[i..i + at]);
            i += at;
            match sequence(&bytes[i..]) {
                Seq::Remove(n) => i += n,
                Seq::Keep => {
                    out.push(ESC);
                    i += 1;
                }
                Seq::Unfinished if bytes.len() - i < HOLD => {
                    self.pending = bytes[i..].to_vec();
                    return;
                }
                Seq::Unfinished => {
                    out.push(ESC);
                    i += 1;
                }
            }
        }
    }

    /// At end of output: what was held back, as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = Filter::default();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        f.finish(&mut out);
        out
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
    fn an_unfinished_sequence_passes_at_the_end_or_past_the_limit() {
        assert_eq!(strip(&[b"a\x1b["]), b"a\x1b[");
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', HOLD));
        assert_eq!(strip(&[&long, b"m"]), [&long[..], b"m"].concat());
    }
}
