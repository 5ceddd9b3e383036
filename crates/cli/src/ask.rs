//! `duet ask DIR LINE...`: send requests to a served PROG and print the
//! replies, in order; `duet ask DIR -` reads the request lines from stdin.
//! See [`crate::serve::protocol`] for why concurrent, killed and timed-out clients
//! never get each other's replies.
//!
//! One `ask` is one client: it takes the lock once, for all of its
//! requests, and sends each only when the reply to the one before is in.
//! The first request that fails (a timeout, PROG's end) ends it with that
//! error; the requests after it are not sent. With `--json`, every request
//! gets one JSON object on its own line, failures too, and the requests
//! after a failed one are still sent (the exit status is the first
//! failure's).
//!
//! Requests and replies are bytes: a LINE (or a line of stdin) that is not
//! UTF-8 reaches PROG as it is, and so does its reply on stdout.

use std::ffi::OsString;
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use duet::fifo::{Access, Fifo, FifoDir};
use duet_script::duration;
use nix::poll::PollFlags;
use serde::Serialize;

use crate::args::parse_duration;
use crate::exit::Failure;
use crate::framing::{Framing, FramingArgs, Printer};
use crate::serve::protocol::{self, CTL, REPLY_PREFIX, Reply, Request};
use crate::serve::timers;

/// Send each LINE to the program served in DIR and print the replies.
#[derive(Debug, Args)]
#[command(after_help = "\
Without a framing option a reply is framed as `duet serve` was told (one
line unless it was given --lines, --until, --quiet or --prompt). A LINE
that starts with '-' goes after '--'.

Examples:
  duet ask /tmp/calc '2+2'
  duet ask /tmp/calc 'x=6' 'x*7' --quiet 200ms
  printf '1+1\\n2*3\\n' | duet ask /tmp/calc -
  duet ask /tmp/py --prompt '^>>> ' 'print(6*7)'
  duet ask /tmp/gdb -- '-data-evaluate-expression 6*7'
  duet ask --json /tmp/calc 'x=5' 'x' '1/0'")]
pub struct AskArgs {
    /// The served directory.
    dir: PathBuf,
    /// The requests, one line each; `-` alone: the lines of stdin.
    #[arg(required = true, value_name = "LINE")]
    requests: Vec<OsString>,
    #[command(flatten)]
    framing: FramingArgs,
    /// The limit for each reply (and, again, for the lock).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// One JSON object per request and line, failures included:
    /// {"request": "...", "reply": "...", "ok": true}, or "ok": false with
    /// "error" and what arrived as "partial"; every request is sent.
    #[arg(long)]
    json: bool,
}

/// How much longer than the reply's timeout a client waits for serve's
/// answer (serve always answers, with an error at the latest at the timeout).
const SERVE_SLACK: Duration = Duration::from_secs(2);

/// Runs `duet ask`.
pub fn run(args: AskArgs) -> Result<ExitCode, Failure> {
    let framing = args.framing.given().map_err(|e| Failure::new(2, e))?;
    let from_stdin = args.requests == ["-"];
    if !from_stdin {
        if args.requests.iter().any(|l| l == "-") {
            return Err(Failure::new(
                2,
                "`-` (requests from stdin) must be the only LINE",
            ));
        }
        if args.requests.iter().any(|l| l.as_bytes().contains(&b'\n')) {
            return Err(Failure::new(2, "each LINE must be one line (no newline)"));
        }
    }
    let dir = protocol::open_dir(&args.dir)?;
    let _lock = protocol::lock_asks(&dir, args.timeout)
        .map_err(|e| protocol::explain_stop(&dir, &args.dir, e))?;
    let mut client = Client::open(&dir, &args.dir, args.timeout, framing)?;
    let mut asker = Asker {
        json: args.json,
        first_failure: None,
        out: Printer::new(io::stdout().lock()),
    };
    let result = if from_stdin {
        let stdin = io::stdin();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = stdin
                .lock()
                .read_until(b'\n', &mut line)
                .map_err(|e| Failure::internal(format!("cannot read stdin: {e}")))?;
            if n == 0 {
                break Ok(());
            }
            let end = line.len()
                - line
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
            if let Err(e) = asker.ask(&mut client, &line[..end], true) {
                break Err(e);
            }
        }
    } else {
        let last = args.requests.len() - 1;
        args.requests
            .iter()
            .enumerate()
            .try_for_each(|(i, line)| asker.ask(&mut client, line.as_bytes(), i < last))
    };
    drop(client);
    result?;
    match asker.first_failure {
        Some(code) => Err(Failure::quiet(code)),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Prints replies as text or as JSON lines.
struct Asker {
    json: bool,
    /// With `--json`: the exit code of the first request that failed.
    first_failure: Option<u8>,
    out: Printer<io::StdoutLock<'static>>,
}

/// One line of `ask --json`.
#[derive(Serialize)]
struct JsonReply {
    request: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<String>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partial: Option<String>,
}

impl Asker {
    /// Asks `line` and prints its reply (or, with `--json`, its failure).
    fn ask(&mut self, client: &mut Client, line: &[u8], more: bool) -> Result<(), Failure> {
        let outcome = client.request(line, more, false);
        if !self.json {
            let reply = outcome?;
            let lines = client.reply_is_lines(&reply);
            reply_failure(&reply).map_or(Ok(()), Err)?;
            return self
                .out
                .write(reply.output_bytes())
                .and_then(|()| self.out.end(lines))
                .map_err(Failure::stdout);
        }
        let request = String::from_utf8_lossy(line).into_owned();
        let (object, failure, fatal) = match outcome {
            Ok(reply) => {
                let text = printed(reply.output_bytes(), client.reply_is_lines(&reply));
                match reply_failure(&reply) {
                    None => (
                        JsonReply {
                            request,
                            reply: Some(text),
                            ok: true,
                            error: None,
                            partial: None,
                        },
                        None,
                        false,
                    ),
                    Some(f) => (
                        JsonReply {
                            request,
                            reply: None,
                            ok: false,
                            error: Some(reply.message.clone()),
                            partial: Some(text),
                        },
                        Some(f.code),
                        false,
                    ),
                }
            }
            Err(f) => (
                JsonReply {
                    request,
                    reply: None,
                    ok: false,
                    error: Some(f.message.clone()),
                    partial: Some(String::new()),
                },
                Some(f.code),
                true,
            ),
        };
        let mut text = serde_json::to_vec(&object).map_err(Failure::internal)?;
        text.push(b'\n');
        self.out
            .write(&text)
            .and_then(|()| self.out.end(false))
            .map_err(Failure::stdout)?;
        if let Some(code) = failure {
            self.first_failure.get_or_insert(code);
            if fatal {
                // The service cannot be reached: the rest would fail alike.
                return Err(Failure::quiet(code));
            }
        }
        Ok(())
    }
}

/// The failure a reply reports, if any: 124 for a timeout, else 1.
fn reply_failure(reply: &Reply) -> Option<Failure> {
    let output = String::from_utf8_lossy(reply.output_bytes());
    match reply.error.as_deref() {
        None => None,
        Some(protocol::TIMED_OUT) => Some(Failure::new(
            crate::exit::TIMEOUT,
            if output.is_empty() {
                format!("{}; nothing arrived", reply.message)
            } else {
                format!("{}; received {output:?}", reply.message)
            },
        )),
        Some(_) => Some(Failure::new(1, reply.message.clone())),
    }
}

/// A reply as `ask` prints it (pty line ends made `\n`), without the line
/// end of its last line, for JSON.
fn printed(bytes: &[u8], lines: bool) -> String {
    let mut printer = Printer::new(Vec::new());
    let _ = printer.write(bytes).and_then(|()| printer.end(lines));
    let mut text = printer.into_inner();
    if text.last() == Some(&b'\n') {
        text.pop();
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// One client of a served directory: its reply FIFO and its requests
/// (`ask`'s, and `send`'s raw lines).
pub struct Client<'a> {
    dir: &'a FifoDir,
    path: &'a Path,
    name: String,
    reply_end: std::fs::File,
    /// The reply FIFO, removed when the client is dropped.
    _fifo: Fifo,
    timeout: Duration,
    framing: Option<Framing>,
    sent: u64,
    /// Reply bytes read past the last reply line.
    buf: Vec<u8>,
}

impl<'a> Client<'a> {
    /// A client of `dir` (as given: `path`) whose requests wait at most
    /// `timeout` and are framed by `framing` (serve's own when `None`).
    pub fn open(
        dir: &'a FifoDir,
        path: &'a Path,
        timeout: Duration,
        framing: Option<Framing>,
    ) -> Result<Client<'a>, Failure> {
        // The private reply FIFO; a leftover of the same name (a dead client
        // whose pid we now have) is replaced, and ids tell replies apart.
        let name = format!("{REPLY_PREFIX}{}", std::process::id());
        let fail = |e: duet::Error| protocol::explain_stop(dir, path, Failure::internal(e));
        dir.remove_entry(&name).map_err(fail)?;
        let reply_fifo = dir.create_fifo(&name).map_err(fail)?;
        let reply_end = reply_fifo.open(Access::ReadWrite, true).map_err(fail)?;
        Ok(Client {
            dir,
            path,
            name,
            reply_end,
            _fifo: reply_fifo,
            timeout,
            framing,
            sent: 0,
            buf: Vec::new(),
        })
    }

    /// True when `reply` is framed in lines (its last line gets a `\n`).
    fn reply_is_lines(&self, reply: &Reply) -> bool {
        reply
            .framing
            .as_ref()
            .or(self.framing.as_ref())
            .is_none_or(Framing::is_lines)
    }

    /// Sends one request (`raw`: `send`'s lines) and returns serve's
    /// reply, which may report a failure. Unless `more` follow, serve
    /// removes the reply FIFO after the reply (as it must for a client
    /// that was killed meanwhile).
    pub fn request(&mut self, line: &[u8], more: bool, raw: bool) -> Result<Reply, Failure> {
        self.sent += 1;
        let id = format!("{}-{}-{}", std::process::id(), unique(), self.sent);
        let mut request = Request {
            id: id.clone(),
            line: String::new(),
            framing: self.framing.clone(),
            timeout_ms: self.timeout.as_millis().min(u64::MAX as u128) as u64,
            reply: self.name.clone(),
            keep_fifo: more,
            bytes: None,
            raw,
        };
        request.set_line(line);
        let mut ctl = self
            .dir
            .existing_fifo(CTL)
            .and_then(|f| f.open(Access::Write, true))
            .map_err(|e| {
                protocol::explain_stop(self.dir, self.path, protocol::not_served(self.path, e))
            })?;
        let mut bytes = serde_json::to_vec(&request).map_err(Failure::internal)?;
        bytes.push(b'\n');
        let deadline = timers::after(Instant::now(), self.timeout.saturating_add(SERVE_SLACK));
        protocol::write_all_until(&mut ctl, &bytes, deadline)
            .map_err(|e| Failure::internal(format!("cannot send the request: {e}")))?;
        drop(ctl);

        read_reply(&mut self.reply_end, &mut self.buf, &id, deadline).map_err(|e| match e {
            None => protocol::explain_stop(
                self.dir,
                self.path,
                Failure::new(
                    crate::exit::TIMEOUT,
                    format!(
                        "no answer from the serve of {} within {}; is it stuck? see {}/log",
                        self.path.display(),
                        duration::show(self.timeout.saturating_add(SERVE_SLACK)),
                        self.path.display()
                    ),
                ),
            ),
            Some(e) => Failure::internal(format!("cannot read the reply: {e}")),
        })
    }
}

/// A counter that makes ids unique within this process and across runs.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Reads reply lines until the one for `id`. `Err(None)`: the deadline passed.
fn read_reply(
    end: &mut std::fs::File,
    buf: &mut Vec<u8>,
    id: &str,
    deadline: Instant,
) -> Result<Reply, Option<io::Error>> {
    let mut chunk = [0u8; 8192];
    loop {
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            match serde_json::from_slice::<Reply>(&line) {
                Ok(reply) if reply.id == id => return Ok(reply),
                Ok(reply) => log::info!("ask: ignoring a reply for {}", reply.id),
                Err(e) => log::warn!("ask: ignoring a malformed reply ({e})"),
            }
        }
        match end.read(&mut chunk) {
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !protocol::wait_for(end, PollFlags::POLLIN, deadline).map_err(Some)? {
                    return Err(None);
                }
            }
            Err(e) => return Err(Some(e)),
        }
    }
}
