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
//!   affects its own thread.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::addr::{describe_io, display_addr};
use crate::cli::UsageError;
use crate::framing::{DEFAULT_MAX_FRAME, Deframer, Framing};
use crate::message::{Incoming, Outgoing, SendOptions, Show, read_chunk};
use crate::net::{Places, Slot};
use crate::output::{Log, Output};
use crate::shutdown::Shutdown;

/// What the server sends back after each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The same bytes, byte for byte (the default).
    Echo,
    /// This text, encoded; `{peer}` becomes the client's address (lesson 03's
    /// `我是服务器, 你好客户端: (ip, port)`).
    Text(String),
    /// Nothing: read, count and discard (throughput tests).
    Sink,
    /// Nothing; what is typed on stdin goes to the client instead, one client at a
    /// time, like `nc -l`.
    Stdin,
    /// Nothing: only receive and show (the default with `--raw`).
    Nothing,
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Reply mode.
    pub reply: Reply,
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
    /// How reply text and stdin lines are encoded.
    pub send: SendOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            reply: Reply::Echo,
            once: false,
            max_clients: 1024,
            framing: Framing::Raw,
            max_frame: DEFAULT_MAX_FRAME,
            show: Show::Text(encoding_rs::UTF_8),
            send: SendOptions::default(),
        }
    }
}

/// Totals printed when the server stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// Where a server's words go, and where `--stdin` input comes from.
pub struct ServerIo {
    /// Received messages (stdout).
    pub out: Output,
    /// Connections and errors (stderr).
    pub log: Log,
    /// Input for [`Reply::Stdin`].
    pub stdin: Option<Box<dyn Read + Send>>,
}

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
    cfg: ServerConfig,
    out: Output,
    log: Log,
    shutdown: Shutdown,
    counters: Counters,
}

/// Run a server on `listener` until `--once` is done or `shutdown` is triggered.
///
/// Prints `listening on ADDR` first (scripts and tests wait for that line), then
/// serves; returns the totals, which it has also logged.
pub fn serve(
    listener: TcpListener,
    cfg: ServerConfig,
    io: ServerIo,
    shutdown: &Shutdown,
) -> io::Result<Summary> {
    let local = listener.local_addr()?;
    check_reply_text(&cfg, &io.log).map_err(io::Error::other)?;
    io.log.always(format_args!("listening on {local}"));
    let ctx = Arc::new(Ctx {
        cfg,
        out: io.out,
        log: io.log,
        shutdown: shutdown.clone(),
        counters: Counters::default(),
    });
    let wake = shutdown.wake_listener(&listener)?;
    if ctx.cfg.reply == Reply::Stdin {
        serve_stdin(&listener, &ctx, io.stdin);
    } else if ctx.cfg.once {
        // Lesson 03: one client, then the server closes. The listening socket
        // closes first (with the waker's copy of it), so a second client is refused
        // at once instead of waiting in the backlog for an accept that never comes.
        if let Some((stream, peer)) = accept_next(&listener, &ctx) {
            drop(wake);
            drop(listener);
            handle_client(stream, peer, &ctx, ctx.counters.active.claim(), None);
        }
    } else {
        accept_loop(&listener, &ctx);
    }
    let summary = ctx.counters.summary();
    ctx.log.info(format_args!("{summary}"));
    Ok(summary)
}

/// Refuse (`--strict-encoding`) or warn about a `--reply` text the send encoding
/// cannot represent, once, before any client connects.
fn check_reply_text(cfg: &ServerConfig, log: &Log) -> Result<(), UsageError> {
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
    loop {
        match listener.accept() {
            Ok(pair) => return Some(pair),
            Err(_) if ctx.shutdown.is_triggered() => return None,
            Err(e) => {
                // Out of file descriptors and the like: say so, breathe, go on.
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
        if ctx.counters.active.taken() >= ctx.cfg.max_clients {
            refuse(stream, peer, ctx);
            continue;
        }
        // Claimed here, on the accepting thread, so check and claim cannot race.
        // If the thread cannot start, the closure and its slot are dropped: freed.
        let slot = ctx.counters.active.claim();
        let c = ctx.clone();
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .stack_size(CLIENT_STACK)
            .spawn(move || handle_client(stream, peer, &c, slot, None));
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
fn refuse(mut stream: TcpStream, peer: SocketAddr, ctx: &Ctx) {
    let max = ctx.cfg.max_clients;
    ctx.log.warn(format_args!(
        "{} refused: already serving {max} clients (--max-clients)",
        display_addr(&peer)
    ));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream
        .write_all(format!("server busy: {max} clients connected, try again later\n").as_bytes());
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
}

impl Conn<'_> {
    /// Show one message and answer it. A reply that cannot be sent (the client
    /// left) ends replying, not reading: messages that already arrived are still
    /// shown, never lost.
    fn message(&mut self, payload: &[u8], wire: &[u8], framed: bool) {
        self.printed.clear();
        self.incoming.render(payload, framed, &mut self.printed);
        self.print();
        if self.send_failed.is_some() {
            return;
        }
        let sent = match &self.ctx.cfg.reply {
            Reply::Echo => self.send(wire),
            Reply::Text(_) => {
                let reply = self.reply.take().unwrap_or_default();
                let sent = self.send(&reply);
                self.reply = Some(reply);
                sent
            }
            _ => Ok(()),
        };
        if let Err(e) = sent {
            self.send_failed = Some(describe_io(&e));
        }
    }

    fn print(&mut self) {
        if let Err(e) = self.ctx.out.write(&self.printed) {
            // Nobody reads our stdout any more (`tcp-server | head`): time to stop.
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.ctx.shutdown.trigger();
            }
        }
        if self.incoming.take_error_warning() {
            let w = self.incoming.error_warning();
            self.ctx.log.warn(format_args!("{}: {w}", self.name));
        }
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

    /// The receive loop: read, cut into messages, answer each, until end of stream.
    fn run(&mut self) -> Result<(), String> {
        let cfg = &self.ctx.cfg;
        let sink = cfg.reply == Reply::Sink;
        // A sink has nothing to show, so the bytes need never leave the kernel.
        let stream = self.stream;
        if sink && crate::net::discard(stream, |n| self.received(n)).map_err(|e| describe_io(&e))? {
            return Ok(());
        }
        let mut deframer = (cfg.framing != Framing::Raw && !sink)
            .then(|| Deframer::new(cfg.framing, cfg.max_frame));
        let mut buf = vec![0u8; FIRST_READ];
        loop {
            let n = match (&mut &*self.stream).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(describe_io(&e)),
            };
            self.received(n);
            if !sink {
                match &mut deframer {
                    None => self.message(&buf[..n], &buf[..n], false),
                    Some(d) => {
                        d.push(&buf[..n]);
                        self.frames(d, false)?;
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
        self.printed.clear();
        self.incoming.finish(&mut self.printed);
        self.print();
        Ok(())
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
                Ok(Some(frame)) => self.message(frame.payload(), frame.wire(), true),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// Serve one client on the current thread, holding its `slot`; log its arrival
/// and departure. `stdin_sent` counts what `--stdin` sent it meanwhile.
fn handle_client(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Ctx,
    slot: Slot,
    stdin_sent: Option<&AtomicU64>,
) {
    ctx.counters.clients.fetch_add(1, Ordering::Relaxed);
    let name = display_addr(&peer);
    ctx.log.info(format_args!("{name} connected"));
    let _wake = ctx.shutdown.wake_stream(&stream).ok();
    let prefix = (ctx.cfg.show != Show::Raw).then(|| format!("[{name}] "));
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
        incoming: Incoming::new(ctx.cfg.show, prefix),
        name,
        reply,
        send_failed: None,
        printed: Vec::new(),
        bytes_in: 0,
        bytes_out: 0,
    };
    let result = conn.run().and(conn.send_failed.map_or(Ok(()), Err));
    let bytes_out = conn.bytes_out + stdin_sent.map_or(0, |n| n.swap(0, Ordering::SeqCst));
    let (name, bytes_in) = (conn.name, conn.bytes_in);
    // Free the slot before saying so: whoever reads the log line may connect at once.
    drop(slot);
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
}

impl StdinTarget {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<TcpStream>, bool)> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `--stdin`: clients are served one after another; a thread forwards stdin to
/// whichever is connected. After stdin ends, each client's write side is shut down
/// (as `nc -N` does), so it sees end of stream once it has read everything.
fn serve_stdin(listener: &TcpListener, ctx: &Arc<Ctx>, stdin: Option<Box<dyn Read + Send>>) {
    let target = Arc::new(StdinTarget::default());
    if let Some(input) = stdin {
        let (t, c) = (target.clone(), ctx.clone());
        // Not joined: it may sit in a blocking read of the terminal when we stop.
        let _ = thread::Builder::new()
            .name("stdin".into())
            .spawn(move || pump_stdin(input, &t, &c));
    }
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
        handle_client(
            stream,
            peer,
            ctx,
            ctx.counters.active.claim(),
            Some(&target.sent),
        );
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
    use crate::net::{ListenSpec, tcp_listener};
    use crate::output::{SharedBuf, Verbosity};
    use std::net::Ipv4Addr;

    /// The server runs in-process: its stdout and stderr land in memory.
    #[test]
    fn serve_in_process_replies_logs_and_stops_on_trigger() {
        let listener = tcp_listener(ListenSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            ..ListenSpec::any(0)
        })
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let (out, log) = (SharedBuf::new(), SharedBuf::new());
        let shutdown = Shutdown::new();
        let cfg = ServerConfig {
            reply: Reply::Text("hi {peer}".into()),
            ..ServerConfig::default()
        };
        let io = ServerIo {
            out: Output::to_writer(out.clone()),
            log: Log::to_writer(log.clone(), Verbosity::Normal),
            stdin: None,
        };
        let sd = shutdown.clone();
        let server = thread::spawn(move || serve(listener, cfg, io, &sd).unwrap());

        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&c).write_all(b"hello").unwrap();
        let me = c.local_addr().unwrap();
        let expected = format!("hi {me}");
        let mut got = vec![0u8; expected.len()];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected);

        shutdown.trigger();
        let summary = server.join().unwrap();
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
    fn strict_reply_text_is_refused_before_listening() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let log = SharedBuf::new();
        let cfg = ServerConfig {
            reply: Reply::Text("😀".into()),
            send: SendOptions {
                encoding: encoding_rs::GBK,
                unmappable: crate::codec::Unmappable::Refuse,
                ..SendOptions::default()
            },
            ..ServerConfig::default()
        };
        let io = ServerIo {
            out: Output::to_writer(SharedBuf::new()),
            log: Log::to_writer(log.clone(), Verbosity::Normal),
            stdin: None,
        };
        let err = serve(listener, cfg, io, &Shutdown::new()).unwrap_err();
        assert!(crate::cli::is_usage(&err), "{err}");
        assert!(err.to_string().contains("U+1F600"), "{err}");
        assert_eq!(log.text(), "");
    }
}
