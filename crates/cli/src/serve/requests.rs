//! The requests: serve's state machine, without I/O.
//!
//! It decides which request PROG answers, where its reply ends (the
//! request's framing, else serve's: `--lines`, `--until`, `--quiet`,
//! `--prompt`), when it times out and what becomes of its late reply, what
//! happens to the requests waiting for their turn, to raw input from
//! `DIR/in` and to output no request claims (for `DIR/out`), and when
//! PROG's greeting ends.
//!
//! [`Requests`] holds no descriptor, reads no clock and starts no process,
//! in the manner of quinn-proto: the driver (`lifecycle.rs`) feeds it
//! what arrived, with the time as an argument (`handle_*`), lets it choose
//! PROG's next input ([`Requests::next_input`]), and drains its decisions:
//! [`Requests::take_input`] (for PROG's stdin), [`Requests::poll_reply`]
//! (for the clients' reply FIFOs), [`Requests::out_backlog`] (for
//! `DIR/out`), [`Requests::poll_event`] (for the log, the pid file and the
//! supervisor) and [`Requests::poll_timeout`] (when to wake it up).
//!
//! # Phases
//!
//! ```text
//!  PROG starts ──► Greeting ──(prompt, settle, or the greeting's timeout)──► Idle
//!  Idle ──(raw input from DIR/in or duet send, with --prompt)──► Busy
//!  Busy ──(PROG's prompt, or PROG quiet for serve's --timeout)──► Idle
//!  Idle ──(the next queued request)──► Answering ──(reply framed)──► Idle: to its client
//!  Answering ──(the client's deadline)──► Late: the client gets the timeout
//!  Late ──(PROG quiet for the settle time, or its prompt)──► Idle: what came is dropped
//!  Late ──(PROG still writing after the request's timeout)──► Late, and Event::NotAnswering
//!  Late ──(PROG's output ends)──► Idle
//!  Answering ──(PROG's output ends, PROG ends)──► Idle: the client gets what arrived
//! ```
//!
//! # Never wedged
//!
//! A request that gets no reply under its framing (bc's `x=6` under
//! `--lines 1`, a python `def` line under `--prompt '^>>> '`) costs its own
//! ask a timeout and no other: serve then drops PROG's output until PROG
//! has been quiet for the settle time (`--settle`, 200ms when it is zero)
//! or shows its prompt (with a prompt framing), and goes on with the next
//! request. A late reply that comes within that quiet is dropped with the
//! rest; one that comes later than the request's timeout plus the settle
//! time would reach the next request, so raise `--settle` for a PROG that
//! may think that long.
//!
//! PROG counts as not answering ([`Event::NotAnswering`]) when a request
//! times out right after another one did, with no reply completed between
//! them, or when it has not stopped writing the request's timeout after
//! its ask timed out; the next completed reply (or prompt) is
//! [`Event::AnswersAgain`].
//!
//! Requests wait in a queue in arrival order, each under its own deadline
//! (its timeout from when serve received it); one whose deadline passes
//! there is answered with a timeout that says what PROG was busy with.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use duet::ExitStatus;
use duet_script::duration;

use super::protocol::{self, BAD_REQUEST, ENDED, Reply, Request, TIMED_OUT, TOO_LONG};
use super::timers::{Quiet, ReplyTimer, after, earliest};
use crate::exit::ended;
use crate::framing::{Collector, Framing, buffering_hint};

/// Most output kept for `DIR/out` when nobody reads it (older bytes are
/// dropped), and most raw input from `DIR/in` held while PROG is busy.
pub const OUT_BACKLOG: usize = 1 << 20;

/// The quiet that ends the dropping of a timed-out request's output when
/// serve's settle time is zero.
pub const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// The most of a greeting kept for the log, and of an over-long reply
/// given to its client.
pub const PREVIEW_KEPT: usize = 64 << 10;

/// What the machine needs to know of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// PROG's name, for messages.
    pub program: String,
    /// The framing of requests that give none (serve's own options).
    pub framing: Framing,
    /// Without `--prompt`: PROG's greeting ends when it has written nothing
    /// for this long (zero: PROG has no greeting).
    pub settle: Duration,
    /// The limit for PROG's greeting.
    pub greet_timeout: Duration,
    /// PROG is on a pty (else a timeout with nothing received names
    /// output buffering).
    pub pty: bool,
    /// The longest reply held (and greeting searched for a prompt), in
    /// bytes: the library's `max_buffer` default.
    pub max_reply: usize,
}

/// A reply to write to a client's reply FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The client's reply FIFO, a name in DIR.
    pub fifo: String,
    /// The client reuses the FIFO for more requests (and removes it
    /// itself); else the driver removes it after writing.
    pub keep_fifo: bool,
    /// The reply.
    pub reply: Reply,
}

/// Something the driver acts on besides replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// PROG's first greeting has not ended within the greeting's timeout:
    /// serve cannot become ready. The greeting stays, and each later
    /// [`Requests::handle_timeout`] says so again.
    StartTimedOut(String),
    /// PROG is not answering (the message says why): a request timed out
    /// right after another one did, or PROG has not stopped writing the
    /// request's timeout after its ask timed out.
    NotAnswering(String),
    /// PROG reported as not answering has completed a reply (or shown its
    /// prompt) since.
    AnswersAgain,
}

/// Where the machine is, for the driver's messages and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// PROG is greeting: nothing is sent to it.
    Greeting,
    /// PROG may be given its next input.
    Idle,
    /// After raw input under `--prompt`: PROG is busy until its next
    /// prompt.
    Busy,
    /// A request is being answered.
    Answering,
    /// The client of the last request was told it timed out: PROG's output
    /// is dropped until it has been quiet for the settle time or shows its
    /// prompt.
    Late,
}

/// A request waiting for its turn.
#[derive(Debug)]
struct Queued {
    request: Request,
    /// When its client gives up: its timeout from when serve received it.
    deadline: Instant,
}

/// The request being answered.
#[derive(Debug)]
struct Active {
    request: Request,
    framing: Framing,
    collector: Collector,
    /// The reply so far.
    reply: Vec<u8>,
    timer: ReplyTimer,
    /// For `--quiet`: the reply ends when nothing arrives until then.
    quiet: Option<Quiet>,
    /// Its line has been taken for PROG's stdin (else a restart puts it
    /// back in the queue: the new PROG gets it, the old one never did).
    taken: bool,
}

/// After a timed-out request: PROG's output is dropped until it has been
/// quiet for the settle time or shows its prompt.
#[derive(Debug)]
struct Drain {
    /// The request that timed out, for messages.
    line: String,
    timeout: Duration,
    quiet: Quiet,
    /// With a prompt framing: the prompt ends it at once.
    prompt: Option<Collector>,
    /// When PROG counts as not answering if it is still writing; `None`
    /// once that time has passed.
    alarm: Option<Instant>,
    /// Bytes dropped, for the log.
    dropped: usize,
    /// When the first and the last output arrived, if any did since it
    /// began.
    first: Option<Instant>,
    last: Option<Instant>,
}

/// PROG after raw input under `--prompt`.
#[derive(Debug)]
struct Busy {
    prompt: Collector,
    quiet: Quiet,
}

/// A request timed out and no reply has been completed since.
#[derive(Debug)]
struct Unanswered {
    line: String,
    /// PROG was reported as not answering.
    reported: bool,
}

/// How PROG's greeting ends.
#[derive(Debug)]
enum GreetingEnd {
    /// At the first prompt.
    Prompt(Collector),
    /// When PROG has been quiet for the settle time.
    Settle(Quiet),
}

/// PROG's greeting, which ends before the first request is sent to it.
#[derive(Debug)]
struct Greeting {
    end: GreetingEnd,
    /// What PROG wrote, for the log.
    seen: Vec<u8>,
    deadline: Instant,
}

/// serve's state machine: requests, replies, greetings, raw input and
/// output (see the module docs).
#[derive(Debug)]
pub struct Requests {
    config: Config,
    /// The first greeting has ended: serve is ready (a later greeting that
    /// times out is logged, not fatal).
    ready: bool,
    /// Set while PROG greets: no request is sent to it meanwhile.
    greeting: Option<Greeting>,
    /// With `--prompt`, after raw input (`in`, `duet send`): PROG is busy
    /// until its next prompt, which this finds, or until it has been quiet
    /// for serve's `--timeout` (raw input may get no prompt: never wedged).
    busy: Option<Busy>,
    /// Bytes for PROG's stdin.
    to_prog: Vec<u8>,
    /// Raw bytes from `in`, forwarded between requests.
    raw_in: Vec<u8>,
    /// Output for `out`.
    raw_out: VecDeque<u8>,
    /// A partial request line from `ctl`.
    ctl_buf: Vec<u8>,
    queue: VecDeque<Queued>,
    active: Option<Active>,
    /// After a timed-out request (see [`Drain`]).
    drain: Option<Drain>,
    /// A `duet send` whose lines are being written to PROG: its client
    /// learns when all went.
    sending: Option<Queued>,
    /// The last request timed out, and no reply has completed since.
    unanswered: Option<Unanswered>,
    /// PROG's current stdout has ended.
    out_eof: bool,
    /// PROG has written something since it started (else a timeout on
    /// pipes names output buffering).
    heard: bool,
    replies: VecDeque<Delivery>,
    events: VecDeque<Event>,
}

impl Requests {
    /// A machine for a service whose PROG has not started yet.
    ///
    /// # Errors
    ///
    /// The default framing's regex does not compile.
    pub fn new(config: Config) -> Result<Requests, String> {
        Collector::new(&config.framing)?;
        Ok(Requests {
            config,
            ready: false,
            greeting: None,
            busy: None,
            to_prog: Vec::new(),
            raw_in: Vec::new(),
            raw_out: VecDeque::new(),
            ctl_buf: Vec::new(),
            queue: VecDeque::new(),
            active: None,
            drain: None,
            sending: None,
            unanswered: None,
            out_eof: false,
            heard: false,
            replies: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    // ----- what arrived -----

    /// PROG was (re)started at `now`: its output is open, and its greeting
    /// begins (up to its first prompt with `--prompt`, else until it has
    /// been quiet for the settle time; none with a zero settle).
    ///
    /// # Errors
    ///
    /// The prompt's regex does not compile.
    pub fn handle_started(&mut self, now: Instant) -> Result<(), String> {
        self.out_eof = false;
        self.heard = false;
        self.busy = None;
        self.drain = None;
        // Input meant for the PROG that ended never reaches the new one.
        self.to_prog.clear();
        let end = match &self.config.framing {
            Framing::Prompt(_) => Some(GreetingEnd::Prompt(Collector::new(&self.config.framing)?)),
            _ if self.config.settle.is_zero() => None,
            _ => Some(GreetingEnd::Settle(Quiet::start(self.config.settle, now))),
        };
        self.greeting = end.map(|end| Greeting {
            end,
            seen: Vec::new(),
            deadline: after(now, self.config.greet_timeout),
        });
        if self.greeting.is_none() {
            self.ready = true;
        }
        Ok(())
    }

    /// Bytes read from `ctl` at `now`: complete request lines join the
    /// queue, each with its deadline counted from `now`; malformed ones are
    /// logged and ignored.
    pub fn handle_ctl(&mut self, bytes: &[u8], now: Instant) {
        self.ctl_buf.extend_from_slice(bytes);
        while let Some(pos) = self.ctl_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.ctl_buf.drain(..=pos).collect();
            match protocol::parse_request(&line) {
                Ok(request) => {
                    log::debug!("serve: request {} {:?}", request.id, request.line);
                    let deadline = after(now, Duration::from_millis(request.timeout_ms));
                    self.queue.push_back(Queued { request, deadline });
                }
                Err(why) => log::warn!("serve: {why}"),
            }
        }
    }

    /// Bytes read from `in`: forwarded to PROG between requests.
    pub fn handle_raw_input(&mut self, bytes: &[u8]) {
        self.raw_in.extend_from_slice(bytes);
    }

    /// PROG's output, arrived at `now`: to its greeting, the request being
    /// answered (the bytes after its reply go on to the next owner), or
    /// `out`.
    pub fn handle_output(&mut self, bytes: &[u8], now: Instant) {
        self.heard |= !bytes.is_empty();
        if let Some(g) = self.greeting.as_mut() {
            match &mut g.end {
                GreetingEnd::Settle(quiet) => {
                    quiet.touch(now);
                    // Only its end is kept, for the log.
                    g.seen.extend_from_slice(bytes);
                    let excess = g.seen.len().saturating_sub(PREVIEW_KEPT);
                    g.seen.drain(..excess);
                }
                GreetingEnd::Prompt(first) if first.held().len() > self.config.max_reply => {
                    // A flood without the prompt: what is held is dropped
                    // (the prompt is looked for in what comes next).
                    log::warn!("serve: dropped {} bytes of greeting", first.held().len());
                    if let Ok(fresh) = Collector::new(&self.config.framing) {
                        *first = fresh;
                    }
                }
                GreetingEnd::Prompt(first) => {
                    if let Some(rest) = first.feed(bytes, &mut g.seen) {
                        self.greeted();
                        // Output after the first prompt belongs to no request.
                        self.handle_output(&rest, now);
                    }
                }
            }
            return;
        }
        if let Some(drain) = self.drain.as_mut() {
            drain.quiet.touch(now);
            drain.first.get_or_insert(now);
            drain.last = Some(now);
            let mut dropped = Vec::new();
            let rest = match drain.prompt.as_mut() {
                Some(prompt) => prompt.feed(bytes, &mut dropped),
                None => {
                    drain.dropped += bytes.len();
                    None
                }
            };
            drain.dropped += dropped.len();
            if let Some(rest) = rest {
                self.drained(true);
                self.handle_output(&rest, now);
            }
            return;
        }
        let Some(active) = self.active.as_mut() else {
            if let Some(busy) = self.busy.as_mut() {
                busy.quiet.touch(now);
                if busy.prompt.feed(bytes, &mut Vec::new()).is_some() {
                    self.busy = None;
                }
            }
            self.queue_out(bytes);
            return;
        };
        if let Some(quiet) = active.quiet.as_mut() {
            quiet.touch(now);
        }
        if let Some(rest) = active.collector.feed(bytes, &mut active.reply) {
            self.complete_active();
            self.handle_output(&rest, now);
            return;
        }
        if active.reply.len() + active.collector.held().len() > self.config.max_reply {
            let Some(mut active) = self.active.take() else {
                return;
            };
            let mut partial = std::mem::take(&mut active.reply);
            active.collector.flush(&mut partial);
            partial.truncate(PREVIEW_KEPT);
            let message = format!(
                "the reply passed {} bytes without {} (the most serve holds); the rest is dropped",
                self.config.max_reply,
                active.framing.describe()
            );
            self.reply(
                &active.request,
                &active.framing,
                partial,
                Some((TOO_LONG, message)),
            );
            self.abandoned(active, now);
        }
    }

    /// PROG's output has ended. A reply still awaited ends with an error
    /// and what arrived; `status` is how PROG ended, if the driver learnt
    /// it (see [`Requests::awaits_reply`]).
    pub fn handle_output_end(&mut self, status: Option<ExitStatus>) {
        self.out_eof = true;
        // Nothing more can come to drop.
        self.drained(false);
        if self.awaits_reply() {
            let message = match status {
                Some(status) => format!(
                    "the program {} before the reply was complete",
                    ended(status)
                ),
                None => "the program closed its output before the reply was complete".to_string(),
            };
            self.end_active(&message);
        }
    }

    /// PROG's stdin refused the input of [`Requests::take_input`] (PROG is
    /// going away): the request being answered goes back to the head of
    /// the queue, to wait for a restart (or fail when there is none); a
    /// late one is forgotten.
    pub fn handle_write_failed(&mut self) {
        self.to_prog.clear();
        if let Some(sent) = self.sending.take() {
            self.busy = None;
            self.queue.push_front(sent);
        }
        if let Some(active) = self.active.take() {
            self.queue.push_front(Queued {
                request: active.request,
                deadline: active.timer.deadline(),
            });
        }
    }

    /// PROG ended and will be started again: the request being answered
    /// fails with what arrived, unless its line never reached PROG (it goes
    /// back to the head of the queue); the queued ones wait for the new
    /// PROG. Input not yet written is dropped: it was meant for the PROG
    /// that ended.
    pub fn handle_restart(&mut self) {
        self.drain = None;
        if self.sending.is_some() || self.active.as_ref().is_some_and(|a| !a.taken) {
            self.handle_write_failed();
        }
        self.to_prog.clear();
        self.end_active("the program ended before the reply was complete");
    }

    /// PROG ended for good with `status`: the request being answered and
    /// every queued one fail.
    pub fn handle_end(&mut self, status: ExitStatus) {
        self.drain = None;
        self.to_prog.clear();
        if let Some(sent) = self.sending.take() {
            self.queue.push_front(sent);
        }
        self.end_active(&format!(
            "the program {} before the reply was complete",
            ended(status)
        ));
        let framing = self.config.framing.clone();
        for queued in std::mem::take(&mut self.queue) {
            self.reply(
                &queued.request,
                &framing,
                Vec::new(),
                Some((ENDED, format!("the program {}", ended(status)))),
            );
        }
    }

    /// serve is being stopped (`duet stop`, a signal): the request being
    /// answered and every queued one fail at once, naming the stop, rather
    /// than wait for PROG's end.
    pub fn handle_stop(&mut self) {
        let message = "the service was stopped (duet stop) before the reply was complete";
        self.drain = None;
        self.to_prog.clear();
        if let Some(sent) = self.sending.take() {
            self.queue.push_front(sent);
        }
        self.end_active(message);
        let framing = self.config.framing.clone();
        for queued in std::mem::take(&mut self.queue) {
            self.reply(
                &queued.request,
                &framing,
                Vec::new(),
                Some((ENDED, "the service was stopped (duet stop)".to_string())),
            );
        }
    }

    /// Acts on the time: ends a greeting whose settle time or timeout has
    /// come, answers queued requests whose deadline passed with a timeout
    /// (also before serve is ready), ends the dropping of a timed-out
    /// request's output once PROG has been quiet, reports PROG as not
    /// answering, ends a `--quiet` reply, and times the request being
    /// answered out.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_greeting(now);
        if self.busy.as_ref().is_some_and(|b| b.quiet.is_due(now)) {
            log::warn!("serve: no prompt after the raw input, but quiet: serving the next request");
            self.busy = None;
        }
        self.expire_queued(now);
        self.expire_sending(now);
        self.check_drain(now);
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if active.quiet.is_some_and(|q| q.is_due(now)) {
            self.complete_active();
            return;
        }
        if !active.timer.is_due(now) {
            return;
        }
        let Some(mut active) = self.active.take() else {
            return;
        };
        let message = format!(
            "timed out after {} waiting for {}",
            duration::show(active.timer.timeout()),
            active.framing.describe()
        );
        let mut partial = std::mem::take(&mut active.reply);
        partial.extend_from_slice(active.collector.held());
        let message = if !self.heard && !self.config.pty && !self.out_eof {
            format!("{message}{}", buffering_hint(&self.config.program))
        } else {
            message
        };
        log::info!(
            "serve: the reply to {} {:?} timed out; PROG's output is dropped until it is quiet",
            active.request.id,
            active.request.line
        );
        self.reply(
            &active.request,
            &active.framing,
            partial,
            Some((TIMED_OUT, message)),
        );
        self.abandoned(active, now);
    }

    /// The client of `active` was given its answer (a timeout, a reply over
    /// the limit) before PROG finished the reply: the rest of PROG's output
    /// is dropped until it is quiet or shows its prompt; two of these in a
    /// row with no reply between make PROG not answering.
    fn abandoned(&mut self, active: Active, now: Instant) {
        let line = active.request.line.clone();
        if let Some(previous) = self.unanswered.as_mut() {
            if !previous.reported {
                previous.reported = true;
                let message = format!(
                    "{} is not answering: {:?} timed out right after {:?} did, and no reply \
                     came between them",
                    self.config.program, line, previous.line
                );
                self.events.push_back(Event::NotAnswering(message));
            }
            previous.line = line.clone();
        } else {
            self.unanswered = Some(Unanswered {
                line: line.clone(),
                reported: false,
            });
        }
        let settle = self.quiet_period();
        let prompt = match (&active.framing, &self.config.framing) {
            (p @ Framing::Prompt(_), _) | (_, p @ Framing::Prompt(_)) => Collector::new(p).ok(),
            _ => None,
        };
        if self.out_eof {
            return;
        }
        self.drain = Some(Drain {
            line,
            timeout: active.timer.timeout(),
            quiet: Quiet::start(settle, now),
            prompt,
            alarm: Some(after(now, active.timer.timeout())),
            dropped: 0,
            first: None,
            last: None,
        });
    }

    // ----- moving on -----

    /// Chooses what PROG gets next, once it is idle (greeted, no reply
    /// being read, at its prompt after raw input, output open) and
    /// `prog_available` (running, and serve not stopping): raw input from
    /// `in` first, moved to the pending input at once; else the next
    /// queued request. Returns true when that request is due: the driver
    /// then drains PROG's pending output (it came before the request, so
    /// it belongs to no request) and calls [`Requests::start_request`].
    pub fn next_input(&mut self, prog_available: bool, now: Instant) -> bool {
        if self.active.is_some()
            || self.drain.is_some()
            || self.greeting.is_some()
            || !prog_available
            || self.out_eof
        {
            return false;
        }
        if !self.raw_in.is_empty() {
            self.to_prog.append(&mut self.raw_in);
            self.await_prompt(now);
            return false;
        }
        if !self.to_prog.is_empty() || self.busy.is_some() {
            return false;
        }
        !self.queue.is_empty()
    }

    /// Sends the next queued request to PROG at `now` (after
    /// [`Requests::next_input`] said it is due): its line becomes the
    /// pending input and its reply is framed from now on. A request whose
    /// framing cannot be used is answered with an error instead.
    pub fn start_request(&mut self, now: Instant) {
        let Some(Queued { request, deadline }) = self.queue.pop_front() else {
            return;
        };
        if request.raw {
            log::debug!("serve: sending raw input {} to the program", request.id);
            self.to_prog.extend_from_slice(request.line_bytes());
            self.to_prog.push(b'\n');
            self.await_prompt(now);
            self.sending = Some(Queued { request, deadline });
            return;
        }
        let framing = request
            .framing
            .clone()
            .unwrap_or_else(|| self.config.framing.clone());
        let collector = match Collector::new(&framing) {
            Ok(c) => c,
            Err(e) => {
                self.reply(&request, &framing, Vec::new(), Some((BAD_REQUEST, e)));
                return;
            }
        };
        log::debug!("serve: sending {} to the program", request.id);
        self.to_prog.extend_from_slice(request.line_bytes());
        self.to_prog.push(b'\n');
        // A request that gets no output at all has an empty reply after
        // the quiet time.
        let quiet = framing.quiet().map(|q| Quiet::start(q, now));
        let timer = ReplyTimer::new(deadline, Duration::from_millis(request.timeout_ms));
        self.active = Some(Active {
            request,
            framing,
            collector,
            reply: Vec::new(),
            timer,
            quiet,
            taken: false,
        });
    }

    // ----- what the driver carries out -----

    /// True when there is input for PROG's stdin.
    #[cfg(test)]
    pub fn pending_input(&self) -> bool {
        !self.to_prog.is_empty()
    }

    /// The input for PROG's stdin (the driver writes what the pipe has
    /// room for, says how much with [`Requests::input_written`], and
    /// reports a failed write).
    pub fn input(&self) -> &[u8] {
        &self.to_prog
    }

    /// `n` bytes of [`Requests::input`] went to PROG's stdin.
    pub fn input_written(&mut self, n: usize) {
        self.to_prog.drain(..n.min(self.to_prog.len()));
        if self.to_prog.is_empty() {
            if let Some(active) = self.active.as_mut() {
                active.taken = true;
            }
            if let Some(sent) = self.sending.take() {
                let framing = self.config.framing.clone();
                self.reply(&sent.request, &framing, Vec::new(), None);
            }
        }
    }

    /// The input for PROG's stdin, all of it, as written at once.
    #[cfg(test)]
    pub fn take_input(&mut self) -> Vec<u8> {
        let bytes = self.to_prog.clone();
        self.input_written(bytes.len());
        bytes
    }

    /// The next reply to write to a client, in the order they were decided.
    pub fn poll_reply(&mut self) -> Option<Delivery> {
        self.replies.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Output for `out`, oldest first (one contiguous piece of it; empty
    /// when there is none).
    pub fn out_backlog(&self) -> &[u8] {
        self.raw_out.as_slices().0
    }

    /// `n` bytes of [`Requests::out_backlog`] went to `out`.
    pub fn out_written(&mut self, n: usize) {
        self.raw_out.drain(..n.min(self.raw_out.len()));
    }

    /// The earliest time something is due without any input: the
    /// greeting's, the request's being answered, every queued request's
    /// deadline. [`Requests::handle_timeout`] acts on it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut due: Vec<Instant> = Vec::new();
        if let Some(g) = &self.greeting {
            due.push(g.deadline);
            // At the end of PROG's output the settle no longer counts.
            if let GreetingEnd::Settle(quiet) = &g.end {
                if !self.out_eof {
                    due.push(quiet.until());
                }
            }
        }
        if let Some(a) = &self.active {
            due.extend(a.quiet.map(|q| q.until()));
            due.push(a.timer.deadline());
        }
        if let Some(d) = &self.drain {
            due.push(d.quiet.until());
            due.extend(d.alarm);
        }
        if let Some(b) = &self.busy {
            due.push(b.quiet.until());
        }
        due.extend(self.queue.iter().map(|q| q.deadline));
        due.extend(self.sending.as_ref().map(|s| s.deadline));
        earliest(due)
    }

    // ----- questions -----

    /// Where the machine is. (PROG greets only when no request is being
    /// answered, and is busy after raw input only when none is either.)
    pub fn phase(&self) -> Phase {
        if self.drain.is_some() {
            return Phase::Late;
        }
        match (&self.greeting, &self.active, &self.busy) {
            (Some(_), _, _) => Phase::Greeting,
            (None, Some(_), _) => Phase::Answering,
            (None, None, Some(_)) => Phase::Busy,
            (None, None, None) => Phase::Idle,
        }
    }

    /// True once PROG's first greeting has ended.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// How many requests wait for their turn.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// True while a client waits for the reply PROG is writing: when PROG's
    /// output ends now, its status makes a better message.
    pub fn awaits_reply(&self) -> bool {
        self.active.is_some()
    }

    /// True once PROG's current output has ended.
    pub fn output_ended(&self) -> bool {
        self.out_eof
    }

    /// True while there is room for more raw input from `in`.
    pub fn wants_raw_input(&self) -> bool {
        self.raw_in.len() < OUT_BACKLOG
    }

    // ----- transitions -----

    /// Ends the greeting when its time has come. At the first start a
    /// greeting that does not end in time is [`Event::StartTimedOut`];
    /// after a restart it is logged and requests go on.
    fn check_greeting(&mut self, now: Instant) {
        let Some(g) = self.greeting.as_ref() else {
            return;
        };
        // At end of output PROG is going: its exit decides, not the quiet.
        let settled = matches!(&g.end, GreetingEnd::Settle(q) if q.is_due(now)) && !self.out_eof;
        if settled {
            self.greeted();
            return;
        }
        if now < g.deadline {
            return;
        }
        let what = match &g.end {
            GreetingEnd::Prompt(_) => {
                format!("its first prompt ({})", self.config.framing.describe())
            }
            GreetingEnd::Settle(_) => format!(
                "its greeting to end ({} of quiet)",
                duration::show(self.config.settle)
            ),
        };
        let mut seen = g.seen.clone();
        if let GreetingEnd::Prompt(first) = &g.end {
            seen.extend_from_slice(first.held());
        }
        let message = format!(
            "{} did not show {what} within {}{}",
            self.config.program,
            duration::show(self.config.greet_timeout),
            preview(&seen)
        );
        if !self.ready {
            self.events.push_back(Event::StartTimedOut(message));
            return;
        }
        log::warn!("serve: {message}; sending requests anyway");
        self.greeted();
    }

    /// A send whose lines PROG has not taken by its client's deadline: the
    /// client learns it (the rest is still written when PROG reads).
    fn expire_sending(&mut self, now: Instant) {
        if self.sending.as_ref().is_none_or(|s| now < s.deadline) {
            return;
        }
        let Some(sent) = self.sending.take() else {
            return;
        };
        let message = format!(
            "timed out after {}: the program has not read them ({} bytes left)",
            duration::show(Duration::from_millis(sent.request.timeout_ms)),
            self.to_prog.len()
        );
        let framing = self.config.framing.clone();
        self.reply(
            &sent.request,
            &framing,
            Vec::new(),
            Some((TIMED_OUT, message)),
        );
    }

    /// After raw input under `--prompt`: PROG is busy until its prompt, or
    /// until it has been quiet for serve's `--timeout` (a slow PROG's
    /// answer to raw input must not reach the next ask; a line that gets no
    /// prompt must not hold the asks for good).
    fn await_prompt(&mut self, now: Instant) {
        if let Framing::Prompt(_) = &self.config.framing {
            if let Ok(prompt) = Collector::new(&self.config.framing) {
                self.busy = Some(Busy {
                    prompt,
                    quiet: Quiet::start(self.config.greet_timeout, now),
                });
            }
        }
    }

    /// The quiet that ends the dropping of a timed-out request's output:
    /// the settle time, or [`DRAIN_QUIET`].
    fn quiet_period(&self) -> Duration {
        if self.config.settle.is_zero() {
            DRAIN_QUIET
        } else {
            self.config.settle
        }
    }

    /// Ends the dropping of a timed-out request's output once PROG has been
    /// quiet for the settle time; reports PROG as not answering when it is
    /// still writing the request's timeout after its ask timed out.
    fn check_drain(&mut self, now: Instant) {
        let Some(drain) = self.drain.as_ref() else {
            return;
        };
        if drain.quiet.is_due(now) {
            self.drained(false);
            return;
        }
        let Some(alarm) = drain.alarm else {
            return;
        };
        if now < alarm {
            return;
        }
        // Still writing: output has kept coming for half the timeout and
        // up to the alarm (a late reply that came and went is no trouble).
        let writing = match (drain.first, drain.last) {
            (Some(first), Some(last)) => {
                last.saturating_duration_since(first) >= drain.timeout / 2
                    && now.saturating_duration_since(last) < DRAIN_QUIET
            }
            _ => false,
        };
        if let Some(d) = self.drain.as_mut() {
            d.alarm = None;
        }
        if !writing {
            // The quiet will end the dropping.
            return;
        }
        let Some(drain) = self.drain.as_ref() else {
            return;
        };
        let message = format!(
            "{} is not answering: it has not stopped writing {} after {:?} timed out",
            self.config.program,
            duration::show(drain.timeout),
            drain.line
        );
        match self.unanswered.as_mut() {
            Some(u) if u.reported => return,
            Some(u) => u.reported = true,
            None => {
                self.unanswered = Some(Unanswered {
                    line: drain.line.clone(),
                    reported: true,
                })
            }
        }
        self.events.push_back(Event::NotAnswering(message));
    }

    /// The dropping of a timed-out request's output is over: PROG was quiet,
    /// showed its `prompt`, or its output ended.
    fn drained(&mut self, prompt: bool) {
        let Some(drain) = self.drain.take() else {
            return;
        };
        log::info!(
            "serve: dropped {} bytes after {:?} timed out; serving the next request",
            drain.dropped,
            drain.line
        );
        if prompt {
            self.answered();
        }
    }

    /// PROG has completed a reply (or shown its prompt after a timeout): it
    /// answers.
    fn answered(&mut self) {
        if self.unanswered.take().is_some_and(|u| u.reported) {
            self.events.push_back(Event::AnswersAgain);
        }
    }

    fn greeted(&mut self) {
        if let Some(g) = self.greeting.take() {
            if !g.seen.is_empty() {
                log::info!(
                    "serve: the program's greeting: {:?}",
                    String::from_utf8_lossy(&g.seen)
                );
            }
        }
        self.ready = true;
    }

    /// Answers the queued requests whose clients have given up waiting for
    /// their turn, saying what PROG was busy with.
    fn expire_queued(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.queue.len() {
            if now < self.queue[i].deadline {
                i += 1;
                continue;
            }
            let queued = self.queue.remove(i).expect("an index in range");
            let why = match self.phase() {
                Phase::Late => {
                    "serve was dropping the rest of the output to an earlier request that timed out"
                }
                Phase::Greeting => "the program has not finished its greeting",
                Phase::Busy => {
                    "the program has not shown its prompt since the raw input from DIR/in"
                }
                Phase::Idle | Phase::Answering => "the program was busy with earlier requests",
            };
            let message = format!(
                "timed out after {} waiting for its turn: {why}",
                duration::show(Duration::from_millis(queued.request.timeout_ms))
            );
            let framing = queued
                .request
                .framing
                .clone()
                .unwrap_or_else(|| self.config.framing.clone());
            self.reply(
                &queued.request,
                &framing,
                Vec::new(),
                Some((TIMED_OUT, message)),
            );
        }
    }

    /// The reply being read is complete: to its client, or dropped if the
    /// client was told it timed out.
    fn complete_active(&mut self) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        active.collector.flush(&mut active.reply);
        self.answered();
        self.reply(&active.request, &active.framing, active.reply, None);
    }

    /// The reply being read cannot complete (PROG ended): its client gets
    /// the error with what arrived; a late reply is just dropped.
    fn end_active(&mut self, message: &str) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        active.collector.flush(&mut active.reply);
        self.reply(
            &active.request,
            &active.framing,
            active.reply,
            Some((ENDED, message.to_string())),
        );
    }

    fn queue_out(&mut self, bytes: &[u8]) {
        self.raw_out.extend(bytes);
        if self.raw_out.len() > OUT_BACKLOG {
            let excess = self.raw_out.len() - OUT_BACKLOG;
            self.raw_out.drain(..excess);
            log::warn!(
                "serve: nobody reads {}; dropped {excess} bytes of old output",
                protocol::OUT
            );
        }
    }

    /// Queues the reply to `request`.
    fn reply(
        &mut self,
        request: &Request,
        framing: &Framing,
        output: Vec<u8>,
        error: Option<(&str, String)>,
    ) {
        let (error, message) = match error {
            Some((kind, message)) => (Some(kind.to_string()), message),
            None => (None, String::new()),
        };
        self.replies.push_back(Delivery {
            fifo: request.reply.clone(),
            keep_fifo: request.keep_fifo,
            reply: Reply::new(request.id.clone(), output, error, message, framing.clone()),
        });
    }
}

/// `; it wrote "..."` (the start of it) or `; it wrote nothing`, for
/// messages.
fn preview(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "; it wrote nothing".into()
    } else {
        let text = String::from_utf8_lossy(bytes);
        let cut: String = text.chars().take(200).collect();
        format!("; it wrote {cut:?}")
    }
}

#[cfg(test)]
mod tests {
    //! The machine driven by hand: requests and PROG's output go in as
    //! bytes, time as `now` values; replies, input, output for `out`,
    //! events and the phase come out. No process, no FIFO, no clock.

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn config(framing: Framing, settle: Duration) -> Config {
        Config {
            program: "calc".into(),
            framing,
            settle,
            greet_timeout: 10_000 * MS,
            pty: true,
            max_reply: 1 << 20,
        }
    }

    /// A machine whose PROG started at `t0` and is ready: it has no
    /// greeting (no settle time), or showed its first prompt (`> `).
    fn ready(framing: Framing) -> (Requests, Instant) {
        let t0 = Instant::now();
        let prompt = matches!(framing, Framing::Prompt(_));
        let mut m = Requests::new(config(framing, Duration::ZERO)).unwrap();
        m.handle_started(t0).unwrap();
        if prompt {
            m.handle_output(b"> ", t0);
        }
        assert!(m.is_ready());
        assert_eq!(m.phase(), Phase::Idle);
        (m, t0)
    }

    fn request(id: &str, line: &str, timeout_ms: u64, framing: Option<Framing>) -> Request {
        Request {
            id: id.into(),
            line: line.into(),
            framing,
            timeout_ms,
            reply: format!("reply.{id}"),
            keep_fifo: false,
            bytes: None,
            raw: false,
        }
    }

    /// Writes `request` to `ctl` as a client does, received at `now`.
    fn ask(m: &mut Requests, request: &Request, now: Instant) {
        let mut line = serde_json::to_vec(request).unwrap();
        line.push(b'\n');
        m.handle_ctl(&line, now);
    }

    /// Lets the next request go to PROG at `now`; returns PROG's input.
    fn send_next(m: &mut Requests, now: Instant) -> Vec<u8> {
        assert!(m.next_input(true, now), "a request is due");
        m.start_request(now);
        m.take_input()
    }

    fn replies(m: &mut Requests) -> Vec<Delivery> {
        std::iter::from_fn(|| m.poll_reply()).collect()
    }

    fn events(m: &mut Requests) -> Vec<Event> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }

    /// All of the output waiting for `out`, as `out` would get it.
    fn drain_out(m: &mut Requests) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let piece = m.out_backlog().to_vec();
            if piece.is_empty() {
                return all;
            }
            m.out_written(piece.len());
            all.extend(piece);
        }
    }

    /// The one reply expected now.
    fn one_reply(m: &mut Requests) -> Reply {
        let mut all = replies(m);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0).reply
    }

    #[test]
    fn a_request_goes_to_prog_and_its_reply_to_its_client() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "2+2", 1000, None), t0);
        assert_eq!(m.queued(), 1);
        assert_eq!(send_next(&mut m, t0), b"2+2\n");
        assert_eq!(m.phase(), Phase::Answering);
        assert!(m.awaits_reply());
        m.handle_output(b"4", t0 + MS);
        assert!(replies(&mut m).is_empty(), "half a line is no reply");
        m.handle_output(b"\n", t0 + 2 * MS);
        let delivery = replies(&mut m).remove(0);
        assert_eq!(delivery.fifo, "reply.a");
        assert!(!delivery.keep_fifo);
        assert_eq!(
            delivery.reply,
            Reply {
                id: "a".into(),
                output: "4\n".into(),
                error: None,
                message: String::new(),
                framing: Some(Framing::Lines(1)),
                bytes: None,
            }
        );
        assert_eq!(m.phase(), Phase::Idle);
        assert!(!m.next_input(true, t0), "nothing is queued");
    }

    #[test]
    fn request_lines_may_come_in_pieces_and_bad_ones_are_ignored() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let mut line = serde_json::to_vec(&request("a", "1", 1000, None)).unwrap();
        line.push(b'\n');
        let (head, tail) = line.split_at(10);
        m.handle_ctl(head, t0);
        assert_eq!(m.queued(), 0, "not a whole line yet");
        m.handle_ctl(tail, t0);
        assert_eq!(m.queued(), 1);
        m.handle_ctl(b"not json\n", t0);
        let mut outside = request("b", "1", 1000, None);
        outside.reply = "reply.b/../../elsewhere".into();
        ask(&mut m, &outside, t0);
        outside.reply = "out".into();
        ask(&mut m, &outside, t0);
        assert_eq!(m.queued(), 1, "only replies to reply.* FIFOs in DIR");
        assert!(replies(&mut m).is_empty());
    }

    #[test]
    fn requests_are_answered_one_at_a_time_in_arrival_order() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "1", 1000, None), t0);
        ask(&mut m, &request("b", "2", 1000, None), t0);
        assert_eq!(send_next(&mut m, t0), b"1\n");
        assert!(!m.next_input(true, t0), "b waits for a's reply");
        m.handle_output(b"one\n", t0);
        assert_eq!(one_reply(&mut m).id, "a");
        assert_eq!(send_next(&mut m, t0), b"2\n");
        m.handle_output(b"two\n", t0);
        let reply = one_reply(&mut m);
        assert_eq!((reply.id.as_str(), reply.output.as_str()), ("b", "two\n"));
    }

    #[test]
    fn output_after_a_reply_or_between_requests_goes_to_out() {
        let (mut m, t0) = ready(Framing::Lines(1));
        m.handle_output(b"unasked\n", t0);
        ask(&mut m, &request("a", "1", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_output(b"reply\nmore\n", t0);
        assert_eq!(one_reply(&mut m).output, "reply\n");
        assert_eq!(drain_out(&mut m), b"unasked\nmore\n");
    }

    #[test]
    fn a_requests_own_framing_wins_over_serves() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let until = Framing::Until("^END$".into());
        ask(&mut m, &request("a", "list", 1000, Some(until.clone())), t0);
        send_next(&mut m, t0);
        m.handle_output(b"x\ny\nEND\n", t0);
        let reply = one_reply(&mut m);
        assert_eq!(reply.output, "x\ny\nEND\n");
        assert_eq!(reply.framing, Some(until));
    }

    #[test]
    fn a_prompt_reply_ends_at_the_prompt_which_is_left_out() {
        let (mut m, t0) = ready(Framing::Prompt("^> ".into()));
        ask(&mut m, &request("a", "print(6*7)", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_output(b"42\r\n>", t0);
        assert!(replies(&mut m).is_empty());
        m.handle_output(b" ", t0);
        assert_eq!(one_reply(&mut m).output, "42\r\n");
        assert!(drain_out(&mut m).is_empty(), "the prompt is nobody's");
    }

    #[test]
    fn a_quiet_reply_ends_when_prog_has_been_quiet_and_output_pushes_that_back() {
        let (mut m, t0) = ready(Framing::QuietMs(100));
        ask(&mut m, &request("a", "x", 1000, None), t0);
        send_next(&mut m, t0);
        assert_eq!(m.poll_timeout(), Some(t0 + 100 * MS));
        m.handle_output(b"a\nb", t0 + 50 * MS);
        assert_eq!(m.poll_timeout(), Some(t0 + 150 * MS));
        m.handle_timeout(t0 + 149 * MS);
        assert!(replies(&mut m).is_empty());
        m.handle_timeout(t0 + 150 * MS);
        assert_eq!(one_reply(&mut m).output, "a\nb");
        assert_eq!(m.phase(), Phase::Idle);
    }

    #[test]
    fn a_quiet_request_that_gets_no_output_has_an_empty_reply() {
        let (mut m, t0) = ready(Framing::QuietMs(100));
        ask(&mut m, &request("a", "x=1", 1000, None), t0);
        send_next(&mut m, t0 + 10 * MS);
        m.handle_timeout(t0 + 110 * MS);
        let reply = one_reply(&mut m);
        assert_eq!((reply.output.as_str(), reply.error), ("", None));
    }

    #[test]
    fn a_timed_out_request_gets_what_arrived_and_its_late_output_is_dropped_until_quiet() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "slow", 100, None), t0);
        send_next(&mut m, t0);
        m.handle_output(b"par", t0 + 10 * MS);
        assert_eq!(m.poll_timeout(), Some(t0 + 100 * MS));
        m.handle_timeout(t0 + 99 * MS);
        assert!(replies(&mut m).is_empty());
        m.handle_timeout(t0 + 100 * MS);
        let reply = one_reply(&mut m);
        assert_eq!(reply.error.as_deref(), Some(TIMED_OUT));
        assert_eq!(reply.output, "par");
        assert_eq!(
            reply.message,
            "timed out after 100ms waiting for a reply line"
        );
        assert_eq!(m.phase(), Phase::Late);
        assert!(!m.awaits_reply());

        ask(&mut m, &request("b", "fast", 1000, None), t0 + 150 * MS);
        assert!(
            !m.next_input(true, t0),
            "b waits while the late output is dropped"
        );
        m.handle_timeout(t0 + 200 * MS);
        assert!(events(&mut m).is_empty(), "PROG wrote nothing since");
        m.handle_output(b"tial\nmore\n", t0 + 250 * MS);
        assert_eq!(
            m.poll_timeout(),
            Some(t0 + 450 * MS),
            "quiet from the last byte"
        );
        m.handle_timeout(t0 + 449 * MS);
        assert_eq!(m.phase(), Phase::Late);
        m.handle_timeout(t0 + 450 * MS);
        assert_eq!(m.phase(), Phase::Idle);
        assert!(replies(&mut m).is_empty(), "the late output reached nobody");
        assert!(drain_out(&mut m).is_empty(), "nor out");
        assert_eq!(send_next(&mut m, t0 + 450 * MS), b"fast\n");
        m.handle_output(b"ok\n", t0 + 460 * MS);
        assert_eq!(one_reply(&mut m).output, "ok\n");
    }

    #[test]
    fn one_request_without_a_reply_costs_its_own_ask_a_timeout_and_no_other() {
        // bc's `x=6` under --lines 1: no reply line will ever come.
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "x=6", 100, None), t0);
        ask(&mut m, &request("b", "x*7", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 100 * MS);
        assert_eq!(one_reply(&mut m).error.as_deref(), Some(TIMED_OUT));
        assert!(!m.next_input(true, t0));
        m.handle_timeout(t0 + 300 * MS);
        assert_eq!(m.phase(), Phase::Idle, "quiet for the settle time");
        assert_eq!(send_next(&mut m, t0 + 300 * MS), b"x*7\n");
        m.handle_output(b"42\n", t0 + 301 * MS);
        let reply = one_reply(&mut m);
        assert_eq!((reply.id.as_str(), reply.output.as_str()), ("b", "42\n"));
        assert!(events(&mut m).is_empty(), "one timeout is no alarm");
    }

    #[test]
    fn the_settle_time_is_the_quiet_that_ends_the_dropping() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Lines(1), 1000 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        m.handle_timeout(t0 + 1000 * MS);
        assert!(m.is_ready());
        ask(&mut m, &request("a", "slow", 100, None), t0 + 1000 * MS);
        send_next(&mut m, t0 + 1000 * MS);
        m.handle_timeout(t0 + 1100 * MS);
        replies(&mut m);
        assert_eq!(
            m.poll_timeout(),
            Some(t0 + 1200 * MS),
            "the alarm comes first"
        );
        m.handle_timeout(t0 + 1200 * MS);
        assert!(events(&mut m).is_empty(), "a silent PROG is not reported");
        assert_eq!(m.poll_timeout(), Some(t0 + 2100 * MS));
        m.handle_output(b"slow\n", t0 + 1500 * MS);
        m.handle_timeout(t0 + 2100 * MS);
        assert!(events(&mut m).is_empty(), "one late reply is no alarm");
        assert_eq!(m.phase(), Phase::Late, "the late reply restarted the quiet");
        m.handle_timeout(t0 + 2500 * MS);
        assert_eq!(m.phase(), Phase::Idle);
        assert!(replies(&mut m).is_empty());
    }

    #[test]
    fn under_a_prompt_the_dropping_ends_at_the_prompt_and_what_follows_goes_to_out() {
        // python's `def f():` gets `... `, never `>>> `, under --prompt.
        let (mut m, t0) = ready(Framing::Prompt("^> ".into()));
        ask(&mut m, &request("a", "def f():", 100, None), t0);
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 100 * MS);
        replies(&mut m);
        assert_eq!(m.phase(), Phase::Late);
        m.handle_output(b"... late\n> stray", t0 + 150 * MS);
        assert_eq!(m.phase(), Phase::Idle, "the prompt ends it at once");
        assert_eq!(drain_out(&mut m), b"stray");
        assert!(replies(&mut m).is_empty());
    }

    #[test]
    fn a_request_that_times_out_right_after_another_reports_prog_once_until_it_answers() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "hang", 100, None), t0);
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 100 * MS);
        m.handle_timeout(t0 + 300 * MS);
        ask(&mut m, &request("b", "next", 100, None), t0 + 300 * MS);
        send_next(&mut m, t0 + 300 * MS);
        m.handle_timeout(t0 + 400 * MS);
        assert_eq!(replies(&mut m).len(), 2);
        assert_eq!(
            events(&mut m),
            [Event::NotAnswering(
                "calc is not answering: \"next\" timed out right after \"hang\" did, and no \
                 reply came between them"
                    .into()
            )]
        );
        m.handle_timeout(t0 + 600 * MS);
        ask(&mut m, &request("c", "again", 100, None), t0 + 600 * MS);
        send_next(&mut m, t0 + 600 * MS);
        m.handle_timeout(t0 + 700 * MS);
        replies(&mut m);
        assert!(events(&mut m).is_empty(), "reported once");
        m.handle_timeout(t0 + 900 * MS);
        ask(&mut m, &request("d", "1", 100, None), t0 + 900 * MS);
        send_next(&mut m, t0 + 900 * MS);
        m.handle_output(b"1\n", t0 + 910 * MS);
        assert_eq!(one_reply(&mut m).output, "1\n");
        assert_eq!(events(&mut m), [Event::AnswersAgain]);
    }

    #[test]
    fn prog_still_writing_the_timeout_after_its_ask_timed_out_is_not_answering() {
        let (mut m, t0) = ready(Framing::Lines(2));
        ask(&mut m, &request("a", "yes", 100, None), t0);
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 100 * MS);
        replies(&mut m);
        for i in 1..=10 {
            m.handle_output(b"y\n", t0 + (100 + 10 * i) * MS);
        }
        m.handle_timeout(t0 + 200 * MS);
        assert_eq!(
            events(&mut m),
            [Event::NotAnswering(
                "calc is not answering: it has not stopped writing 100ms after \"yes\" timed out"
                    .into()
            )]
        );
        assert_eq!(m.phase(), Phase::Late);
        m.handle_timeout(t0 + 400 * MS);
        assert_eq!(m.phase(), Phase::Idle);
        assert!(events(&mut m).is_empty(), "quiet is no reply");
    }

    #[test]
    fn a_late_reply_that_came_and_went_before_the_alarm_is_not_reported() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Lines(1), 1000 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        m.handle_timeout(t0 + 1000 * MS);
        let t1 = t0 + 1000 * MS;
        ask(&mut m, &request("a", "slow", 100, None), t1);
        send_next(&mut m, t1);
        m.handle_timeout(t1 + 100 * MS);
        replies(&mut m);
        m.handle_output(b"late\n", t1 + 150 * MS);
        m.handle_timeout(t1 + 200 * MS);
        assert!(events(&mut m).is_empty());
        assert_eq!(m.phase(), Phase::Late, "the settle time has not passed");
    }

    #[test]
    fn a_queued_request_times_out_waiting_for_its_turn_and_says_what_prog_was_doing() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "slow", 100, None), t0);
        send_next(&mut m, t0);
        ask(&mut m, &request("b", "x", 150, None), t0);
        assert_eq!(m.poll_timeout(), Some(t0 + 100 * MS));
        m.handle_timeout(t0 + 100 * MS);
        assert_eq!(one_reply(&mut m).id, "a", "a timed out; b still waits");
        m.handle_output(b"y", t0 + 120 * MS);
        m.handle_timeout(t0 + 150 * MS);
        let reply = one_reply(&mut m);
        assert_eq!(reply.id, "b");
        assert_eq!(reply.error.as_deref(), Some(TIMED_OUT));
        assert_eq!(
            reply.message,
            "timed out after 150ms waiting for its turn: serve was dropping the rest of the \
             output to an earlier request that timed out"
        );
        assert_eq!(m.queued(), 0);
    }

    #[test]
    fn a_queued_request_that_waits_for_a_busy_prog_says_so() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "slow", 1000, None), t0);
        send_next(&mut m, t0);
        ask(&mut m, &request("b", "x", 100, None), t0);
        m.handle_timeout(t0 + 100 * MS);
        let reply = one_reply(&mut m);
        assert_eq!(reply.id, "b");
        assert!(
            reply
                .message
                .ends_with("the program was busy with earlier requests"),
            "{}",
            reply.message
        );
        assert_eq!(m.phase(), Phase::Answering, "a is still answered");
    }

    #[test]
    fn the_greeting_ends_after_the_settle_time_without_output_and_is_nobodys() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Lines(1), 200 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        assert_eq!(m.phase(), Phase::Greeting);
        assert!(!m.is_ready());
        ask(&mut m, &request("a", "1", 1000, None), t0);
        assert!(!m.next_input(true, t0), "no request during the greeting");
        m.handle_output(b"Welcome\n", t0 + 100 * MS);
        assert_eq!(m.poll_timeout(), Some(t0 + 300 * MS));
        m.handle_timeout(t0 + 299 * MS);
        assert_eq!(m.phase(), Phase::Greeting);
        m.handle_timeout(t0 + 300 * MS);
        assert!(m.is_ready());
        assert_eq!(m.phase(), Phase::Idle);
        assert!(drain_out(&mut m).is_empty(), "the greeting is dropped");
        assert_eq!(send_next(&mut m, t0 + 300 * MS), b"1\n");
    }

    #[test]
    fn the_greeting_ends_at_the_first_prompt_and_what_follows_it_goes_to_out() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Prompt("^> ".into()), 200 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        assert_eq!(m.poll_timeout(), Some(t0 + 10_000 * MS), "no settle");
        m.handle_output(b"banner\n> ", t0);
        assert!(m.is_ready());
        m.handle_output(b"stray\n", t0);
        assert_eq!(drain_out(&mut m), b"stray\n");
    }

    #[test]
    fn a_first_greeting_that_never_ends_fails_the_start_and_says_what_arrived() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Prompt("^> ".into()), 200 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        m.handle_output(b"Loading", t0);
        m.handle_timeout(t0 + 9_999 * MS);
        assert!(events(&mut m).is_empty());
        m.handle_timeout(t0 + 10_000 * MS);
        assert_eq!(
            events(&mut m),
            [Event::StartTimedOut(
                "calc did not show its first prompt (the prompt \"^> \") within 10s; it wrote \
                 \"Loading\""
                    .into()
            )]
        );
        assert!(!m.is_ready());
        assert_eq!(m.phase(), Phase::Greeting);
    }

    #[test]
    fn a_greeting_that_never_settles_before_prog_closes_its_output_waits_for_the_timeout() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Lines(1), 200 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        m.handle_output_end(None);
        m.handle_timeout(t0 + 1_000 * MS);
        assert_eq!(
            m.phase(),
            Phase::Greeting,
            "PROG's exit decides, not the quiet"
        );
        m.handle_timeout(t0 + 10_000 * MS);
        assert!(
            matches!(&events(&mut m)[..], [Event::StartTimedOut(m)] if m.ends_with("it wrote nothing"))
        );
    }

    #[test]
    fn after_a_restart_a_greeting_that_never_ends_is_logged_and_requests_go_on() {
        let (mut m, t0) = ready(Framing::Prompt("^> ".into()));
        m.handle_restart();
        let t1 = t0 + 1_000 * MS;
        m.handle_started(t1).unwrap();
        assert_eq!(m.phase(), Phase::Greeting);
        ask(&mut m, &request("a", "1", 60_000, None), t1);
        m.handle_timeout(t1 + 10_000 * MS);
        assert!(events(&mut m).is_empty());
        assert_eq!(m.phase(), Phase::Idle);
        assert_eq!(send_next(&mut m, t1 + 10_000 * MS), b"1\n");
    }

    #[test]
    fn a_request_waiting_through_a_greeting_says_so_when_it_times_out() {
        let (mut m, t0) = ready(Framing::Prompt("^> ".into()));
        m.handle_restart();
        m.handle_started(t0).unwrap();
        ask(&mut m, &request("a", "1", 100, None), t0);
        m.handle_timeout(t0 + 100 * MS);
        assert!(
            one_reply(&mut m)
                .message
                .ends_with("the program has not finished its greeting")
        );
    }

    #[test]
    fn nothing_goes_to_prog_while_it_is_unavailable_or_its_output_has_ended() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "1", 1000, None), t0);
        m.handle_raw_input(b"raw\n");
        assert!(!m.next_input(false, t0));
        assert!(!m.pending_input());
        m.handle_output_end(None);
        assert!(m.output_ended());
        assert!(!m.next_input(true, t0));
        assert!(!m.pending_input());
    }

    #[test]
    fn raw_input_goes_first_and_under_a_prompt_the_next_request_waits_for_it() {
        let (mut m, t0) = ready(Framing::Prompt("^> ".into()));
        m.handle_raw_input(b"x=6\n");
        ask(&mut m, &request("a", "x*7", 1000, None), t0);
        assert!(!m.next_input(true, t0), "raw input goes first");
        assert_eq!(m.take_input(), b"x=6\n");
        assert_eq!(m.phase(), Phase::Busy);
        assert!(!m.next_input(true, t0), "PROG is busy until its prompt");
        m.handle_output(b"> ", t0);
        assert_eq!(m.phase(), Phase::Idle);
        assert_eq!(drain_out(&mut m), b"> ", "raw input's output goes to out");
        assert_eq!(send_next(&mut m, t0), b"x*7\n");
    }

    #[test]
    fn raw_input_that_gets_no_prompt_leaves_prog_busy_only_until_it_is_quiet() {
        // python's `def f():` sent raw gets `... `, never `>>> `.
        let (mut m, t0) = ready(Framing::Prompt("^> ".into()));
        m.handle_raw_input(b"def f():\n");
        ask(&mut m, &request("a", "x", 60_000, None), t0);
        assert!(!m.next_input(true, t0));
        assert_eq!(m.take_input(), b"def f():\n");
        m.handle_output(b"... ", t0 + 10 * MS);
        assert_eq!(m.phase(), Phase::Busy);
        let quiet = t0 + 10 * MS + 10_000 * MS;
        assert_eq!(m.poll_timeout(), Some(quiet), "serve's --timeout of quiet");
        m.handle_timeout(quiet - MS);
        assert_eq!(m.phase(), Phase::Busy);
        m.handle_timeout(quiet);
        assert_eq!(m.phase(), Phase::Idle);
        assert_eq!(send_next(&mut m, quiet), b"x\n");
    }

    #[test]
    fn raw_input_without_a_prompt_leaves_prog_idle() {
        let (mut m, t0) = ready(Framing::Lines(1));
        m.handle_raw_input(b"x=6\n");
        ask(&mut m, &request("a", "x*7", 1000, None), t0);
        assert!(!m.next_input(true, t0));
        assert!(!m.next_input(true, t0), "its input is still pending");
        assert_eq!(m.take_input(), b"x=6\n");
        assert_eq!(m.phase(), Phase::Idle);
        assert!(m.next_input(true, t0));
    }

    #[test]
    fn raw_input_is_held_up_to_the_backlog() {
        let (mut m, _) = ready(Framing::Lines(1));
        assert!(m.wants_raw_input());
        m.handle_raw_input(&vec![b'x'; OUT_BACKLOG]);
        assert!(!m.wants_raw_input());
    }

    #[test]
    fn output_ending_mid_reply_fails_the_request_with_what_arrived() {
        let (mut m, t0) = ready(Framing::Lines(2));
        ask(&mut m, &request("a", "quit", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_output(b"bye\npar", t0);
        m.handle_output_end(Some(ExitStatus::from_code(3)));
        let reply = one_reply(&mut m);
        assert_eq!(reply.error.as_deref(), Some(ENDED));
        assert_eq!(reply.output, "bye\npar");
        assert_eq!(
            reply.message,
            "the program exited with code 3 before the reply was complete"
        );
        m.handle_output_end(None);
        assert!(replies(&mut m).is_empty());
    }

    #[test]
    fn output_ending_without_a_status_says_the_output_closed() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "x", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_output_end(None);
        assert_eq!(
            one_reply(&mut m).message,
            "the program closed its output before the reply was complete"
        );
    }

    #[test]
    fn a_restart_fails_the_request_being_answered_and_keeps_the_queue() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "crash", 1000, None), t0);
        ask(&mut m, &request("b", "1", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_restart();
        let reply = one_reply(&mut m);
        assert_eq!(reply.id, "a");
        assert_eq!(
            reply.message,
            "the program ended before the reply was complete"
        );
        assert_eq!(m.queued(), 1);
        m.handle_started(t0).unwrap();
        assert_eq!(send_next(&mut m, t0), b"1\n");
    }

    #[test]
    fn the_end_of_prog_fails_every_request_left() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "quit", 1000, None), t0);
        ask(&mut m, &request("b", "1", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_end(ExitStatus::from_code(0));
        let all: Vec<(String, String)> = replies(&mut m)
            .into_iter()
            .map(|d| (d.reply.id, d.reply.message))
            .collect();
        assert_eq!(
            all,
            [
                (
                    "a".to_string(),
                    "the program exited with code 0 before the reply was complete".to_string()
                ),
                (
                    "b".to_string(),
                    "the program exited with code 0".to_string()
                ),
            ]
        );
        assert_eq!(m.queued(), 0);
    }

    #[test]
    fn a_late_reply_cut_short_by_prog_ending_reaches_nobody() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "slow", 100, None), t0);
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 100 * MS);
        replies(&mut m);
        m.handle_restart();
        assert!(replies(&mut m).is_empty());
        assert_eq!(m.phase(), Phase::Idle);
    }

    #[test]
    fn the_dropping_ends_with_progs_output() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "slow", 100, None), t0);
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 100 * MS);
        replies(&mut m);
        assert!(!m.awaits_reply(), "no status is needed after a timeout");
        m.handle_output_end(None);
        assert!(replies(&mut m).is_empty());
        assert_eq!(m.phase(), Phase::Idle);
        assert_eq!(m.poll_timeout(), None);
        m.handle_end(ExitStatus::from_code(0));
        assert!(replies(&mut m).is_empty());
    }

    #[test]
    fn a_restart_puts_a_request_prog_never_got_back_first_and_drops_its_input() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "1", 1000, None), t0);
        assert!(m.next_input(true, t0));
        m.start_request(t0);
        assert_eq!(m.input(), b"1\n", "not written yet when PROG dies");
        m.handle_restart();
        assert!(replies(&mut m).is_empty(), "a was not answered wrong");
        assert!(
            m.input().is_empty(),
            "nothing left for the new PROG's greeting"
        );
        m.handle_started(t0).unwrap();
        assert_eq!(send_next(&mut m, t0), b"1\n", "the new PROG gets it once");
    }

    #[test]
    fn raw_input_left_unwritten_when_prog_ends_never_reaches_the_next_prog() {
        let (mut m, t0) = ready(Framing::Lines(1));
        m.handle_raw_input(b"for the old one\n");
        assert!(!m.next_input(true, t0));
        m.handle_restart();
        m.handle_started(t0).unwrap();
        assert!(m.input().is_empty());
    }

    #[test]
    fn input_is_written_in_pieces_and_the_request_counts_as_sent_when_all_went() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let long = "x".repeat(10_000);
        ask(&mut m, &request("a", &long, 1000, None), t0);
        assert!(m.next_input(true, t0));
        m.start_request(t0);
        m.input_written(4096);
        assert_eq!(
            m.input().len(),
            10_001 - 4096,
            "a partial write keeps the rest"
        );
        m.input_written(10_001 - 4096);
        assert!(m.input().is_empty());
        m.handle_restart();
        assert_eq!(
            one_reply(&mut m).error.as_deref(),
            Some(ENDED),
            "PROG had it all: it is not sent again"
        );
    }

    #[test]
    fn queued_requests_time_out_while_prog_greets_before_serve_is_ready() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Prompt("^> ".into()), 200 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        ask(&mut m, &request("a", "1", 100, None), t0);
        assert_eq!(m.poll_timeout(), Some(t0 + 100 * MS));
        m.handle_timeout(t0 + 100 * MS);
        assert!(
            one_reply(&mut m)
                .message
                .ends_with("the program has not finished its greeting")
        );
        assert_eq!(
            m.poll_timeout(),
            Some(t0 + 10_000 * MS),
            "nothing past due is left to spin on"
        );
    }

    #[test]
    fn the_settle_time_is_not_a_wake_up_once_progs_output_has_ended() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Lines(1), 200 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        m.handle_output_end(None);
        assert_eq!(
            m.poll_timeout(),
            Some(t0 + 10_000 * MS),
            "only the greeting's limit"
        );
    }

    #[test]
    fn a_huge_timeout_is_a_long_wait_not_a_panic() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "1", u64::MAX, None), t0);
        assert!(m.poll_timeout().is_some());
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 1000 * MS);
        assert!(replies(&mut m).is_empty());
    }

    #[test]
    fn a_send_is_acknowledged_once_all_of_its_lines_went_to_prog() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let mut r = request("s", "x=6\nx*7", 1000, None);
        r.raw = true;
        ask(&mut m, &r, t0);
        ask(&mut m, &request("a", "y", 1000, None), t0);
        assert!(m.next_input(true, t0));
        m.start_request(t0);
        assert_eq!(m.input(), b"x=6\nx*7\n");
        assert!(
            !m.next_input(true, t0),
            "the ask waits for the send's input"
        );
        m.input_written(4);
        assert!(replies(&mut m).is_empty(), "not all of it went");
        m.input_written(4);
        let reply = one_reply(&mut m);
        assert_eq!((reply.id.as_str(), reply.error), ("s", None));
        m.handle_output(b"42\n", t0);
        assert_eq!(drain_out(&mut m), b"42\n", "a send's output goes to out");
        assert_eq!(send_next(&mut m, t0), b"y\n");
    }

    #[test]
    fn a_send_that_never_reaches_prog_fails_when_prog_ends() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let mut r = request("s", "x=6", 1000, None);
        r.raw = true;
        ask(&mut m, &r, t0);
        assert!(m.next_input(true, t0));
        m.start_request(t0);
        m.handle_write_failed();
        m.handle_end(ExitStatus::from_code(0));
        let reply = one_reply(&mut m);
        assert_eq!(reply.error.as_deref(), Some(ENDED));
        assert_eq!(reply.message, "the program exited with code 0");
    }

    #[test]
    fn a_send_waits_its_turn_and_times_out_like_an_ask() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "x=6", 100, None), t0);
        send_next(&mut m, t0);
        let mut r = request("s", "y=1", 50, None);
        r.raw = true;
        ask(&mut m, &r, t0);
        m.handle_timeout(t0 + 50 * MS);
        let reply = one_reply(&mut m);
        assert_eq!(
            (reply.id.as_str(), reply.error.as_deref()),
            ("s", Some(TIMED_OUT))
        );
    }

    #[test]
    fn a_send_that_prog_does_not_read_in_time_times_out_and_the_next_ask_waits_its_turn() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let mut r = request("s", &"x".repeat(100_000), 100, None);
        r.raw = true;
        ask(&mut m, &r, t0);
        ask(&mut m, &request("a", "1", 200, None), t0);
        assert!(m.next_input(true, t0));
        m.start_request(t0);
        m.input_written(65_536);
        assert_eq!(m.poll_timeout(), Some(t0 + 100 * MS));
        m.handle_timeout(t0 + 100 * MS);
        let reply = one_reply(&mut m);
        assert_eq!(reply.error.as_deref(), Some(TIMED_OUT));
        assert_eq!(
            reply.message,
            "timed out after 100ms: the program has not read them (34465 bytes left)"
        );
        assert!(
            !m.next_input(true, t0),
            "the rest is still PROG's next input"
        );
        m.handle_timeout(t0 + 200 * MS);
        assert_eq!(one_reply(&mut m).id, "a");
    }

    #[test]
    fn a_stop_fails_the_reply_being_read_and_every_queued_request_naming_it() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "1", 1000, None), t0);
        ask(&mut m, &request("b", "2", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_stop();
        let all: Vec<(String, String)> = replies(&mut m)
            .into_iter()
            .map(|d| (d.reply.id, d.reply.message))
            .collect();
        assert_eq!(
            all,
            [
                (
                    "a".to_string(),
                    "the service was stopped (duet stop) before the reply was complete".to_string()
                ),
                (
                    "b".to_string(),
                    "the service was stopped (duet stop)".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_timeout_with_nothing_received_on_pipes_names_output_buffering() {
        let t0 = Instant::now();
        let mut c = config(Framing::Lines(1), Duration::ZERO);
        c.pty = false;
        c.program = "tr".into();
        let mut m = Requests::new(c).unwrap();
        m.handle_started(t0).unwrap();
        ask(&mut m, &request("a", "x", 100, None), t0);
        send_next(&mut m, t0);
        m.handle_timeout(t0 + 100 * MS);
        assert_eq!(
            one_reply(&mut m).message,
            "timed out after 100ms waiting for a reply line; tr may be buffering its output on a \
             pipe: run it on a terminal with --pty, or line-buffered with `stdbuf -oL tr`"
        );
    }

    #[test]
    fn a_reply_over_the_limit_fails_and_the_rest_is_dropped_until_quiet() {
        let (mut m, t0) = ready(Framing::Until("^never$".into()));
        ask(&mut m, &request("a", "yes", 60_000, None), t0);
        send_next(&mut m, t0);
        let flood = b"y\n".repeat(1 << 16);
        for i in 0..9 {
            m.handle_output(&flood, t0 + i * MS);
        }
        let reply = one_reply(&mut m);
        assert_eq!(reply.error.as_deref(), Some(TOO_LONG));
        assert_eq!(reply.output.len(), PREVIEW_KEPT);
        assert_eq!(m.phase(), Phase::Late, "the flood goes on and is dropped");
        m.handle_output(&flood, t0 + 10 * MS);
        assert!(replies(&mut m).is_empty());
        m.handle_timeout(t0 + 210 * MS);
        assert_eq!(m.phase(), Phase::Idle);
    }

    #[test]
    fn a_flooding_greeting_keeps_only_its_end() {
        let t0 = Instant::now();
        let mut m = Requests::new(config(Framing::Lines(1), 200 * MS)).unwrap();
        m.handle_started(t0).unwrap();
        for _ in 0..100 {
            m.handle_output(&[b'y'; 1 << 16], t0);
        }
        assert!(matches!(&m.greeting, Some(g) if g.seen.len() == PREVIEW_KEPT));
    }

    #[test]
    fn bytes_that_are_not_utf8_pass_exactly_both_ways() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let mut r = request("a", "", 1000, None);
        r.set_line(b"caf\xe9");
        ask(&mut m, &r, t0);
        assert_eq!(send_next(&mut m, t0), b"caf\xe9\n");
        m.handle_output(b"\xff\xfe\n", t0);
        let reply = one_reply(&mut m);
        assert_eq!(reply.output_bytes(), b"\xff\xfe\n");
    }

    #[test]
    fn a_failed_write_puts_the_request_back_first_with_its_deadline() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(&mut m, &request("a", "1", 100, None), t0);
        ask(&mut m, &request("b", "2", 1000, None), t0);
        send_next(&mut m, t0);
        m.handle_write_failed();
        assert_eq!(m.phase(), Phase::Idle);
        assert_eq!(m.queued(), 2);
        assert_eq!(
            m.poll_timeout(),
            Some(t0 + 100 * MS),
            "a's deadline is kept"
        );
        assert_eq!(send_next(&mut m, t0), b"1\n", "a goes first again");
    }

    #[test]
    fn a_request_whose_framing_cannot_be_used_is_answered_bad_request() {
        let (mut m, t0) = ready(Framing::Lines(1));
        ask(
            &mut m,
            &request("a", "1", 1000, Some(Framing::Until("(".into()))),
            t0,
        );
        send_next(&mut m, t0);
        let reply = one_reply(&mut m);
        assert_eq!(reply.error.as_deref(), Some(BAD_REQUEST));
        assert!(reply.message.contains("bad regex"), "{}", reply.message);
        assert!(!m.pending_input(), "nothing went to PROG");
        assert_eq!(m.phase(), Phase::Idle);
    }

    #[test]
    fn a_client_that_reuses_its_fifo_keeps_it() {
        let (mut m, t0) = ready(Framing::Lines(1));
        let mut r = request("a", "1", 1000, None);
        r.keep_fifo = true;
        ask(&mut m, &r, t0);
        send_next(&mut m, t0);
        m.handle_output(b"1\n", t0);
        assert!(replies(&mut m)[0].keep_fifo);
    }

    #[test]
    fn output_nobody_reads_keeps_only_the_newest_backlog() {
        let (mut m, t0) = ready(Framing::Lines(1));
        m.handle_output(b"old", t0);
        m.handle_output(&vec![b'n'; OUT_BACKLOG], t0);
        let out = drain_out(&mut m);
        assert_eq!(out.len(), OUT_BACKLOG);
        assert!(out.iter().all(|&b| b == b'n'), "the oldest bytes went");
    }

    #[test]
    fn the_wake_up_is_the_earliest_deadline_of_all() {
        let (mut m, t0) = ready(Framing::Lines(1));
        assert_eq!(m.poll_timeout(), None, "an idle machine waits for input");
        ask(&mut m, &request("a", "1", 1000, None), t0);
        send_next(&mut m, t0);
        ask(&mut m, &request("b", "2", 300, None), t0 + 100 * MS);
        assert_eq!(m.poll_timeout(), Some(t0 + 400 * MS), "b's deadline");
    }
}
