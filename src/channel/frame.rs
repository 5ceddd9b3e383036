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

use crate::Error;

/// Payloads up to this length use the 4-byte header.
pub(crate) const MAX_SHORT: u64 = 0x7fff_ffff;
/// The 4-byte header.
const SHORT: usize = 4;
/// The marker and the 8-byte length.
const LONG: usize = 12;
/// The capacity of the read-ahead buffer. Frames up to this size (header
/// included) are assembled in it; larger payloads are read straight into the
/// message's own allocation.
pub(crate) const READ_AHEAD: usize = 64 * 1024;
/// The first allocation for a large payload whose sender announced more:
/// memory grows with the bytes that really arrive, so a lying header cannot
/// make the receiver allocate gigabytes up front.
const FIRST_ALLOCATION: u64 = 64 * 1024 * 1024;

/// An encoded frame header: 4 bytes, or 12 for payloads over 2 GiB - 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    bytes: [u8; LONG],
    len: usize,
}

impl Header {
    /// The header announcing a payload of `payload_len` bytes.
    pub(crate) fn new(payload_len: u64) -> Header {
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
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the start of a buffer says about the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
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
pub(crate) fn parse_header(buf: &[u8]) -> Result<Parsed, Error> {
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
pub(crate) enum Fill {
    /// This many bytes were written to the start of the buffer (never 0).
    Data(usize),
    /// The peer closed its end.
    Eof,
    /// The deadline passed first.
    TimedOut,
}

/// Where a [`Reader`] gets its bytes.
pub(crate) trait Source {
    /// Reads some bytes into `buf` (never empty), waiting at most until the
    /// source's deadline.
    fn fill(&mut self, buf: &mut [u8]) -> Result<Fill, Error>;
}

/// A large message being received straight into its own allocation.
#[derive(Debug)]
struct Pending {
    /// Zero-initialised storage; `msg[..filled]` arrived.
    msg: Vec<u8>,
    filled: usize,
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
pub(crate) struct Reader {
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
pub(crate) type Step<T> = Result<Option<T>, Error>;

impl Reader {
    /// A reader with nothing buffered.
    pub(crate) fn new() -> Reader {
        Reader::with_sizes(READ_AHEAD, FIRST_ALLOCATION)
    }

    fn with_sizes(read_ahead: usize, first_allocation: u64) -> Reader {
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
    pub(crate) fn buffered(&self) -> usize {
        (self.end - self.start) + self.pending.as_ref().map_or(0, |p| p.filled)
    }

    /// What arrived of the next message, for a timeout's `partial`.
    pub(crate) fn partial(&self) -> &[u8] {
        if let Some(p) = &self.pending {
            return &p.msg[..p.filled];
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
    pub(crate) fn fill_buf(&mut self, src: &mut impl Source) -> Result<Fill, Error> {
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
        while (p.filled as u64) < p.total {
            let want = usize::try_from(p.total - p.filled as u64).unwrap_or(usize::MAX);
            if self.start < self.end {
                let n = (self.end - self.start).min(want);
                grow(p, n)?;
                p.msg[p.filled..p.filled + n]
                    .copy_from_slice(&self.buf[self.start..self.start + n]);
                p.filled += n;
                self.start += n;
                continue;
            }
            if p.filled == p.msg.len() {
                grow(p, 1)?;
            }
            match src.fill(&mut p.msg[p.filled..])? {
                Fill::Data(n) => p.filled += n,
                Fill::Eof => {
                    let (expected, got) = (p.total, p.filled as u64);
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
    pub(crate) fn recv(&mut self, src: &mut impl Source, limit: Option<usize>) -> Step<Vec<u8>> {
        if self.finish_skip(src)?.is_none() {
            return Ok(None);
        }
        if let Some(p) = &self.pending {
            let total = p.total;
            if let Some(limit) = limit.filter(|&l| total > l as u64) {
                let skip = total - p.filled as u64;
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
        if len <= buffered || header_len as u64 + len <= self.buf.len().max(self.read_ahead) as u64
        {
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
            msg: vec![0; first],
            filled: 0,
            total: len,
        });
        self.take_pending(src)
    }

    fn take_pending(&mut self, src: &mut impl Source) -> Step<Vec<u8>> {
        if self.finish_pending(src)?.is_none() {
            return Ok(None);
        }
        let mut p = self.pending.take().expect("a pending message");
        p.msg.truncate(p.filled);
        Ok(Some(p.msg))
    }

    /// Receives the next message into `out`, returning its length; a message
    /// longer than `out` stays unread.
    pub(crate) fn recv_into(&mut self, src: &mut impl Source, out: &mut [u8]) -> Step<usize> {
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
            let mut msg = vec![0; len];
            msg[..got].copy_from_slice(&out[..got]);
            self.pending = Some(Pending {
                msg,
                filled: got,
                total: len as u64,
            });
            return fill.map(|_| None);
        }
        Ok(Some(len))
    }

    /// Waits (as long as the source lets it) until some of the next message
    /// has arrived, or the peer closed; true then.
    pub(crate) fn poll(&mut self, src: &mut impl Source) -> Step<bool> {
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

/// Makes room for `n` more bytes in a pending message's storage, doubling
/// it (up to the announced length) so that the zeroing stays linear.
fn grow(p: &mut Pending, n: usize) -> Result<(), Error> {
    let need = p.filled + n;
    if need <= p.msg.len() {
        return Ok(());
    }
    let total = usize::try_from(p.total).unwrap_or(usize::MAX);
    let len = need.max(p.msg.len().saturating_mul(2)).min(total);
    p.msg.try_reserve_exact(len - p.msg.len()).map_err(|e| {
        Error::Io(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot buffer a message of {} bytes: {e}", p.total),
        ))
    })?;
    p.msg.resize(len, 0);
    Ok(())
}

fn too_short(needed: u64) -> Error {
    Error::BufferTooShort {
        needed: usize::try_from(needed).unwrap_or(usize::MAX),
    }
}

/// The error for a clean close at a frame boundary.
pub(crate) fn eof() -> Error {
    Error::Eof {
        partial: String::new(),
        status: None,
        stderr: String::new(),
    }
}
