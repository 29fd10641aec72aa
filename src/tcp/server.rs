//! The TCP server of lessons 03 and 04: accept in a loop, one thread per client, reply to each message.
//!
//! The notes' multi-client server is: `bind` → `listen(128)` → loop { `accept` →
//! start a daemon thread running `handle_request(client)` }. This module is the same
//! shape, with what a real server needs on top:
//! - a cap on clients (`--max-clients`); one too many is told so and closed, never left
//!   waiting in the backlog forever;
//! - a clean stop on Ctrl-C: stop accepting, shut every client socket down (which wakes
//!   its thread from `recv`), wait for the threads, print a summary;
//! - a client that sends nothing, sends garbage or vanishes mid-message only ever
//!   affects its own thread;
//! - no client can take what the others need: a client silent for `--idle-timeout`
//!   (300 s) is told so and closed; the memory held for unfinished
//!   `--framing line`/`len` messages of all clients together is held to
//!   `--max-buffered` (256 MiB, so twenty clients each half-way through a
//!   16 MiB frame cannot take 340 MB). Half of it is shared out in advance:
//!   each client may hold `max_buffered / 2 / max_clients` (128 KiB at the
//!   defaults) of its own, and only what it holds beyond that comes from the
//!   other half, a pool. The client whose bytes would overfill the pool is the
//!   one disconnected, so clients with small messages are never cut off
//!   because others hold big unfinished ones; an
//!   optional `--max-per-client` caps connections from one IP address; and
//!   `--max-clients` is lowered at start to what the descriptor limit
//!   (`RLIMIT_NOFILE`, raised to its hard limit by the binary) can really hold,
//!   so one client too many is told `server busy` instead of stalling `accept`;
//! - nothing received is lost silently: when stdout cannot be written (a full
//!   disk under `--raw > file`), the server disconnects the client, stops and
//!   returns a [`StdoutError`], which the binary reports with exit code 1. A
//!   closed pipe (`| head`) stops it the same way, and the binary exits 0 quietly.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::addr::{describe_io, display_addr};
use crate::codec::Encoding;
use crate::error::{Blame, UsageError};
use crate::framing::{DEFAULT_MAX_FRAME, Deframer, Framing, encode_frame};
use crate::message::{Echo, Incoming, Outgoing, Reply, SendOptions, Show, read_chunk};
use crate::net::{Places, Slot};
use crate::output::{Io, Log, Output, StdoutError, Timestamps};
use crate::shutdown::Shutdown;

/// How the server behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// What goes back after each message (`--echo`, `--reply`; nothing with
    /// `--raw`, `--sink` or `--stdin`).
    pub reply: Reply,
    /// `--sink`: read, count and discard; nothing shown, nothing sent (the bytes
    /// never leave the kernel).
    pub sink: bool,
    /// Serve one client, then exit.
    pub once: bool,
    /// Most clients served at once.
    pub max_clients: usize,
    /// How the stream is cut into messages.
    pub framing: Framing,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// How received messages are printed.
    pub show: Show,
    /// `--timestamps`: the time before each message printed.
    pub stamps: Option<Timestamps>,
    /// The encoding clients send in (`--recv-encoding`). When it is not
    /// `send.encoding`, the echo sends back the text, re-encoded ([`Echo`]).
    pub recv_encoding: &'static Encoding,
    /// How reply text and stdin lines are encoded.
    pub send: SendOptions,
    /// Most bytes held for unfinished line and len frames, all clients together
    /// (`--max-buffered`): each client's own share of half of it, the rest a
    /// pool; a client that would overfill the pool is disconnected.
    pub max_buffered: usize,
    /// Close a client that has sent nothing for this long (`--idle-timeout`;
    /// None: never). With `--stdin`, lines sent to it count as activity too.
    pub idle_timeout: Option<Duration>,
    /// Most connections from one IP address at once (`--max-per-client`; None:
    /// no limit, since a classroom behind one NAT shares one address).
    pub max_per_client: Option<usize>,
    /// The descriptors this process may open (`RLIMIT_NOFILE`): when given,
    /// `max_clients` is lowered to what fits, with one warning.
    pub fd_limit: Option<u64>,
}

/// Default for `--max-buffered`: 256 MiB. Half is the 128 KiB each of 1024
/// clients always has; the shared half holds eight frames of the default
/// `--max-frame` (16 MiB) beyond those shares.
pub const DEFAULT_MAX_BUFFERED: usize = 256 * 1024 * 1024;

/// Default for `--idle-timeout`: a few minutes, far longer than anyone typing
/// takes, short enough that abandoned connections do not pile up.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Config {
    fn default() -> Self {
        Config {
            reply: Reply::Echo,
            sink: false,
            once: false,
            max_clients: 1024,
            framing: Framing::Raw,
            max_frame: DEFAULT_MAX_FRAME,
            show: Show::Text(encoding_rs::UTF_8),
            stamps: None,
            recv_encoding: encoding_rs::UTF_8,
            send: SendOptions::default(),
            max_buffered: DEFAULT_MAX_BUFFERED,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_per_client: None,
            fd_limit: None,
        }
    }
}

/// Descriptors each client holds: its socket, and the copy that lets Ctrl-C
/// wake its thread.
const FDS_PER_CLIENT: u64 = 2;
/// `--sink` splices each client's stream through a pipe (2) into /dev/null (1).
const FDS_PER_SINK: u64 = 3;
/// Descriptors besides the clients': stdin, stdout, stderr, the listening
/// socket and its waker's copy, the one being refused, and some to spare.
const FD_HEADROOM: u64 = 16;

/// The `--max-clients` that `fd_limit` descriptors can hold: one more client
/// than fits would make `accept` fail with "too many open files", and every
/// newcomer would wait in the backlog unanswered instead of being told
/// `server busy`. At least 1.
pub(crate) fn fit_max_clients(cfg: &Config, fd_limit: u64) -> usize {
    let room = fd_limit.saturating_sub(FD_HEADROOM) / fds_per_client(cfg);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(1, cfg.max_clients.max(1))
}

fn fds_per_client(cfg: &Config) -> u64 {
    if cfg.sink {
        FDS_PER_CLIENT + FDS_PER_SINK
    } else {
        FDS_PER_CLIENT
    }
}

/// Totals printed when the server stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Clients served (refused ones not counted).
    pub clients: u64,
    /// Bytes received from all clients.
    pub bytes_in: u64,
    /// Bytes sent to all clients.
    pub bytes_out: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "served {} client{}, {} bytes in, {} bytes out",
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            self.bytes_in,
            self.bytes_out
        )
    }
}

/// The most a client's printing buffer keeps between messages.
const PRINTED_KEEP: usize = 64 * 1024;

/// Each client thread's stack. Our per-client code keeps its buffers on the heap,
/// so a small stack is plenty, and 1000 clients cost 1000 × this in address space
/// rather than 1000 × 2 MiB (Rust's default).
const CLIENT_STACK: usize = 256 * 1024;

/// Reads start small (most messages are tiny, and 1000 idle clients should not pin
/// 1000 large buffers) and grow while reads keep filling the buffer (bulk data).
const FIRST_READ: usize = 4 * 1024;
const MAX_READ: usize = 256 * 1024;

#[derive(Default)]
struct Counters {
    clients: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// `--max-clients` places.
    active: Places,
}

impl Counters {
    fn summary(&self) -> Summary {
        Summary {
            clients: self.clients.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Everything a client thread needs, shared.
struct Ctx {
    cfg: Config,
    out: Output,
    log: Log,
    shutdown: Shutdown,
    counters: Counters,
    /// How `--max-buffered` is split, for the `max_clients` actually served.
    budget: Budget,
    /// Bytes of unfinished frames held by all clients beyond their own share
    /// (the pool of `--max-buffered`).
    buffered: AtomicUsize,
    /// Connections per client address (`--max-per-client`).
    per_ip: PerIp,
    /// Why stdout could not be written, the first time it could not: the
    /// server stops, and [`serve`] returns it.
    out_failed: Mutex<Option<io::Error>>,
    /// "Too many open files" has been reported (it is said once, not per accept).
    warned_fds: AtomicBool,
}

impl Ctx {
    /// Nothing served yet; `--max-buffered` split for `cfg.max_clients`.
    fn new(cfg: Config, out: Output, log: Log, shutdown: &Shutdown) -> Self {
        Ctx {
            budget: Budget::new(cfg.max_buffered, cfg.max_clients),
            cfg,
            out,
            log,
            shutdown: shutdown.clone(),
            counters: Counters::default(),
            buffered: AtomicUsize::new(0),
            per_ip: PerIp::default(),
            out_failed: Mutex::new(None),
            warned_fds: AtomicBool::new(false),
        }
    }

    /// Stdout could not be written: remember the first reason, stop the server
    /// (the next message would be lost just the same), and return the reason to
    /// log for the client whose message was not written.
    fn output_failed(&self, e: io::Error) -> String {
        let err = StdoutError(e);
        let why = err.to_string();
        let e = err.0;
        let mut first = lock(&self.out_failed);
        if first.is_none() {
            // Whoever reads our stdout has had enough (`tcp-server | head`): not an
            // error, but say once why the server stops.
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.log
                    .info(format_args!("stdout was closed (broken pipe): stopping"));
            }
            *first = Some(e);
        }
        drop(first);
        self.shutdown.trigger();
        why
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connections per client IP address, for `--max-per-client`.
#[derive(Default, Clone)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerIp {
    /// A place for one more connection from `ip`, or None if it has `max` already.
    fn claim(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        // `::ffff:127.0.0.1` on a dual-stack socket is the same host as 127.0.0.1.
        let ip = ip.to_canonical();
        let mut map = lock(&self.0);
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
        })
    }
}

/// One connection counted against its address; uncounted when dropped.
struct IpSlot {
    per_ip: PerIp,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.per_ip.0);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            // Forget addresses with no connection, or the map grows with every
            // client that ever came.
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// How `--max-buffered` is split: a share each client may always hold, and a
/// pool for what clients hold beyond their share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    /// `--max-buffered`, for messages.
    max: usize,
    /// What each client holds without touching the pool.
    share: usize,
    /// The most all clients together hold beyond their shares.
    pool: usize,
}

impl Budget {
    /// Half of `max_buffered` is shared out among `max_clients` in advance, so a
    /// client with small messages needs nothing from the pool and cannot be cut
    /// off because others filled it; the other half (and what the division
    /// leaves) is the pool, so the total never passes `max_buffered`.
    fn new(max_buffered: usize, max_clients: usize) -> Self {
        let clients = max_clients.max(1);
        let share = max_buffered / 2 / clients;
        Budget {
            max: max_buffered,
            share,
            pool: max_buffered - share * clients,
        }
    }
}

/// The bytes one client holds of `--max-buffered`; what is beyond its share is
/// taken from the pool, and handed back when dropped, on every path out of its
/// thread.
struct Held<'a> {
    pool: &'a AtomicUsize,
    budget: Budget,
    bytes: usize,
}

impl Held<'_> {
    /// Hold `want` bytes in all (more or fewer than now). False, holding what
    /// it held, if its bytes beyond its share would overfill the pool.
    fn set(&mut self, want: usize) -> bool {
        let now = self.bytes.saturating_sub(self.budget.share);
        let then = want.saturating_sub(self.budget.share);
        if then > now {
            let more = then - now;
            let fits = self
                .pool
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                    t.checked_add(more).filter(|&t| t <= self.budget.pool)
                })
                .is_ok();
            if !fits {
                return false;
            }
        } else {
            self.pool.fetch_sub(now - then, Ordering::SeqCst);
        }
        self.bytes = want;
        true
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let beyond = self.bytes.saturating_sub(self.budget.share);
        self.pool.fetch_sub(beyond, Ordering::SeqCst);
    }
}

/// A one-line notice for a client, in its framing: a len frame under
/// `--framing len` (a plain line there would be read as a bogus length), a
/// line otherwise.
fn notice(framing: Framing, text: &str) -> Vec<u8> {
    match framing {
        Framing::Len => encode_frame(Framing::Len, text.as_bytes()).unwrap_or_default(),
        Framing::Raw | Framing::Line => format!("{text}\n").into_bytes(),
    }
}

/// Tell a client why it is closed. Best effort and brief: a client that does
/// not read must not hold its thread.
fn tell(stream: &TcpStream, framing: Framing, text: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = (&mut &*stream).write_all(&notice(framing, text));
}

/// Did this read or splice end because `SO_RCVTIMEO` (the idle timeout) expired?
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What stops [`serve`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--reply` text that `--strict-encoding` refuses.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Stdout could not be written: the server stopped rather than lose what arrives.
    #[error(transparent)]
    Stdout(#[from] StdoutError),
    /// The listening socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Blame for Error {
    fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }
}

/// Run a server on `listener` until `--once` is done or `shutdown` is triggered.
///
/// Prints `listening on ADDR` first (scripts and tests wait for that line), then
/// serves; returns the totals, which it has also logged. If stdout could not be
/// written, the server stops with [`Error::Stdout`].
pub fn serve(
    listener: TcpListener,
    cfg: &Config,
    io: Io,
    shutdown: &Shutdown,
) -> Result<Summary, Error> {
    let Io { out, log, stdin } = io;
    let local = listener.local_addr()?;
    check_reply_text(cfg, &log)?;
    let mut cfg = cfg.clone();
    log.always(format_args!("listening on {local}"));
    // Only the accept loop serves clients side by side; --once and --stdin serve one.
    if let Some(limit) = cfg.fd_limit
        && !cfg.once
        && stdin.is_none()
    {
        let fit = fit_max_clients(&cfg, limit);
        if fit < cfg.max_clients {
            log.warn(format_args!(
                "--max-clients lowered from {} to {fit}: this process may open {limit} file descriptors and each client needs {} (raise the limit with `ulimit -n`)",
                cfg.max_clients,
                fds_per_client(&cfg),
            ));
            cfg.max_clients = fit;
        }
    }
    let ctx = Arc::new(Ctx::new(cfg, out, log, shutdown));
    let wake = shutdown.wake_listener(&listener)?;
    if let Some(stdin) = stdin {
        serve_stdin(&listener, &ctx, stdin);
    } else if ctx.cfg.once {
        // Lesson 03: one client, then the server closes. The listening socket
        // closes first (with the waker's copy of it), so a second client is refused
        // at once instead of waiting in the backlog for an accept that never comes.
        if let Some((stream, peer)) = accept_next(&listener, &ctx) {
            drop(wake);
            drop(listener);
            serve_alone(stream, peer, &ctx, None);
        }
    } else {
        accept_loop(&listener, &ctx);
    }
    let summary = ctx.counters.summary();
    ctx.log.info(format_args!("{summary}"));
    match lock(&ctx.out_failed).take() {
        Some(e) => Err(StdoutError(e).into()),
        None => Ok(summary),
    }
}

/// Refuse (`--strict-encoding`) or warn about a `--reply` text the send encoding
/// cannot represent, once, before any client connects.
fn check_reply_text(cfg: &Config, log: &Log) -> Result<(), UsageError> {
    if let Reply::Text(text) = &cfg.reply {
        let wire = Outgoing::new(cfg.send)
            .message(text)
            .map_err(|e| UsageError(format!("--reply: {e}")))?;
        if let Some(w) = wire.warning(cfg.send.encoding) {
            log.warn(format_args!("--reply: {w}"));
        }
    }
    Ok(())
}

/// The next client, or None once a stop is asked for.
fn accept_next(listener: &TcpListener, ctx: &Ctx) -> Option<(TcpStream, SocketAddr)> {
    let mut pause = Duration::from_millis(100);
    loop {
        match listener.accept() {
            Ok(pair) => return Some(pair),
            Err(_) if ctx.shutdown.is_triggered() => return None,
            Err(e) if crate::sys::out_of_descriptors(&e) => {
                // Retrying at once would fail the same way, thousands of times a
                // second; only a client leaving frees a descriptor. Wait longer
                // while it lasts, and say so once, not once per failure.
                if !ctx.warned_fds.swap(true, Ordering::SeqCst) {
                    ctx.log.warn(format_args!(
                        "accept failed: {}; new clients wait until others leave (lower --max-clients, or raise the limit with `ulimit -n`; not repeated)",
                        describe_io(&e)
                    ));
                }
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                ctx.log
                    .warn(format_args!("accept failed: {}", describe_io(&e)));
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn accept_loop(listener: &TcpListener, ctx: &Arc<Ctx>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !ctx.shutdown.is_triggered() {
        let Some((stream, peer)) = accept_next(listener, ctx) else {
            break;
        };
        let max = ctx.cfg.max_clients;
        if ctx.counters.active.taken() >= max {
            refuse(
                stream,
                peer,
                ctx,
                &format!("already serving {max} clients (--max-clients)"),
                &format!("server busy: {max} clients connected, try again later"),
            );
            continue;
        }
        let ip_slot = match ctx.cfg.max_per_client {
            None => None,
            Some(max) => match ctx.per_ip.claim(peer.ip(), max) {
                Some(s) => Some(s),
                None => {
                    refuse(
                        stream,
                        peer,
                        ctx,
                        &format!("already {max} connections from this address (--max-per-client)"),
                        &format!(
                            "server busy: {max} connections from your address already, close one and try again"
                        ),
                    );
                    continue;
                }
            },
        };
        // Claimed here, on the accepting thread, so check and claim cannot race.
        // If the thread cannot start, the closure and its slots are dropped: freed.
        let slot = ctx.counters.active.claim();
        let c = ctx.clone();
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .stack_size(CLIENT_STACK)
            .spawn(move || handle_client(stream, peer, &c, (slot, ip_slot), None));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                ctx.log.warn(format_args!(
                    "{}: cannot start a thread ({e}); connection dropped",
                    display_addr(&peer)
                ));
            }
        }
        threads.retain(|t| !t.is_finished());
    }
    // Stopping: wake every client thread (shut its socket down) and wait for it.
    ctx.shutdown.trigger();
    for t in threads {
        let _ = t.join();
    }
}

/// One client too many: say so and close, rather than let it wait unanswered.
/// `why` goes to the log, `text` to the client.
fn refuse(stream: TcpStream, peer: SocketAddr, ctx: &Ctx, why: &str, text: &str) {
    ctx.log
        .warn(format_args!("{} refused: {why}", display_addr(&peer)));
    tell(&stream, ctx.cfg.framing, text);
}

/// The state of one connection, as its thread sees it.
struct Conn<'a> {
    ctx: &'a Ctx,
    stream: &'a TcpStream,
    name: String,
    incoming: Incoming,
    reply: Option<Vec<u8>>,
    /// Why replying stopped, if it did.
    send_failed: Option<String>,
    printed: Vec<u8>,
    bytes_in: u64,
    bytes_out: u64,
    /// This client's share of `--max-buffered`.
    held: Held<'a>,
    /// With `--stdin`: what is sent to the client, which counts as activity.
    stdin: Option<&'a StdinTarget>,
    /// The echo, when it re-encodes text (two encodings); None: bytes back.
    echo: Option<Echo>,
    /// A substituted character in an echo has been reported.
    warned_echo: bool,
}

impl Conn<'_> {
    /// Show one message and answer it. A reply that cannot be sent (the client
    /// left) ends replying, not reading: messages that already arrived are still
    /// shown, never lost. A message that cannot be shown ends the connection.
    fn message(&mut self, payload: &[u8], wire: &[u8], framed: bool) -> Result<(), String> {
        self.printed.clear();
        self.incoming.render(payload, framed, &mut self.printed);
        self.print()?;
        if self.send_failed.is_some() {
            return Ok(());
        }
        let sent = match &self.ctx.cfg.reply {
            Reply::Echo if self.echo.is_some() => match self.transcoded(payload, wire, framed) {
                Some(bytes) => self.send(&bytes),
                None => Ok(()),
            },
            Reply::Echo => self.send(wire),
            Reply::Text(_) => {
                let reply = self.reply.take().unwrap_or_default();
                let sent = self.send(&reply);
                self.reply = Some(reply);
                sent
            }
            Reply::Nothing => Ok(()),
        };
        if let Err(e) = sent {
            self.send_failed = Some(describe_io(&e));
        }
        Ok(())
    }

    /// The echo of a message as text in the send encoding, framed as it came;
    /// None (and a warning) when it cannot be (`--strict-encoding`).
    fn transcoded(&mut self, payload: &[u8], wire: &[u8], framed: bool) -> Option<Vec<u8>> {
        let echo = self.echo.as_mut()?;
        let converted = if framed {
            echo.message(payload)
        } else {
            echo.read(payload)
        };
        let log = &self.ctx.log;
        let w = match converted {
            Ok(w) => w,
            Err(e) => {
                log.warn(format_args!("{}: not echoed: {e}", self.name));
                return None;
            }
        };
        if let Some(text) = w.warning(self.ctx.cfg.send.encoding)
            && !std::mem::replace(&mut self.warned_echo, true)
        {
            log.warn(format_args!("{}: echo: {text}", self.name));
        }
        match self.ctx.cfg.framing {
            Framing::Raw => Some(w.bytes),
            // The line ending as it came (`\n`, `\r\n`, or none at the end).
            Framing::Line => {
                let mut bytes = w.bytes;
                bytes.extend_from_slice(wire.get(payload.len()..).unwrap_or_default());
                Some(bytes)
            }
            Framing::Len => encode_frame(Framing::Len, &w.bytes).ok(),
        }
    }

    fn print(&mut self) -> Result<(), String> {
        let written = self.ctx.out.write(&self.printed);
        // Kept for the next message, unless a big one made it big: shown as
        // text, a 16 MiB frame of control bytes takes 64 MiB here, which
        // --max-buffered does not count, and a thousand clients must not each
        // keep that for the rest of their connection.
        if self.printed.capacity() > PRINTED_KEEP {
            self.printed = Vec::new();
        }
        if let Err(e) = written {
            return Err(self.ctx.output_failed(e));
        }
        if let Some(w) = self.incoming.take_error_warning() {
            self.ctx.log.warn(format_args!("{}: {w}", self.name));
        }
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut s = self.stream;
        s.write_all(bytes)?;
        self.bytes_out += bytes.len() as u64;
        self.ctx
            .counters
            .bytes_out
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.ctx
            .log
            .verbose(format_args!("{}: sent {} bytes", self.name, bytes.len()));
        Ok(())
    }

    /// Count `n` received bytes.
    fn received(&mut self, n: usize) {
        self.bytes_in += n as u64;
        self.ctx
            .counters
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        self.ctx
            .log
            .verbose(format_args!("{}: received {n} bytes", self.name));
    }

    /// A read timed out: the client has sent nothing for `--idle-timeout`.
    /// Under `--stdin` the conversation may be one-way, so lines sent to the
    /// client meanwhile keep it open (`Ok`: read on).
    fn idle(&self) -> Result<(), String> {
        let limit = self.ctx.cfg.idle_timeout.unwrap_or_default();
        if self.stdin.is_some_and(|t| t.sent_within(limit)) {
            return Ok(());
        }
        let why = format!("idle for {} s (--idle-timeout)", limit.as_secs_f64());
        tell(
            self.stream,
            self.ctx.cfg.framing,
            &format!("closing: {why}"),
        );
        Err(why)
    }

    /// The receive loop: read, cut into messages, answer each, until end of stream.
    fn run(&mut self) -> Result<(), String> {
        let cfg = &self.ctx.cfg;
        let sink = cfg.sink;
        // A sink has nothing to show, so the bytes need never leave the kernel.
        let stream = self.stream;
        if sink {
            match crate::sys::discard(stream, |n| self.received(n)) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if is_timeout(&e) => return self.idle(),
                Err(e) => return Err(describe_io(&e)),
            }
        }
        let mut deframer = (cfg.framing != Framing::Raw && !sink)
            .then(|| Deframer::new(cfg.framing, cfg.max_frame));
        let mut buf = vec![0u8; FIRST_READ];
        loop {
            let n = match (&mut &*self.stream).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    self.idle()?;
                    continue;
                }
                Err(e) => return Err(describe_io(&e)),
            };
            // Hold the memory the deframer will hold once these bytes are in,
            // before they are: the limit is never passed, even briefly. Memory,
            // not bytes in use: a buffer that once held a big frame holds its
            // capacity until it is shrunk. Held before `-v` says "received": a
            // client whose bytes the log shows arriving first has them counted
            // first, so the one disconnected is the one whose bytes came last,
            // not whichever thread happened to run first.
            let fits = deframer
                .as_ref()
                .is_none_or(|d| self.held.set(d.held_after_push(n)));
            self.received(n);
            if !sink {
                match &mut deframer {
                    None => self.message(&buf[..n], &buf[..n], false)?,
                    Some(d) => {
                        if !fits {
                            return Err(self.over_buffered());
                        }
                        d.push(&buf[..n]);
                        self.frames(d, false)?;
                        // What is over the share goes back to the pool as soon as
                        // it is no longer needed, not only once above 1 MiB.
                        d.shrink(self.held.budget.share);
                        self.held.set(d.held());
                    }
                }
            }
            if n == buf.len() && buf.len() < MAX_READ {
                buf.resize(buf.len() * 2, 0);
            }
        }
        if let Some(d) = &mut deframer {
            self.frames(d, true)?;
        }
        // A character the stream ended inside of, echoed as U+FFFD like it is shown.
        if cfg.framing == Framing::Raw
            && self.send_failed.is_none()
            && let Some(Ok(rest)) = self.echo.as_mut().map(Echo::finish)
            && let Err(e) = self.send(&rest.bytes)
        {
            self.send_failed = Some(describe_io(&e));
        }
        self.printed.clear();
        self.incoming.finish(&mut self.printed);
        self.print()
    }

    /// This client's unfinished message is beyond its share of `--max-buffered`,
    /// and the pool has no room for it.
    fn over_buffered(&self) -> String {
        let Budget { max, share, .. } = self.held.budget;
        tell(
            self.stream,
            self.ctx.cfg.framing,
            &format!(
                "closing: the server holds too many unfinished messages (--max-buffered {max} bytes), try again later"
            ),
        );
        format!(
            "its unfinished message is beyond its own {share} bytes of --max-buffered {max} bytes and the shared rest is taken; raise --max-buffered, or lower --max-frame"
        )
    }

    /// Answer every complete frame; at end of stream also what `finish` gives.
    fn frames(&mut self, d: &mut Deframer, at_end: bool) -> Result<(), String> {
        loop {
            let next = if at_end {
                d.next_frame().and_then(|f| match f {
                    Some(f) => Ok(Some(f)),
                    None => d.finish(),
                })
            } else {
                d.next_frame()
            };
            match next {
                Ok(Some(frame)) => self.message(frame.payload(), frame.wire(), true)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// One client served on this thread, the only one (`--once`, `--stdin`): no
/// per-address slot to take.
fn serve_alone(stream: TcpStream, peer: SocketAddr, ctx: &Ctx, stdin: Option<&StdinTarget>) {
    handle_client(
        stream,
        peer,
        ctx,
        (ctx.counters.active.claim(), None),
        stdin,
    );
}

/// Serve one client on the current thread, holding its `slots` (`--max-clients`,
/// `--max-per-client`); log its arrival and departure. `stdin` is the `--stdin`
/// forwarder, which counts what it sent.
fn handle_client(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Ctx,
    slots: (Slot, Option<IpSlot>),
    stdin: Option<&StdinTarget>,
) {
    let name = display_addr(&peer);
    // Without this copy of the socket, Ctrl-C could not wake the thread, and
    // the server could not stop while this client stays.
    let _wake = match ctx.shutdown.wake_stream(&stream) {
        Ok(w) => w,
        Err(e) => {
            ctx.log.warn(format_args!(
                "{name} refused: {} (lower --max-clients, or raise the limit with `ulimit -n`)",
                describe_io(&e)
            ));
            tell(&stream, ctx.cfg.framing, "server busy, try again later");
            return;
        }
    };
    ctx.counters.clients.fetch_add(1, Ordering::Relaxed);
    ctx.log.info(format_args!("{name} connected"));
    if let Some(limit) = ctx.cfg.idle_timeout {
        // Set once, not per read: the kernel's receive timeout is the idle clock.
        // The send timeout too: a client that never reads our replies would
        // otherwise hold its thread in `send` forever.
        let _ = stream.set_read_timeout(Some(limit));
        let _ = stream.set_write_timeout(Some(limit));
    }
    let prefix = (ctx.cfg.show != Show::Raw).then(|| format!("[{name}] "));
    let echo = Echo::new(
        ctx.cfg.recv_encoding,
        ctx.cfg.send.encoding,
        ctx.cfg.send.unmappable,
    );
    let reply = match &ctx.cfg.reply {
        Reply::Text(t) => Outgoing::new(ctx.cfg.send)
            .message(&t.replace("{peer}", &name))
            .ok()
            .map(|w| w.bytes),
        _ => None,
    };
    let mut conn = Conn {
        ctx,
        stream: &stream,
        incoming: Incoming::new(ctx.cfg.show, prefix).with_timestamps(ctx.cfg.stamps.clone()),
        name,
        reply,
        send_failed: None,
        printed: Vec::new(),
        bytes_in: 0,
        bytes_out: 0,
        held: Held {
            pool: &ctx.buffered,
            budget: ctx.budget,
            bytes: 0,
        },
        stdin,
        echo: (ctx.cfg.reply == Reply::Echo && !echo.is_bytes()).then_some(echo),
        warned_echo: false,
    };
    let result = conn.run().and(conn.send_failed.take().map_or(Ok(()), Err));
    let bytes_out = conn.bytes_out + stdin.map_or(0, |t| t.sent.swap(0, Ordering::SeqCst));
    let (name, bytes_in) = (conn.name, conn.bytes_in);
    drop(conn.held);
    // Free the slots before saying so: whoever reads the log line may connect at once.
    drop(slots);
    let how = match result {
        Ok(()) => String::new(),
        Err(why) => format!(": {why}"),
    };
    ctx.log.info(format_args!(
        "{name} disconnected{how} ({bytes_in} bytes in, {bytes_out} out)"
    ));
}

/// The client `--stdin` lines go to: at most one at a time, as with `nc -l`.
#[derive(Default)]
struct StdinTarget {
    current: Mutex<(Option<TcpStream>, bool)>,
    changed: Condvar,
    /// Bytes sent to the current client.
    sent: AtomicU64,
    /// When a line was last sent, for `--idle-timeout`.
    last_sent: Mutex<Option<Instant>>,
}

impl StdinTarget {
    fn lock(&self) -> MutexGuard<'_, (Option<TcpStream>, bool)> {
        lock(&self.current)
    }

    /// Was a line sent within the last `period`?
    fn sent_within(&self, period: Duration) -> bool {
        lock(&self.last_sent).is_some_and(|t| t.elapsed() < period)
    }
}

/// `--stdin`: clients are served one after another; a thread forwards stdin to
/// whichever is connected. After stdin ends, each client's write side is shut down
/// (as `nc -N` does), so it sees end of stream once it has read everything.
fn serve_stdin(listener: &TcpListener, ctx: &Arc<Ctx>, input: Box<dyn Read + Send>) {
    let target = Arc::new(StdinTarget::default());
    let (t, c) = (target.clone(), ctx.clone());
    // Not joined: it may sit in a blocking read of the terminal when we stop.
    let _ = thread::Builder::new()
        .name("stdin".into())
        .spawn(move || pump_stdin(input, &t, &c));
    while !ctx.shutdown.is_triggered() {
        let Some((stream, peer)) = accept_next(listener, ctx) else {
            break;
        };
        {
            let mut cur = target.lock();
            let stdin_done = cur.1;
            if stdin_done {
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            cur.0 = stream.try_clone().ok();
            target.changed.notify_all();
        }
        serve_alone(stream, peer, ctx, Some(&target));
        target.lock().0 = None;
        if ctx.cfg.once {
            break;
        }
    }
    ctx.shutdown.trigger();
    target.changed.notify_all();
}

fn pump_stdin(input: Box<dyn Read + Send>, target: &StdinTarget, ctx: &Ctx) {
    let mut reader = BufReader::new(input);
    let mut outgoing = Outgoing::new(ctx.cfg.send);
    let mut chunk = Vec::new();
    loop {
        match read_chunk(&mut reader, &mut chunk, 64 * 1024) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let wire = match outgoing.stdin_chunk(&chunk) {
            Ok(w) => w,
            Err(e) => {
                ctx.log.warn(format_args!("not sent: {e}"));
                continue;
            }
        };
        if let Some(w) = wire.warning(ctx.cfg.send.encoding) {
            ctx.log.warn(format_args!("{w}"));
        }
        // Wait for a client: lines typed before anyone connects are kept for them.
        let mut cur = target.lock();
        while cur.0.is_none() && !ctx.shutdown.is_triggered() {
            cur = target.changed.wait(cur).unwrap_or_else(|e| e.into_inner());
        }
        let Some(stream) = cur.0.as_ref() else { return };
        match (&mut &*stream).write_all(&wire.bytes) {
            Ok(()) => {
                let n = wire.bytes.len() as u64;
                ctx.counters.bytes_out.fetch_add(n, Ordering::Relaxed);
                target.sent.fetch_add(n, Ordering::SeqCst);
                *lock(&target.last_sent) = Some(Instant::now());
            }
            Err(e) => ctx.log.warn(format_args!(
                "stdin line not delivered: {}",
                describe_io(&e)
            )),
        }
    }
    let mut cur = target.lock();
    cur.1 = true;
    if let Some(s) = &cur.0 {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Verbosity;
    use crate::testutil::{Running, assert_refused_before_listening, unsendable_reply};
    use std::sync::{OnceLock, Weak};

    /// The server runs in-process: its stdout and stderr land in memory.
    #[test]
    fn serve_in_process_replies_logs_and_stops_on_trigger() {
        let cfg = Config {
            reply: Reply::Text("hi {peer}".into()),
            ..Config::default()
        };
        let server = Running::tcp(move |l, io, sd| serve(l, &cfg, io, sd));
        let addr = server.addr;

        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&c).write_all(b"hello").unwrap();
        let me = c.local_addr().unwrap();
        let expected = format!("hi {me}");
        let mut got = vec![0u8; expected.len()];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected);

        let (out, log) = (server.out.clone(), server.log.clone());
        let summary = server.stop();
        assert_eq!(
            summary,
            Summary {
                clients: 1,
                bytes_in: 5,
                bytes_out: expected.len() as u64
            }
        );
        assert_eq!(out.text(), format!("[{me}] hello\n"));
        let log = log.text();
        assert!(
            log.starts_with(&format!("listening on {addr}\n{me} connected\n")),
            "{log}"
        );
        assert!(log.ends_with(&format!("{summary}\n")), "{log}");
    }

    #[test]
    fn budget_shares_out_half_and_never_passes_max_buffered() {
        let b = Budget::new(DEFAULT_MAX_BUFFERED, 1024);
        assert_eq!(b.share, 128 * 1024);
        assert_eq!(b.pool, DEFAULT_MAX_BUFFERED / 2);
        for (max, clients) in [(4_000_000, 1000), (65_536, 3), (10, 1024), (7, 0)] {
            let b = Budget::new(max, clients);
            assert!(b.share * clients.max(1) + b.pool == max, "{b:?}");
            assert!(b.pool >= max / 2, "{b:?}");
        }
    }

    #[test]
    fn a_client_within_its_share_is_served_when_the_pool_is_full() {
        let pool = AtomicUsize::new(0);
        let budget = Budget::new(4 * 1024 * 1024, 1024);
        let held = |bytes| Held {
            pool: &pool,
            budget,
            bytes,
        };
        let mut hog = held(0);
        assert!(hog.set(budget.share + budget.pool));
        assert_eq!(pool.load(Ordering::SeqCst), budget.pool);
        let mut small = held(0);
        assert!(small.set(budget.share));
        let mut other_hog = held(0);
        assert!(!other_hog.set(budget.share + 1));
        assert_eq!(other_hog.bytes, 0);
        // Going down hands back only what came from the pool, never more.
        assert!(hog.set(10));
        assert_eq!(pool.load(Ordering::SeqCst), 0);
        assert!(other_hog.set(budget.share + 1));
        drop((hog, small, other_hog));
        assert_eq!(pool.load(Ordering::SeqCst), 0);
    }

    /// `-v`'s "received N bytes" is the moment a client's bytes count against
    /// `--max-buffered`: whoever waits for that line to see them held (as the
    /// tests in tests/tcp.rs do before a second client passes the limit) must
    /// not be able to get in between, or the second client's frame fits and
    /// the first is the one closed.
    #[test]
    fn bytes_count_against_max_buffered_before_the_log_says_they_are_received() {
        /// At each "received" line: the bytes received so far, and the pool.
        type Seen = Arc<Mutex<Vec<(usize, usize)>>>;
        struct Watch {
            ctx: Arc<OnceLock<Weak<Ctx>>>,
            line: Vec<u8>,
            seen: Seen,
            total: usize,
        }
        impl Write for Watch {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.line.extend_from_slice(b);
                Ok(b.len())
            }
            // Log writes a line, then flushes it, on the thread reading the client.
            fn flush(&mut self) -> io::Result<()> {
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                if let Some((_, n)) = line.split_once(": received ")
                    && let Some(ctx) = self.ctx.get().and_then(Weak::upgrade)
                {
                    self.total += n.split(' ').next().unwrap().parse::<usize>().unwrap();
                    let pool = ctx.buffered.load(Ordering::SeqCst);
                    lock(&self.seen).push((self.total, pool));
                }
                Ok(())
            }
        }
        let (slot, seen) = (Arc::new(OnceLock::new()), Seen::default());
        let watch = Watch {
            ctx: slot.clone(),
            line: Vec::new(),
            seen: seen.clone(),
            total: 0,
        };
        let cfg = Config {
            framing: Framing::Len,
            max_buffered: 65_536,
            ..Config::default()
        };
        let log = Log::to_writer(watch, Verbosity::Verbose);
        let out = Output::to_writer(io::sink());
        let ctx = Arc::new(Ctx::new(cfg, out, log, &Shutdown::new()));
        slot.set(Arc::downgrade(&ctx)).unwrap();
        let share = ctx.budget.share;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // Half of a 2000-byte frame, well beyond the client's own share, then
        // the end of the stream: the client is served on this thread.
        let half = [&2000u32.to_be_bytes()[..], &[7; 996]].concat();
        (&client).write_all(&half).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        serve_alone(stream, peer, &ctx, None);

        let seen = lock(&seen).clone();
        assert_eq!(seen.last().map(|s| s.0), Some(half.len()), "{seen:?}");
        for (received, pool) in &seen {
            assert!(*pool >= received - share, "{seen:?} (share {share})");
        }
        // Handed back when the client left.
        assert_eq!(ctx.buffered.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn max_clients_is_fitted_to_the_descriptor_limit() {
        let cfg = Config::default();
        // 1024 descriptors, 16 kept aside, 2 per client.
        assert_eq!(fit_max_clients(&cfg, 1024), 504);
        assert_eq!(fit_max_clients(&cfg, 20_000), 1024);
        assert_eq!(fit_max_clients(&cfg, 3), 1);
        let sink = Config {
            sink: true,
            ..Config::default()
        };
        assert_eq!(fit_max_clients(&sink, 1024), 201);
    }

    /// Stdout of a process whose disk is full.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn unwritable_stdout_disconnects_the_client_and_stops_the_server_with_the_error() {
        let server = Running::start(Some(Output::to_writer(Full)), |l: TcpListener, io, sd| {
            serve(l, &Config::default(), io, sd)
        });
        let c = TcpStream::connect(server.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&c).write_all(b"where does this go?").unwrap();
        // Not shown, so not echoed: the client is closed.
        let mut got = Vec::new();
        assert_eq!(
            (&c).read_to_end(&mut got).map(|_| got.len()).unwrap_or(0),
            0
        );
        let err = server.result().unwrap_err();
        assert!(
            matches!(&err, Error::Stdout(e) if e.0.kind() == io::ErrorKind::StorageFull),
            "{err:?}"
        );
        assert_eq!(
            crate::error::one_line(&err),
            "cannot write to stdout: No space left on device (os error 28)"
        );
        let log = server.log.text();
        assert!(
            log.contains("disconnected: cannot write to stdout: No space left on device"),
            "{log}"
        );
    }

    #[test]
    fn strict_reply_text_is_refused_before_listening() {
        let mut cfg = Config::default();
        (cfg.reply, cfg.send) = unsendable_reply();
        assert_refused_before_listening(Running::tcp(move |l, io, sd| serve(l, &cfg, io, sd)));
    }
}
