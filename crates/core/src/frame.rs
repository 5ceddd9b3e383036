//! The frame codec, on byte buffers: no descriptors, no clocks.
//!
//! A frame is what Python's `multiprocessing.connection.Connection` writes: a
//! 4-byte big-endian *signed* length and the payload; a payload longer than
//! `0x7fff_ffff` bytes gets the marker `-1` (`ff ff ff ff`) and then an
//! 8-byte big-endian unsigned length.
//!
//! [`Reader`] holds everything that arrived and was not handed out yet, and
//! takes its bytes from a [`Source`]. The connection's source is a descriptor
//! with an optional deadline; the unit tests' source is a list of chunks, so
//! frames torn at every byte are tested without processes.

use std::io;

use std::fmt;

/// What can go wrong while receiving frames. The `duet` library turns each
/// into the `duet::Error` variant of the same name.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed its end at a frame boundary.
    Eof,
    /// The peer closed the connection in the middle of a frame.
    Truncated {
        /// Bytes the frame announced (header included when the header
        /// itself was cut).
        expected: u64,
        /// Bytes that arrived before the end.
        got: u64,
    },
    /// A message was longer than the limit given; its payload is skipped.
    MessageTooLong {
        /// The message's length in bytes.
        len: u64,
        /// The limit that was given.
        limit: usize,
    },
    /// The caller's buffer is shorter than the message, which stays
    /// readable with a bigger buffer.
    BufferTooShort {
        /// The buffer size the message needs.
        needed: usize,
    },
    /// A malformed header, memory that could not be had, or an error of
    /// the [`Source`].
    Io(io::Error),
}

impl Error {
    /// Whether this is the clean end of the stream.
    pub fn is_eof(&self) -> bool {
        matches!(self, Error::Eof)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Eof => f.write_str("the peer closed the connection"),
            Error::Truncated { expected, got } => write!(
                f,
                "the peer closed the connection in the middle of a message ({got} of {expected} bytes)"
            ),
            Error::MessageTooLong { len, limit } => {
                write!(f, "a message of {len} bytes is over the limit of {limit}")
            }
            Error::BufferTooShort { needed } => {
                write!(
                    f,
                    "the buffer is too short: the message needs {needed} bytes"
                )
            }
            Error::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Payloads up to this length use the 4-byte header.
pub const MAX_SHORT: u64 = 0x7fff_ffff;
/// The 4-byte header.
const SHORT: usize = 4;
/// The marker and the 8-byte length.
const LONG: usize = 12;
/// The capacity of the read-ahead buffer. Frames up to this size (header
/// included) are assembled in it; larger payloads are read straight into the
/// message's own allocation.
pub const READ_AHEAD: usize = 64 * 1024;
/// While a large payload is read straight into its message, at most this
/// much of what follows it is read ahead in the same system call (and
/// later copied): enough for the next header and a small message.
pub const TAIL_READ_AHEAD: usize = 4 * 1024;
/// The first allocation for a large payload whose sender announced more:
/// memory grows with the bytes that really arrive, so a lying header cannot
/// make the receiver allocate gigabytes up front.
const FIRST_ALLOCATION: u64 = 64 * 1024 * 1024;

/// An encoded frame header: 4 bytes, or 12 for payloads over 2 GiB - 1.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    bytes: [u8; LONG],
    len: usize,
}

impl Header {
    /// The header announcing a payload of `payload_len` bytes.
    pub fn new(payload_len: u64) -> Header {
        let mut bytes = [0u8; LONG];
        if payload_len <= MAX_SHORT {
            bytes[..SHORT].copy_from_slice(&(payload_len as i32).to_be_bytes());
            Header { bytes, len: SHORT }
        } else {
            bytes[..SHORT].copy_from_slice(&(-1i32).to_be_bytes());
            bytes[SHORT..].copy_from_slice(&payload_len.to_be_bytes());
            Header { bytes, len: LONG }
        }
    }

    /// The header's bytes, as they go on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the start of a buffer says about the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The header is not complete: it needs `header_len` bytes in all.
    Incomplete {
        /// 4, or 12 once the long-frame marker has been seen.
        header_len: usize,
    },
    /// A complete header.
    Frame {
        /// 4 or 12.
        header_len: usize,
        /// The payload's length.
        payload_len: u64,
    },
}

/// Parses the header at the start of `buf`.
///
/// # Errors
///
/// `Error::Io` (`InvalidData`) for a negative length other than the `-1`
/// marker: the stream is not made of frames, or it lost its place.
pub fn parse_header(buf: &[u8]) -> Result<Parsed, Error> {
    let Some(short) = buf.first_chunk::<SHORT>() else {
        return Ok(Parsed::Incomplete { header_len: SHORT });
    };
    match i32::from_be_bytes(*short) {
        n if n >= 0 => Ok(Parsed::Frame {
            header_len: SHORT,
            payload_len: n as u64,
        }),
        -1 => match buf[SHORT..].first_chunk::<8>() {
            Some(long) => Ok(Parsed::Frame {
                header_len: LONG,
                payload_len: u64::from_be_bytes(*long),
            }),
            None => Ok(Parsed::Incomplete { header_len: LONG }),
        },
        n => Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a message frame: the length field reads {n}"),
        ))),
    }
}

/// What one attempt to read from a [`Source`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// This many bytes were written to the start of the buffer (never 0).
    Data(usize),
    /// The peer closed its end.
    Eof,
    /// The deadline passed first.
    TimedOut,
}

/// Where a [`Reader`] gets its bytes.
pub trait Source {
    /// Reads some bytes into `buf` (never empty), waiting at most until the
    /// source's deadline.
    fn fill(&mut self, buf: &mut [u8]) -> Result<Fill, Error>;

    /// Reads some bytes into the spare capacity of `msg` (appending at most
    /// `want` bytes, `want` no more than the spare capacity and not 0) and
    /// then into `ahead`, in one go; `Fill::Data` counts both.
    fn fill_split(
        &mut self,
        msg: &mut Vec<u8>,
        want: usize,
        ahead: &mut [u8],
    ) -> Result<Fill, Error>;
}

/// A large message being received straight into its own allocation.
#[derive(Debug)]
struct Pending {
    /// What arrived; its capacity grows ahead of the bytes.
    msg: Vec<u8>,
    /// The announced payload length.
    total: u64,
}

/// The payload of a message refused by `recv_bytes_max`, still on its way.
#[derive(Debug, Clone, Copy)]
struct Skip {
    total: u64,
    left: u64,
}

/// The receiving half of a connection: read-ahead buffer and frame state.
///
/// The stream's order is always: the rest of a skipped payload, the rest of
/// a pending message, then `buf[start..end]`'s remaining bytes, then the
/// source. Every method consumes the buffer before it asks the source.
#[derive(Debug)]
pub struct Reader {
    /// [`READ_AHEAD`], smaller in unit tests.
    read_ahead: usize,
    /// [`FIRST_ALLOCATION`], smaller in unit tests.
    first_allocation: u64,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    skip: Option<Skip>,
    pending: Option<Pending>,
}

/// `Ok(None)`: the source's deadline passed; nothing was lost.
pub type Step<T> = Result<Option<T>, Error>;

impl Default for Reader {
    fn default() -> Reader {
        Reader::new()
    }
}

impl Reader {
    /// A reader with nothing buffered.
    pub fn new() -> Reader {
        Reader::with_sizes(READ_AHEAD, FIRST_ALLOCATION)
    }

    /// A reader with other sizes than [`READ_AHEAD`] and the first
    /// allocation for a large payload (64 MiB), so that small frames take
    /// the large-frame paths (unit tests, fuzzing).
    pub fn with_sizes(read_ahead: usize, first_allocation: u64) -> Reader {
        Reader {
            read_ahead,
            first_allocation,
            buf: Vec::new(),
            start: 0,
            end: 0,
            skip: None,
            pending: None,
        }
    }

    /// Bytes that arrived and were not handed out (a skipped payload's bytes
    /// are dropped as soon as they arrive and do not count).
    pub fn buffered(&self) -> usize {
        (self.end - self.start) + self.pending.as_ref().map_or(0, |p| p.msg.len())
    }

    /// What arrived of the next message, for a timeout's `partial`.
    pub fn partial(&self) -> &[u8] {
        if let Some(p) = &self.pending {
            return &p.msg;
        }
        let data = &self.buf[self.start..self.end];
        match parse_header(data) {
            Ok(Parsed::Frame { header_len, .. }) => &data[header_len..],
            _ => &[],
        }
    }

    /// Reads once from `src` into the free end of the buffer, growing it
    /// when it is full (while a send waits, everything the peer sends is
    /// kept here).
    pub fn fill_buf(&mut self, src: &mut impl Source) -> Result<Fill, Error> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > self.read_ahead {
                self.buf.truncate(self.read_ahead);
                self.buf.shrink_to_fit();
            }
        } else if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let len = (self.buf.len() * 2).max(self.read_ahead);
            self.buf.resize(len, 0);
        }
        let fill = src.fill(&mut self.buf[self.end..])?;
        if let Fill::Data(n) = fill {
            self.end += n;
        }
        Ok(fill)
    }

    /// Forgets everything buffered: after the peer closed in mid-frame.
    fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.skip = None;
        self.pending = None;
    }

    /// Drops the rest of a refused payload.
    fn finish_skip(&mut self, src: &mut impl Source) -> Step<()> {
        while let Some(skip) = &mut self.skip {
            let n = (self.end - self.start).min(usize::try_from(skip.left).unwrap_or(usize::MAX));
            self.start += n;
            skip.left -= n as u64;
            if skip.left == 0 {
                self.skip = None;
                break;
            }
            let Skip { total, left } = *skip;
            match self.fill_buf(src)? {
                Fill::Data(_) => {}
                Fill::Eof => {
                    self.reset();
                    return Err(Error::Truncated {
                        expected: total,
                        got: total - left,
                    });
                }
                Fill::TimedOut => return Ok(None),
            }
        }
        Ok(Some(()))
    }

    /// Makes sure the next frame's header is buffered and returns it,
    /// without consuming it.
    fn header(&mut self, src: &mut impl Source) -> Step<(usize, u64)> {
        loop {
            let header_len = match parse_header(&self.buf[self.start..self.end])? {
                Parsed::Frame {
                    header_len,
                    payload_len,
                } => return Ok(Some((header_len, payload_len))),
                Parsed::Incomplete { header_len } => header_len,
            };
            match self.fill_buf(src)? {
                Fill::Data(_) => {}
                Fill::Eof => {
                    let got = (self.end - self.start) as u64;
                    self.reset();
                    return Err(if got == 0 {
                        eof()
                    } else {
                        Error::Truncated {
                            expected: header_len as u64,
                            got,
                        }
                    });
                }
                Fill::TimedOut => return Ok(None),
            }
        }
    }

    /// Makes sure a whole small frame (header and payload fit in the
    /// read-ahead buffer) is buffered.
    fn whole_frame(&mut self, src: &mut impl Source, header_len: usize, len: usize) -> Step<()> {
        while self.end - self.start < header_len + len {
            match self.fill_buf(src)? {
                Fill::Data(_) => {}
                Fill::Eof => {
                    let got = (self.end - self.start - header_len) as u64;
                    self.reset();
                    return Err(Error::Truncated {
                        expected: len as u64,
                        got,
                    });
                }
                Fill::TimedOut => return Ok(None),
            }
        }
        Ok(Some(()))
    }

    /// Reads the rest of the pending message into its storage.
    fn finish_pending(&mut self, src: &mut impl Source) -> Step<()> {
        let Some(p) = &mut self.pending else {
            return Ok(Some(()));
        };
        while (p.msg.len() as u64) < p.total {
            let want = usize::try_from(p.total - p.msg.len() as u64).unwrap_or(usize::MAX);
            if self.start < self.end {
                let n = (self.end - self.start).min(want);
                grow(p, n)?;
                p.msg
                    .extend_from_slice(&self.buf[self.start..self.start + n]);
                self.start += n;
                continue;
            }
            grow(p, 1)?;
            // The buffer is empty: read the payload straight into the
            // message, and a little of what follows into the buffer.
            self.start = 0;
            self.end = 0;
            if self.buf.len() < self.read_ahead {
                self.buf.resize(self.read_ahead, 0);
            }
            let ahead = self.buf.len().min(TAIL_READ_AHEAD);
            let want = want.min(p.msg.capacity() - p.msg.len());
            let before = p.msg.len();
            match src.fill_split(&mut p.msg, want, &mut self.buf[..ahead])? {
                Fill::Data(n) => self.end = n - (p.msg.len() - before),
                Fill::Eof => {
                    let (expected, got) = (p.total, p.msg.len() as u64);
                    self.reset();
                    return Err(Error::Truncated { expected, got });
                }
                Fill::TimedOut => return Ok(None),
            }
        }
        Ok(Some(()))
    }

    /// Receives the next message; with `limit`, refuses (and skips) a
    /// longer one.
    pub fn recv(&mut self, src: &mut impl Source, limit: Option<usize>) -> Step<Vec<u8>> {
        if self.finish_skip(src)?.is_none() {
            return Ok(None);
        }
        if let Some(p) = &self.pending {
            let total = p.total;
            if let Some(limit) = limit.filter(|&l| total > l as u64) {
                let skip = total - p.msg.len() as u64;
                self.pending = None;
                self.skip = Some(Skip { total, left: skip });
                return Err(Error::MessageTooLong { len: total, limit });
            }
            return self.take_pending(src);
        }
        let Some((header_len, len)) = self.header(src)? else {
            return Ok(None);
        };
        if let Some(limit) = limit.filter(|&l| len > l as u64) {
            // Drop what is already here; the rest goes as it arrives.
            self.start += header_len;
            let n = (self.end - self.start).min(usize::try_from(len).unwrap_or(usize::MAX));
            self.start += n;
            let left = len - n as u64;
            self.skip = (left > 0).then_some(Skip { total: len, left });
            return Err(Error::MessageTooLong { len, limit });
        }
        let buffered = (self.end - self.start - header_len) as u64;
        // Does the whole frame fit in the read-ahead buffer? Subtracting
        // from the room, as adding to a length the peer chose can overflow.
        let room = self.buf.len().max(self.read_ahead) as u64;
        if len <= buffered || len <= room.saturating_sub(header_len as u64) {
            let len = len as usize;
            if self.whole_frame(src, header_len, len)?.is_none() {
                return Ok(None);
            }
            let at = self.start + header_len;
            self.start = at + len;
            return Ok(Some(self.buf[at..at + len].to_vec()));
        }
        self.start += header_len;
        let first = len.min(self.first_allocation) as usize;
        self.pending = Some(Pending {
            msg: Vec::with_capacity(first),
            total: len,
        });
        self.take_pending(src)
    }

    fn take_pending(&mut self, src: &mut impl Source) -> Step<Vec<u8>> {
        if self.finish_pending(src)?.is_none() {
            return Ok(None);
        }
        Ok(self.pending.take().map(|p| p.msg))
    }

    /// Receives the next message into `out`, returning its length; a message
    /// longer than `out` stays unread.
    pub fn recv_into(&mut self, src: &mut impl Source, out: &mut [u8]) -> Step<usize> {
        if self.finish_skip(src)?.is_none() {
            return Ok(None);
        }
        if let Some(p) = &self.pending {
            if p.total > out.len() as u64 {
                return Err(too_short(p.total));
            }
            let Some(msg) = self.take_pending(src)? else {
                return Ok(None);
            };
            out[..msg.len()].copy_from_slice(&msg);
            return Ok(Some(msg.len()));
        }
        let Some((header_len, len)) = self.header(src)? else {
            return Ok(None);
        };
        if len > out.len() as u64 {
            return Err(too_short(len));
        }
        let len = len as usize;
        if header_len + len <= self.buf.len().max(self.read_ahead) {
            if self.whole_frame(src, header_len, len)?.is_none() {
                return Ok(None);
            }
            let at = self.start + header_len;
            out[..len].copy_from_slice(&self.buf[at..at + len]);
            self.start = at + len;
            return Ok(Some(len));
        }
        // A large message goes straight into the caller's buffer.
        self.start += header_len;
        let mut got = (self.end - self.start).min(len);
        out[..got].copy_from_slice(&self.buf[self.start..self.start + got]);
        self.start += got;
        while got < len {
            let fill = match src.fill(&mut out[got..len]) {
                Ok(Fill::Data(n)) => {
                    got += n;
                    continue;
                }
                other => other,
            };
            if let Ok(Fill::Eof) = fill {
                self.reset();
                return Err(Error::Truncated {
                    expected: len as u64,
                    got: got as u64,
                });
            }
            // The caller may not hand this buffer back: keep what arrived.
            let mut msg = Vec::with_capacity(len);
            msg.extend_from_slice(&out[..got]);
            self.pending = Some(Pending {
                msg,
                total: len as u64,
            });
            return fill.map(|_| None);
        }
        Ok(Some(len))
    }

    /// Waits (as long as the source lets it) until some of the next message
    /// has arrived, or the peer closed; true then.
    pub fn poll(&mut self, src: &mut impl Source) -> Step<bool> {
        loop {
            if self.finish_skip(src)?.is_none() {
                return Ok(Some(false));
            }
            if self.buffered() > 0 {
                return Ok(Some(true));
            }
            match self.fill_buf(src)? {
                Fill::Data(_) => {}
                Fill::Eof => return Ok(Some(true)),
                Fill::TimedOut => return Ok(Some(false)),
            }
        }
    }
}

/// Makes room for `n` more bytes in a pending message, doubling its
/// capacity (up to the announced length).
fn grow(p: &mut Pending, n: usize) -> Result<(), Error> {
    let (len, cap) = (p.msg.len(), p.msg.capacity());
    if len + n <= cap {
        return Ok(());
    }
    let total = usize::try_from(p.total).unwrap_or(usize::MAX);
    let new_cap = (len + n).max(cap.saturating_mul(2)).min(total);
    p.msg.try_reserve_exact(new_cap - len).map_err(|e| {
        Error::Io(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot buffer a message of {} bytes: {e}", p.total),
        ))
    })
}

fn too_short(needed: u64) -> Error {
    Error::BufferTooShort {
        needed: usize::try_from(needed).unwrap_or(usize::MAX),
    }
}

/// The error for a clean close at a frame boundary.
pub fn eof() -> Error {
    Error::Eof
}

/// A source that hands out chunks as given; `None` is a deadline that
/// passes; after the last chunk, end of file. For the unit tests and the
/// fuzz target, which tear streams without processes.

#[derive(Debug)]
pub struct Chunks(std::collections::VecDeque<Option<Vec<u8>>>);

impl Chunks {
    /// A source that hands out `chunks` in order; `None` is a deadline
    /// that passes.
    pub fn new(chunks: impl IntoIterator<Item = Option<Vec<u8>>>) -> Chunks {
        Chunks(chunks.into_iter().collect())
    }

    /// `stream` cut at every position in `cuts`, with a timeout at each cut.
    #[cfg(test)]
    pub fn cut(stream: &[u8], cuts: &[usize]) -> Chunks {
        let mut chunks = std::collections::VecDeque::new();
        let mut at = 0;
        for &cut in cuts {
            chunks.push_back(Some(stream[at..cut].to_vec()));
            chunks.push_back(None);
            at = cut;
        }
        chunks.push_back(Some(stream[at..].to_vec()));
        Chunks(chunks)
    }
}

impl Source for Chunks {
    fn fill(&mut self, buf: &mut [u8]) -> Result<Fill, Error> {
        loop {
            match self.0.pop_front() {
                None => return Ok(Fill::Eof),
                Some(None) => return Ok(Fill::TimedOut),
                Some(Some(chunk)) if chunk.is_empty() => {}
                Some(Some(mut chunk)) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.0.push_front(Some(chunk.split_off(n)));
                    }
                    return Ok(Fill::Data(n));
                }
            }
        }
    }

    fn fill_split(
        &mut self,
        msg: &mut Vec<u8>,
        want: usize,
        ahead: &mut [u8],
    ) -> Result<Fill, Error> {
        assert!(want > 0 && want <= msg.capacity() - msg.len());
        // Straight into the message, as `readv` does: a temporary of `want`
        // bytes would be as large as a lying header's first allocation.
        let n = loop {
            match self.0.pop_front() {
                None => return Ok(Fill::Eof),
                Some(None) => return Ok(Fill::TimedOut),
                Some(Some(chunk)) if chunk.is_empty() => {}
                Some(Some(mut chunk)) => {
                    let n = chunk.len().min(want);
                    msg.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.0.push_front(Some(chunk.split_off(n)));
                    }
                    break n;
                }
            }
        };
        if n < want || ahead.is_empty() {
            return Ok(Fill::Data(n));
        }
        // Only what is already there goes ahead: stop at a timeout.
        match self.0.front() {
            Some(Some(_)) => match self.fill(ahead)? {
                Fill::Data(m) => Ok(Fill::Data(n + m)),
                _ => Ok(Fill::Data(n)),
            },
            _ => Ok(Fill::Data(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Header::new(payload.len() as u64).as_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Small reader sizes so that the direct-read path is taken by frames of
    /// a few dozen bytes.
    fn small_reader() -> Reader {
        Reader::with_sizes(16, 8)
    }

    /// Receives everything until end of file, retrying after timeouts.
    fn drain(reader: &mut Reader, src: &mut Chunks) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        loop {
            match reader.recv(src, None) {
                Ok(Some(msg)) => got.push(msg),
                Ok(None) => {}
                Err(e) if e.is_eof() => return got,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }

    fn drain_into(reader: &mut Reader, src: &mut Chunks) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match reader.recv_into(src, &mut buf) {
                Ok(Some(n)) => got.push(buf[..n].to_vec()),
                Ok(None) => {}
                Err(e) if e.is_eof() => return got,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }

    fn messages() -> Vec<Vec<u8>> {
        vec![
            vec![],
            b"x".to_vec(),
            payload(5, 1),
            payload(12, 2),
            payload(13, 3),
            payload(40, 4),
            vec![],
            payload(3, 5),
        ]
    }

    #[test]
    fn short_header_is_four_big_endian_bytes() {
        assert_eq!(Header::new(0).as_bytes(), [0, 0, 0, 0]);
        assert_eq!(Header::new(5).as_bytes(), [0, 0, 0, 5]);
        assert_eq!(Header::new(0x0102_0304).as_bytes(), [1, 2, 3, 4]);
        assert_eq!(
            Header::new(0x7fff_ffff).as_bytes(),
            [0x7f, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn header_over_two_gib_is_minus_one_then_eight_bytes() {
        assert_eq!(
            Header::new(0x8000_0000).as_bytes(),
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
        );
        assert_eq!(
            Header::new(3 << 30).as_bytes(),
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xc0, 0, 0, 0]
        );
        assert_eq!(
            Header::new(0x0123_4567_89ab_cdef).as_bytes(),
            [
                0xff, 0xff, 0xff, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef
            ]
        );
    }

    #[test]
    fn parse_header_reads_what_new_writes() {
        for len in [0, 1, 300, 0x7fff_ffff, 0x8000_0000, 5 << 32, u64::MAX] {
            let header = Header::new(len);
            let bytes = header.as_bytes();
            let expected = Parsed::Frame {
                header_len: bytes.len(),
                payload_len: len,
            };
            assert_eq!(parse_header(bytes).unwrap(), expected);
            for cut in 0..bytes.len() {
                let header_len = if cut < 4 { 4 } else { 12 };
                assert_eq!(
                    parse_header(&bytes[..cut]).unwrap(),
                    Parsed::Incomplete { header_len },
                    "len {len} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn negative_length_other_than_minus_one_is_invalid_data() {
        let err = parse_header(&(-2i32).to_be_bytes()).unwrap_err();
        let Error::Io(e) = err else { panic!("{err:?}") };
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn long_header_decodes_through_the_reader() {
        // A -1 header announcing a short payload is legal (Python reads it).
        let mut stream = (-1i32).to_be_bytes().to_vec();
        stream.extend_from_slice(&3u64.to_be_bytes());
        stream.extend_from_slice(b"abc");
        let mut src = Chunks::new([Some(stream)]);
        assert_eq!(drain(&mut Reader::new(), &mut src), [b"abc".to_vec()]);
    }

    /// Found by `fuzz/fuzz_targets/frame.rs`: a long header announcing
    /// `u64::MAX` bytes overflowed the "does it fit" sum and panicked.
    #[test]
    fn long_header_announcing_u64_max_is_truncated_not_a_panic() {
        let mut stream = Header::new(u64::MAX).as_bytes().to_vec();
        stream.extend_from_slice(b"\xff\n");
        for reader in [Reader::new(), Reader::with_sizes(38, 116)] {
            let mut reader = reader;
            let mut src = Chunks::new([Some(stream.clone())]);
            let err = reader.recv(&mut src, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        expected: u64::MAX,
                        got: 2
                    }
                ),
                "{err:?}"
            );
            let mut src = Chunks::new([Some(stream.clone())]);
            let err = reader.recv(&mut src, Some(10)).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::MessageTooLong {
                        len: u64::MAX,
                        limit: 10
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn torn_stream_at_every_split_point_loses_nothing() {
        let msgs = messages();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| frame(m)).collect();
        for cut in 0..=stream.len() {
            for reader in [Reader::new(), small_reader()] {
                let mut reader = reader;
                let mut src = Chunks::cut(&stream, &[cut]);
                assert_eq!(drain(&mut reader, &mut src), msgs, "cut at {cut}");
            }
            let mut src = Chunks::cut(&stream, &[cut]);
            assert_eq!(
                drain_into(&mut small_reader(), &mut src),
                msgs,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn stream_one_byte_at_a_time_with_timeouts_between() {
        let msgs = messages();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| frame(m)).collect();
        let cuts: Vec<usize> = (1..stream.len()).collect();
        for reader in [Reader::new(), small_reader()] {
            let mut reader = reader;
            assert_eq!(drain(&mut reader, &mut Chunks::cut(&stream, &cuts)), msgs);
        }
        let mut src = Chunks::cut(&stream, &cuts);
        assert_eq!(drain_into(&mut small_reader(), &mut src), msgs);
    }

    #[test]
    fn timeout_keeps_the_partial_message_for_the_next_call() {
        let msg = payload(40, 9);
        let stream = frame(&msg);
        for reader in [Reader::new(), small_reader()] {
            let mut reader = reader;
            let mut src = Chunks::cut(&stream, &[10]);
            assert_eq!(reader.recv(&mut src, None).unwrap(), None);
            assert_eq!(reader.partial(), &msg[..6]);
            assert!(reader.buffered() >= 6);
            assert_eq!(reader.recv(&mut src, None).unwrap(), Some(msg.clone()));
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn close_inside_a_frame_is_truncated_at_every_split_point() {
        let msg = payload(40, 7);
        let stream = frame(&msg);
        for cut in 0..stream.len() {
            for reader in [Reader::new(), small_reader()] {
                let mut reader = reader;
                let mut src = Chunks::new([Some(stream[..cut].to_vec())]);
                let err = reader.recv(&mut src, None).unwrap_err();
                match (cut, err) {
                    (0, e) => assert!(e.is_eof(), "{e:?}"),
                    (1..=3, Error::Truncated { expected, got }) => {
                        assert_eq!((expected, got), (4, cut as u64))
                    }
                    (_, Error::Truncated { expected, got }) => {
                        assert_eq!((expected, got), (40, cut as u64 - 4))
                    }
                    (_, e) => panic!("cut at {cut}: {e:?}"),
                }
                // After the error, the stream is at its end.
                assert!(reader.recv(&mut src, None).unwrap_err().is_eof());
            }
            let mut buf = [0u8; 64];
            let mut src = Chunks::new([Some(stream[..cut].to_vec())]);
            let err = small_reader().recv_into(&mut src, &mut buf).unwrap_err();
            assert!(
                matches!(err, Error::Truncated { .. }) || (cut == 0 && err.is_eof()),
                "cut at {cut}: {err:?}"
            );
        }
    }

    #[test]
    fn cut_long_header_reports_twelve_bytes_expected() {
        let stream = Header::new(1 << 33).as_bytes().to_vec();
        let mut src = Chunks::new([Some(stream[..7].to_vec())]);
        let err = Reader::new().recv(&mut src, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 12,
                    got: 7
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn message_too_long_skips_the_payload_at_every_split_point() {
        let big = payload(40, 3);
        let next = payload(5, 4);
        let stream = [frame(&big), frame(&next)].concat();
        for cut in 0..=stream.len() {
            for reader in [Reader::new(), small_reader()] {
                let mut reader = reader;
                let mut src = Chunks::cut(&stream, &[cut]);
                let err = loop {
                    match reader.recv(&mut src, Some(39)) {
                        Ok(None) => {}
                        Ok(Some(m)) => panic!("cut at {cut}: got {m:?}"),
                        Err(e) => break e,
                    }
                };
                assert!(
                    matches!(err, Error::MessageTooLong { len: 40, limit: 39 }),
                    "cut at {cut}: {err:?}"
                );
                assert_eq!(
                    drain(&mut reader, &mut src),
                    std::slice::from_ref(&next),
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn message_too_long_while_partly_received() {
        let big = payload(40, 3);
        let stream = [frame(&big), frame(b"after")].concat();
        let mut reader = small_reader();
        let mut src = Chunks::cut(&stream, &[20]);
        assert_eq!(reader.recv(&mut src, None).unwrap(), None);
        let err = reader.recv(&mut src, Some(10)).unwrap_err();
        assert!(matches!(err, Error::MessageTooLong { len: 40, limit: 10 }));
        assert_eq!(drain(&mut reader, &mut src), [b"after".to_vec()]);
    }

    #[test]
    fn close_inside_a_skipped_payload_is_truncated() {
        let stream = frame(&payload(40, 3));
        let mut reader = small_reader();
        let mut src = Chunks::new([Some(stream[..30].to_vec())]);
        assert!(matches!(
            reader.recv(&mut src, Some(1)),
            Err(Error::MessageTooLong { len: 40, .. })
        ));
        let err = reader.recv(&mut src, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 40,
                    got: 26
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn buffer_too_short_leaves_the_message_readable() {
        for len in [10, 40] {
            let msg = payload(len, 6);
            let stream = [frame(&msg), frame(b"z")].concat();
            for cut in 0..=stream.len() {
                let mut reader = small_reader();
                let mut src = Chunks::cut(&stream, &[cut]);
                let mut short = vec![0u8; len - 1];
                let err = loop {
                    match reader.recv_into(&mut src, &mut short) {
                        Ok(None) => {}
                        Ok(Some(n)) => panic!("read {n} bytes into a short buffer"),
                        Err(e) => break e,
                    }
                };
                assert!(matches!(err, Error::BufferTooShort { needed } if needed == len));
                let mut buf = vec![0u8; len];
                let n = loop {
                    if let Some(n) = reader.recv_into(&mut src, &mut buf).unwrap() {
                        break n;
                    }
                };
                assert_eq!(&buf[..n], &msg[..], "cut at {cut}");
                assert_eq!(drain(&mut reader, &mut src), [b"z".to_vec()]);
            }
        }
    }

    #[test]
    fn buffer_too_short_for_a_partly_received_message() {
        let msg = payload(40, 6);
        let stream = frame(&msg);
        let mut reader = small_reader();
        let mut src = Chunks::cut(&stream, &[20]);
        assert_eq!(reader.recv(&mut src, None).unwrap(), None);
        let mut short = [0u8; 39];
        assert!(matches!(
            reader.recv_into(&mut src, &mut short),
            Err(Error::BufferTooShort { needed: 40 })
        ));
        let mut buf = [0u8; 64];
        assert_eq!(reader.recv_into(&mut src, &mut buf).unwrap(), Some(40));
        assert_eq!(&buf[..40], &msg[..]);
    }

    #[test]
    fn recv_into_timeout_moves_the_partial_message_into_the_reader() {
        let msg = payload(40, 8);
        let stream = [frame(&msg), frame(b"next")].concat();
        let mut reader = small_reader();
        let mut src = Chunks::cut(&stream, &[25]);
        let mut buf = [0u8; 64];
        assert_eq!(reader.recv_into(&mut src, &mut buf).unwrap(), None);
        assert_eq!(reader.partial(), &msg[..21]);
        assert_eq!(reader.recv(&mut src, None).unwrap(), Some(msg));
        assert_eq!(drain(&mut reader, &mut src), [b"next".to_vec()]);
    }

    #[test]
    fn large_message_grows_its_storage_as_bytes_arrive() {
        // first_allocation 8: the 1000-byte message needs several doublings.
        let msg = payload(1000, 2);
        let stream = frame(&msg);
        let cuts: Vec<usize> = (7..stream.len()).step_by(7).collect();
        let mut reader = small_reader();
        assert_eq!(drain(&mut reader, &mut Chunks::cut(&stream, &cuts)), [msg]);
    }

    #[test]
    fn poll_reports_data_end_and_timeouts() {
        let mut reader = Reader::new();
        let mut src = Chunks::new([None, Some(frame(b"hi")), None]);
        assert_eq!(reader.poll(&mut src).unwrap(), Some(false));
        assert_eq!(reader.poll(&mut src).unwrap(), Some(true));
        assert_eq!(reader.recv(&mut src, None).unwrap(), Some(b"hi".to_vec()));
        assert_eq!(reader.poll(&mut src).unwrap(), Some(false));
        // End of file: poll says so, the receive reports it.
        assert_eq!(reader.poll(&mut src).unwrap(), Some(true));
        assert!(reader.recv(&mut src, None).unwrap_err().is_eof());
    }

    #[test]
    fn poll_does_not_count_a_skipped_payload() {
        let stream = frame(&payload(40, 1));
        let mut reader = small_reader();
        let mut src = Chunks::cut(&stream, &[10]);
        assert!(reader.recv(&mut src, Some(1)).is_err());
        // The rest of the refused payload arrives: nothing to receive yet.
        assert_eq!(reader.poll(&mut src).unwrap(), Some(false));
        assert_eq!(reader.poll(&mut src).unwrap(), Some(true));
        assert!(reader.recv(&mut src, None).unwrap_err().is_eof());
    }
}
