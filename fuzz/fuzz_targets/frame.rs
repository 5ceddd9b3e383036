//! The message channel's frame decoder against a reference decoder.
//!
//! A stream (arbitrary bytes, or frames the encoder wrote) is cut at
//! arbitrary points with a timeout at each cut, and read by an arbitrary
//! sequence of `recv`, `recv_bytes_max`, `recv_bytes_into` and `poll`.
//! Every answer must be the one a simple whole-stream decoder predicts,
//! timeouts must lose nothing, and the decoder's memory must stay bounded
//! by what arrived (plus its fixed first allocation for a large frame), however
//! long a header says the payload is.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use duet_core::frame::{Chunks, Error, Header, Reader};

/// The frame header announcing `payload_len` bytes, as sent.
fn frame_header(payload_len: u64) -> Vec<u8> {
    Header::new(payload_len).as_bytes().to_vec()
}

/// The decoder reading from a list of chunks: `None` is a timeout, the end
/// of the list is end of file.
struct FrameReader {
    reader: Reader,
    src: Chunks,
}

impl FrameReader {
    /// A decoder with the real sizes, or with `(read_ahead,
    /// first_allocation)` so that small frames take the large-frame paths.
    fn new(chunks: Vec<Option<Vec<u8>>>, sizes: Option<(usize, u64)>) -> FrameReader {
        let reader = match sizes {
            Some((read_ahead, first)) => Reader::with_sizes(read_ahead, first),
            None => Reader::new(),
        };
        FrameReader {
            reader,
            src: Chunks::new(chunks),
        }
    }
    fn recv(&mut self, limit: Option<usize>) -> Result<Option<Vec<u8>>, Error> {
        self.reader.recv(&mut self.src, limit)
    }
    fn recv_into(&mut self, out: &mut [u8]) -> Result<Option<usize>, Error> {
        self.reader.recv_into(&mut self.src, out)
    }
    fn poll(&mut self) -> Result<Option<bool>, Error> {
        self.reader.poll(&mut self.src)
    }
}
use libfuzzer_sys::{arbitrary, fuzz_target};

/// Counts live heap bytes and their peak, to check memory against input.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are
// updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The decoder's sizes in `duet::channel`.
const READ_AHEAD: usize = 64 * 1024;
const FIRST_ALLOCATION: usize = 64 * 1024 * 1024;

#[derive(Debug, arbitrary::Arbitrary)]
enum Body {
    /// Any bytes at all: lying headers, negative lengths, torn frames.
    Raw(Vec<u8>),
    /// Messages as the encoder frames them.
    Messages(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
enum Op {
    Recv,
    RecvMax(u8),
    RecvInto(u8),
    Poll,
}

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    body: Body,
    /// `(read_ahead, first_allocation)`, small so that a few bytes take the
    /// large-frame paths; `None` for the real sizes.
    sizes: Option<(u8, u8)>,
    /// Where the stream is cut (a timeout at each cut).
    cuts: Vec<u16>,
    ops: Vec<Op>,
}

/// What the whole stream holds, frame by frame.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Msg(Vec<u8>),
    /// A header, then fewer payload bytes than it announced, then the end.
    Partial {
        len: u64,
        got: u64,
    },
    /// Part of a header, then the end.
    ShortHeader {
        expected: u64,
        got: u64,
    },
    /// The end, at a frame boundary.
    End,
    /// A negative length other than -1.
    Invalid,
}

fn reference(stream: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut rest = stream;
    loop {
        let rem = rest.len() as u64;
        let Some(short) = rest.first_chunk::<4>() else {
            items.push(if rest.is_empty() {
                Item::End
            } else {
                Item::ShortHeader {
                    expected: 4,
                    got: rem,
                }
            });
            return items;
        };
        let (header_len, len) = match i32::from_be_bytes(*short) {
            n if n >= 0 => (4, n as u64),
            -1 => match rest[4..].first_chunk::<8>() {
                Some(long) => (12, u64::from_be_bytes(*long)),
                None => {
                    items.push(Item::ShortHeader {
                        expected: 12,
                        got: rem,
                    });
                    return items;
                }
            },
            _ => {
                items.push(Item::Invalid);
                return items;
            }
        };
        let body = &rest[header_len..];
        if (body.len() as u64) < len {
            items.push(Item::Partial {
                len,
                got: body.len() as u64,
            });
            return items;
        }
        items.push(Item::Msg(body[..len as usize].to_vec()));
        rest = &body[len as usize..];
    }
}

/// The stream cut at `cuts`, with a timeout at each cut.
fn chunks(stream: &[u8], cuts: &[u16]) -> Vec<Option<Vec<u8>>> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts {
        out.push(Some(stream[at..cut].to_vec()));
        out.push(None);
        at = cut;
    }
    out.push(Some(stream[at..].to_vec()));
    out
}

/// What the decoder answered, in a form to compare.
#[derive(Debug, PartialEq)]
enum Answer {
    Msg(Vec<u8>),
    Polled,
    TooLong { len: u64, limit: usize },
    TooShort { needed: usize },
    Truncated { expected: u64, got: u64 },
    Eof,
    Invalid,
}

/// The decoder's answer; `None` for a timeout.
fn answer<T>(result: Result<T, Error>, ok: impl FnOnce(T) -> Option<Answer>) -> Option<Answer> {
    Some(match result {
        Ok(v) => return ok(v),
        Err(Error::MessageTooLong { len, limit }) => Answer::TooLong { len, limit },
        Err(Error::BufferTooShort { needed }) => Answer::TooShort { needed },
        Err(Error::Truncated { expected, got }) => Answer::Truncated { expected, got },
        Err(e) if e.is_eof() => Answer::Eof,
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::InvalidData => Answer::Invalid,
        Err(e) => panic!("unexpected error {e:?}"),
    })
}

/// The reference decoder's state: the next item, or the rest of a refused
/// payload the stream ends inside.
struct Model {
    items: Vec<Item>,
    next: usize,
    skipped_partial: Option<(u64, u64)>,
}

impl Model {
    fn expect(&mut self, op: Op) -> Answer {
        if let Some((len, got)) = self.skipped_partial.take() {
            self.next = self.items.len() - 1;
            self.items[self.next] = Item::End;
            return Answer::Truncated { expected: len, got };
        }
        let item = self.items[self.next].clone();
        let (answer, advance) = match (op, item) {
            (Op::Poll, _) => (Answer::Polled, false),
            (_, Item::Invalid) => (Answer::Invalid, false),
            (_, Item::End) => (Answer::Eof, false),
            (_, Item::ShortHeader { expected, got }) => (Answer::Truncated { expected, got }, true),
            (Op::Recv, Item::Msg(m)) => (Answer::Msg(m), true),
            (Op::RecvMax(limit), Item::Msg(m)) => {
                let limit = usize::from(limit);
                if m.len() > limit {
                    let len = m.len() as u64;
                    (Answer::TooLong { len, limit }, true)
                } else {
                    (Answer::Msg(m), true)
                }
            }
            (Op::RecvInto(size), Item::Msg(m)) => {
                if m.len() > usize::from(size) {
                    (Answer::TooShort { needed: m.len() }, false)
                } else {
                    (Answer::Msg(m), true)
                }
            }
            (Op::Recv, Item::Partial { len, got }) => {
                (Answer::Truncated { expected: len, got }, true)
            }
            (Op::RecvMax(limit), Item::Partial { len, got }) => {
                let limit = usize::from(limit);
                if len > limit as u64 {
                    self.skipped_partial = Some((len, got));
                    (Answer::TooLong { len, limit }, false)
                } else {
                    (Answer::Truncated { expected: len, got }, true)
                }
            }
            (Op::RecvInto(size), Item::Partial { len, got }) => {
                if len > u64::from(size) {
                    (
                        Answer::TooShort {
                            needed: len as usize,
                        },
                        false,
                    )
                } else {
                    (Answer::Truncated { expected: len, got }, true)
                }
            }
        };
        if advance {
            // After a truncated frame the reader is at the end of the stream.
            if matches!(answer, Answer::Truncated { .. }) {
                self.next = self.items.len() - 1;
                self.items[self.next] = Item::End;
            } else {
                self.next += 1;
            }
        }
        answer
    }
}

/// Runs `op` on the reader, retrying after timeouts (there are as many as
/// cuts, so the loop ends); what arrived before a timeout stays for the
/// next try.
fn run(reader: &mut FrameReader, op: Op, tries: usize) -> Answer {
    for _ in 0..tries {
        let got = match op {
            Op::Recv => answer(reader.recv(None), |m| m.map(Answer::Msg)),
            Op::RecvMax(limit) => answer(reader.recv(Some(usize::from(limit))), |m| {
                m.map(Answer::Msg)
            }),
            Op::RecvInto(size) => {
                let mut out = vec![0xa5; usize::from(size)];
                answer(reader.recv_into(&mut out), |n| {
                    n.map(|n| Answer::Msg(out[..n].to_vec()))
                })
            }
            Op::Poll => answer(reader.poll(), |ready| {
                ready.and_then(|r| r.then_some(Answer::Polled))
            }),
        };
        if let Some(got) = got {
            return got;
        }
    }
    panic!("{op:?} still waiting after {tries} timeouts");
}

fuzz_target!(|input: Input| {
    let stream = match &input.body {
        Body::Raw(bytes) => bytes.clone(),
        Body::Messages(msgs) => msgs
            .iter()
            .flat_map(|m| [frame_header(m.len() as u64), m.clone()].concat())
            .collect(),
    };
    let items = reference(&stream);
    if let Body::Messages(msgs) = &input.body {
        let decoded: Vec<&Vec<u8>> = items
            .iter()
            .filter_map(|i| if let Item::Msg(m) = i { Some(m) } else { None })
            .collect();
        assert_eq!(
            decoded,
            msgs.iter().collect::<Vec<_>>(),
            "the reference decoder"
        );
    }
    let sizes = input
        .sizes
        .map(|(ahead, first)| (usize::from(ahead).max(1), u64::from(first)));
    let chunks = chunks(&stream, &input.cuts);
    let tries = chunks.len() + 2;

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut reader = FrameReader::new(chunks, sizes);
    let mut model = Model {
        items,
        next: 0,
        skipped_partial: None,
    };
    // The ops asked for, then plain receives to the end of the stream.
    let tail = std::iter::repeat_n(Op::Recv, model.items.len() + 2);
    for op in input.ops.iter().copied().chain(tail) {
        let expected = model.expect(op);
        let got = run(&mut reader, op, tries);
        assert_eq!(got, expected, "{op:?}");
    }
    // Memory: what arrived (copied a few times: chunks, buffer, messages),
    // the read-ahead buffer, and at most the first allocation of a large
    // frame up front.
    let (ahead, first) = match sizes {
        Some((ahead, first)) => (ahead, first as usize),
        None => (READ_AHEAD, FIRST_ALLOCATION),
    };
    let used = PEAK.load(Ordering::Relaxed) - base;
    let bound = 8 * stream.len() + 4 * ahead + first + 64 * 1024;
    assert!(
        used <= bound,
        "{used} bytes used for a {}-byte stream",
        stream.len()
    );
});
