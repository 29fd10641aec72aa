//! `tftp-get` / `tftp-put`: the driver of the client's state machine ([`super::proto::Client`]) on real sockets and a real file.
//!
//! The request goes to the server's well-known port; the answer comes from
//! a new port, which becomes the transfer ID for the rest of the transfer
//! (lesson 12). How options are negotiated, and how a lost request or a
//! server that ignores options is handled, is told in
//! [`super::proto::negotiate`]; this module opens the sockets, feeds the
//! machine, and reads or writes the file.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::engine::{self, FileSide, Ports, Stats, Trace, TransferError, Until};
use super::netascii::{NetasciiReader, NetasciiWriter};
use super::packet::{ErrorCode, Mode, Options};
use super::proto::negotiate::{self, Client};

/// What the client asks for.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server's request address (port 69 by default).
    pub server: SocketAddr,
    /// octet or netascii.
    pub mode: Mode,
    /// Block size to request (`None`: do not ask; 512).
    pub blksize: Option<u16>,
    /// Window to request (`None`: do not ask; lock-step).
    pub windowsize: Option<u16>,
    /// Retransmission timeout before (or without) a measured round-trip time.
    pub timeout: Duration,
    /// Also send the `timeout` option (the user chose a timeout).
    pub send_timeout: bool,
    /// `utimeout` to request: a server that accepts it allows our timer to
    /// follow the measured round-trip time.
    pub utimeout: Option<Duration>,
    /// Retransmissions before giving up.
    pub retries: u32,
    /// Send no options at all (`--no-options`).
    pub no_options: bool,
    /// Where `--trace` lines go, if anywhere.
    pub trace: Option<Trace>,
    /// Set (by a Ctrl-C or SIGTERM handler) to stop the transfer: the server
    /// is sent an ERROR and the call fails with [`TransferError::Aborted`].
    pub abort: Option<Arc<AtomicBool>>,
}

impl Config {
    /// Fast and safe defaults: blksize 1468 (one Ethernet frame), window 16,
    /// `tsize`, `utimeout` 50 ms, 1 s timeout, 6 retries.
    pub fn new(server: SocketAddr) -> Config {
        Config {
            server,
            mode: Mode::Octet,
            blksize: Some(1468),
            windowsize: Some(16),
            timeout: Duration::from_secs(1),
            send_timeout: false,
            utimeout: Some(Duration::from_millis(50)),
            retries: 6,
            no_options: false,
            trace: None,
            abort: None,
        }
    }

    fn options(&self, tsize: Option<u64>) -> Options {
        if self.no_options {
            return Options::default();
        }
        Options {
            blksize: self.blksize,
            windowsize: self.windowsize,
            timeout: self
                .send_timeout
                .then(|| self.timeout.as_secs().clamp(1, 255) as u8),
            utimeout: self
                .utimeout
                .map(|d| (d.as_micros() as u64).clamp(1, super::packet::MAX_UTIMEOUT)),
            tsize,
        }
    }
}

/// Why a download or upload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transfer itself failed (including ERROR packets from the server).
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The server never answered the request.
    #[error("no answer from {server} after {tries} requests (is a TFTP server running there?)")]
    NoAnswer {
        /// The server's address.
        server: SocketAddr,
        /// Requests sent.
        tries: u32,
    },
    /// Nothing listens on the server's request port (ICMP port unreachable).
    #[error(
        "no TFTP server at {server} (port unreachable): is the server running, and on this port?"
    )]
    NoServer {
        /// The server's address.
        server: SocketAddr,
    },
    /// A download request answered with ERROR 5 (unknown transfer ID), which
    /// makes no sense for a request: the course's lesson-12 server sends it,
    /// with the message "error", when the file does not exist.
    #[error("{0} (the course's server sends this for a missing file)")]
    CourseMissingFile(#[source] TransferError),
    /// The socket could not be opened.
    #[error("cannot open a UDP socket: {0}")]
    Socket(#[source] io::Error),
}

/// A TFTP transfer fails because of the network, the server or a file, never the flags.
impl crate::error::Blame for Error {
    fn is_usage(&self) -> bool {
        false
    }
}

/// What a finished transfer reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Engine statistics.
    pub stats: Stats,
    /// Options in effect (what the server accepted).
    pub options: Options,
    /// Why options were dropped, when they were.
    pub fallback: Option<&'static str>,
    /// Time from the request to the end.
    pub elapsed: Duration,
    /// The server's transfer ID.
    pub peer: SocketAddr,
}

impl Report {
    /// One line for the end of a transfer: `received 1048576 bytes in 0.05 s
    /// (20.0 MiB/s), options: blksize=1468 windowsize=16 tsize=1048576`.
    pub fn summary(&self, verb: &str) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{verb} {} bytes in {secs:.2} s ({:.1} MiB/s), options: {}{}",
            self.stats.bytes,
            self.stats.bytes as f64 / 1048576.0 / secs.max(1e-6),
            self.options,
            self.stats.notes()
        )
    }
}

/// Hooks for a progress display.
pub trait Progress {
    /// The transfer started; `total` is the size when known (`tsize`).
    fn start(&mut self, _total: Option<u64>) {}
    /// Bytes moved so far.
    fn update(&mut self, _bytes: u64) {}
}

/// No progress display.
impl Progress for () {}

/// The longest first wait for an answer to a request when the timer may
/// adapt (the default): a lost request, or a server that ignores options,
/// then costs a quarter of a second rather than the fixed timeout.
const ADAPTIVE_FIRST_WAIT: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("mode", &self.mode)
            .field("options", &self.options(None))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("trace", &self.trace.is_some())
            .finish()
    }
}

/// The state machine and its sockets, for one request.
fn start(
    cfg: &Config,
    write: bool,
    filename: &[u8],
    tsize: Option<u64>,
) -> Result<(Client, Ports), Error> {
    let bind: SocketAddr = if cfg.server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let ports = Ports::client(bind).map_err(Error::Socket)?;
    let first_wait = if cfg.utimeout.is_some() {
        cfg.timeout.min(ADAPTIVE_FIRST_WAIT)
    } else {
        cfg.timeout
    };
    let client = Client::new(negotiate::Request {
        server: cfg.server,
        write,
        filename: filename.to_vec(),
        mode: cfg.mode,
        options: cfg.options(tsize),
        first_wait,
        timeout: cfg.timeout,
        retries: cfg.retries,
    });
    Ok((client, ports))
}

/// Runs the request until it is answered, then sizes the socket buffers
/// for the negotiated window and tells `progress` the size to expect.
fn negotiate(
    cfg: &Config,
    client: &mut Client,
    ports: &mut Ports,
    io: FileSide<'_>,
    progress: &mut dyn Progress,
    size: Option<u64>,
) -> Result<(), Error> {
    let mut update = |b| progress.update(b);
    engine::drive(
        client,
        ports,
        Some(io),
        Until::Answered,
        cfg.abort.as_deref(),
        cfg.trace.as_ref(),
        &mut update,
    )
    .map_err(|e| failure(cfg, client, e))?;
    let (Some(outcome), Some(params)) = (client.outcome(), client.params()) else {
        return Ok(());
    };
    progress.start(size.or(outcome.options.tsize));
    if let Some(socket) = ports.get(client.via()) {
        engine::size_buffers(socket, params.blksize, params.windowsize);
    }
    Ok(())
}

/// The error of a failed transfer; no answer at all to the request is its own.
fn failure(cfg: &Config, client: &Client, e: TransferError) -> Error {
    match e {
        TransferError::TimedOut { .. } if !client.answered() => Error::NoAnswer {
            server: cfg.server,
            tries: client.requests_sent(),
        },
        TransferError::PeerGone(_) if !client.answered() => Error::NoServer { server: cfg.server },
        TransferError::Peer {
            code: ErrorCode::UnknownTransferId,
            ..
        } if !client.answered() && !client.writes() => Error::CourseMissingFile(e),
        e => Error::Transfer(e),
    }
}

fn report(client: &Client, started: Instant) -> Report {
    let outcome = client.outcome();
    Report {
        stats: client.stats(),
        options: outcome.map(|o| o.options).unwrap_or_default(),
        fallback: outcome.and_then(|o| o.fallback),
        elapsed: started.elapsed(),
        peer: outcome.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |o| o.peer),
    }
}

/// A download whose data has all arrived; the final ACK is still to be sent.
///
/// Make the file safe first (rename it into place), then [`Download::confirm`].
#[non_exhaustive]
pub struct Download {
    client: Client,
    ports: Ports,
    report: Report,
    trace: Option<Trace>,
}

impl Download {
    /// What happened.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Sends the final ACK and stays briefly in case it is lost.
    pub fn confirm(mut self) -> Report {
        let via = self.client.via();
        engine::linger(&mut self.client, &mut self.ports, via, self.trace.as_ref());
        self.report
    }

    /// Tells the server the file could not be kept.
    pub fn reject(mut self, why: &str) {
        self.client.reject(why);
        let _ = engine::drive(
            &mut self.client,
            &mut self.ports,
            None,
            Until::Done,
            None,
            self.trace.as_ref(),
            &mut |_| {},
        );
    }
}

/// Downloads `remote` into `sink` (converting netascii to local line ends).
pub fn get(
    cfg: &Config,
    remote: &[u8],
    sink: &mut dyn Write,
    progress: &mut dyn Progress,
) -> Result<Download, Error> {
    let started = Instant::now();
    let tsize = (cfg.mode == Mode::Octet).then_some(0);
    let (mut client, mut ports) = start(cfg, false, remote, tsize)?;
    let trace = cfg.trace.as_ref();
    let result = if cfg.mode == Mode::Netascii {
        let mut text = NetasciiWriter::new(&mut *sink);
        receive(cfg, &mut client, &mut ports, &mut text, progress).and_then(|()| {
            text.finish()
                .map(drop)
                .map_err(|e| write_failed(&mut client, &mut ports, e, trace))
        })
    } else {
        receive(cfg, &mut client, &mut ports, sink, progress)
    };
    result?;
    sink.flush()
        .map_err(|e| write_failed(&mut client, &mut ports, e, trace))?;
    Ok(Download {
        report: report(&client, started),
        client,
        ports,
        trace: cfg.trace.clone(),
    })
}

/// The download's request and transfer, up to the last block.
fn receive(
    cfg: &Config,
    client: &mut Client,
    ports: &mut Ports,
    sink: &mut dyn Write,
    progress: &mut dyn Progress,
) -> Result<(), Error> {
    transfer(cfg, client, ports, FileSide::Sink(sink), progress, None)
}

/// Option negotiation, then every block: the whole transfer after the request.
fn transfer(
    cfg: &Config,
    client: &mut Client,
    ports: &mut Ports,
    mut file: FileSide<'_>,
    progress: &mut dyn Progress,
    size: Option<u64>,
) -> Result<(), Error> {
    negotiate(cfg, client, ports, file.reborrow(), progress, size)?;
    let mut update = |b| progress.update(b);
    engine::drive(
        client,
        ports,
        Some(file),
        Until::Done,
        cfg.abort.as_deref(),
        cfg.trace.as_ref(),
        &mut update,
    )
    .map_err(|e| failure(cfg, client, e))
}

/// The local file failed at the end: tell the server, and say so.
fn write_failed(
    client: &mut Client,
    ports: &mut Ports,
    error: io::Error,
    trace: Option<&Trace>,
) -> Error {
    client.fail(TransferError::File {
        what: "write error",
        error,
    });
    let e = engine::drive(client, ports, None, Until::Done, None, trace, &mut |_| {});
    Error::Transfer(
        e.err()
            .unwrap_or(TransferError::Protocol("write error".into())),
    )
}

/// Uploads `source` as `remote`; `size` (when known) is announced as `tsize`.
pub fn put(
    cfg: &Config,
    remote: &[u8],
    source: &mut dyn Read,
    size: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<Report, Error> {
    let started = Instant::now();
    let tsize = if cfg.mode == Mode::Octet { size } else { None };
    let (mut client, mut ports) = start(cfg, true, remote, tsize)?;
    let mut text;
    let source: &mut dyn Read = if cfg.mode == Mode::Netascii {
        text = NetasciiReader::new(source);
        &mut text
    } else {
        source
    };
    transfer(
        cfg,
        &mut client,
        &mut ports,
        FileSide::Source(source),
        progress,
        size,
    )?;
    Ok(report(&client, started))
}
