//! `tftp-get` / `tftp-put`: send the request, negotiate options (falling back for servers that do not), then run the engine.
//!
//! The request goes to the server's well-known port; the answer comes from
//! a new port, which becomes the transfer ID for the rest of the transfer
//! (lesson 12). What answers depends on the server:
//!
//! * an OACK: the server accepted (some of) our options (RFC 2347); we
//!   check them and go on with ACK 0 (download) or DATA 1 (upload);
//! * DATA 1 or ACK 0: the server ignores options — fine, RFC 1350 it is;
//! * ERROR 8: the server refuses options, so we ask again without any;
//! * nothing at all: some servers, the course's own Python one among them,
//!   ignore a request that carries options. After the first timeout we ask
//!   again without options.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::engine::{self, Channel, Params, Start, Stats, TransferError};
use super::packet::{ErrorCode, Mode, Options, Packet, Request};
use super::timer::RetransmitTimer;

/// What the client asks for.
#[derive(Debug, Clone)]
pub struct ClientConfig {
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
}

impl ClientConfig {
    /// Fast and safe defaults: blksize 1468 (one Ethernet frame), window 16,
    /// `tsize`, `utimeout` 50 ms, 1 s timeout, 6 retries.
    pub fn new(server: SocketAddr) -> ClientConfig {
        ClientConfig {
            server,
            mode: Mode::Octet,
            blksize: Some(1468),
            windowsize: Some(16),
            timeout: Duration::from_secs(1),
            send_timeout: false,
            utimeout: Some(Duration::from_millis(50)),
            retries: 6,
            no_options: false,
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
pub enum ClientError {
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
    /// The socket could not be opened.
    #[error("cannot open a UDP socket: {0}")]
    Socket(#[source] io::Error),
}

/// What a finished transfer reports.
#[derive(Debug, Clone)]
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

/// The server's first answer to a request.
enum Answer {
    Oack(Options),
    Data(Vec<u8>),
    Ack0,
}

/// A request in flight: its socket, and how it was answered.
struct Negotiated {
    socket: UdpSocket,
    peer: SocketAddr,
    answer: Answer,
    fallback: Option<&'static str>,
    /// Round-trip time of the request, when it was answered on the first try.
    rtt: Option<Duration>,
}

/// Sends the request until the server answers, with the fallbacks described
/// in the module documentation.
fn request(
    cfg: &ClientConfig,
    write: bool,
    filename: &[u8],
    tsize: Option<u64>,
) -> Result<Negotiated, ClientError> {
    let bind: SocketAddr = if cfg.server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(ClientError::Socket)?;
    let wanted = cfg.options(tsize);
    let mut with_options = !wanted.is_empty();
    let mut fallback = None;
    let mut timer = RetransmitTimer::fixed(cfg.timeout);
    let mut rbuf = vec![0u8; 65536];
    let mut tries = 0u32;
    loop {
        let options = if with_options {
            wanted.to_raw()
        } else {
            Vec::new()
        };
        let req = Request {
            filename: Cow::Borrowed(filename),
            mode: cfg.mode,
            options,
        };
        let packet = if write {
            Packet::Wrq(req)
        } else {
            Packet::Rrq(req)
        };
        socket
            .send_to(&packet.encode(), cfg.server)
            .map_err(|e| ClientError::Transfer(TransferError::Socket(e)))?;
        tries += 1;
        let sent = Instant::now();
        let deadline = sent + timer.rto();
        let refused = loop {
            let Some((n, from)) = recv_until(&socket, &mut rbuf, deadline)? else {
                break false;
            };
            if from.ip() != cfg.server.ip() {
                let _ = socket.send_to(
                    &Packet::error(ErrorCode::UnknownTransferId, "unknown transfer ID"),
                    from,
                );
                continue;
            }
            let answer = match Packet::parse(&rbuf[..n]) {
                Ok(Packet::Oack(raw)) => match Options::from_raw(&raw) {
                    Ok(o) => Answer::Oack(o),
                    Err(e) => return Err(refuse_oack(&socket, from, e.to_string())),
                },
                Ok(Packet::Data { block: 1, data }) if !write => Answer::Data(data.to_vec()),
                Ok(Packet::Ack { block: 0 }) if write => Answer::Ack0,
                Ok(Packet::Error {
                    code: ErrorCode::OptionRefused,
                    ..
                }) if with_options => break true,
                Ok(Packet::Error { code, message }) => {
                    return Err(TransferError::Peer {
                        peer: "server",
                        code,
                        message: message.into_owned(),
                    }
                    .into());
                }
                Ok(other) => {
                    let why = format!(
                        "unexpected {:?} packet in answer to the request",
                        other.opcode()
                    );
                    let _ = socket.send_to(&Packet::error(ErrorCode::IllegalOperation, &why), from);
                    return Err(TransferError::Protocol(why).into());
                }
                Err(e) => {
                    let why = format!("malformed answer to the request: {e}");
                    let _ = socket.send_to(&Packet::error(ErrorCode::IllegalOperation, &why), from);
                    return Err(TransferError::Protocol(why).into());
                }
            };
            let rtt = (tries == 1).then(|| sent.elapsed());
            return Ok(Negotiated {
                socket,
                peer: from,
                answer,
                fallback,
                rtt,
            });
        };
        if refused {
            with_options = false;
            fallback = Some("the server refused the options (ERROR 8)");
            tries = 0;
            continue;
        }
        if with_options {
            // One unanswered request with options: the server may be one that
            // ignores such requests. Ask once, at once, without them.
            with_options = false;
            fallback = Some("no answer to a request with options; asked again without them");
            continue;
        }
        timer.timed_out();
        if tries > cfg.retries {
            return Err(ClientError::NoAnswer {
                server: cfg.server,
                tries,
            });
        }
    }
}

/// Waits for any datagram until `deadline`.
fn recv_until(
    socket: &UdpSocket,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<Option<(usize, SocketAddr)>, ClientError> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        socket
            .set_read_timeout(Some(deadline - now))
            .map_err(ClientError::Socket)?;
        match socket.recv_from(buf) {
            Ok(got) => return Ok(Some(got)),
            Err(e) if crate::net::is_transient(&e) => {}
            Err(e) => return Err(TransferError::Socket(e).into()),
        }
    }
}

fn refuse_oack(socket: &UdpSocket, peer: SocketAddr, why: String) -> ClientError {
    let _ = socket.send_to(&Packet::error(ErrorCode::OptionRefused, &why), peer);
    TransferError::Protocol(format!(
        "the server's option acknowledgement is not acceptable: {why}"
    ))
    .into()
}

/// Checks an OACK against what was asked, and turns it into transfer settings.
fn accept_oack(
    cfg: &ClientConfig,
    n: &Negotiated,
    granted: &Options,
) -> Result<Params, ClientError> {
    let asked = cfg.options(None);
    if let Some(b) = granted.blksize
        && asked.blksize.is_none_or(|a| b > a)
    {
        return Err(refuse_oack(
            &n.socket,
            n.peer,
            format!("blksize {b} was not asked for"),
        ));
    }
    if let Some(w) = granted.windowsize
        && asked.windowsize.is_none_or(|a| w > a)
    {
        return Err(refuse_oack(
            &n.socket,
            n.peer,
            format!("windowsize {w} was not asked for"),
        ));
    }
    let mut params = Params::negotiated(granted, cfg.retries, cfg.timeout);
    if let Some(rtt) = n.rtt {
        params.timer.sample(rtt);
    }
    Ok(params)
}

/// A download whose data has all arrived; the final ACK is still to be sent.
///
/// Make the file safe first (rename it into place), then [`Download::confirm`].
pub struct Download {
    socket: UdpSocket,
    report: Report,
    linger: Duration,
}

impl Download {
    /// What happened.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Sends the final ACK and stays briefly in case it is lost.
    pub fn confirm(self) -> Report {
        let mut ch = Channel::new(&self.socket, self.report.peer, "server");
        engine::confirm(&mut ch, &self.report.stats, self.linger);
        self.report
    }

    /// Tells the server the file could not be kept.
    pub fn reject(self, why: &str) {
        let _ = self
            .socket
            .send_to(&Packet::error(ErrorCode::NotDefined, why), self.report.peer);
    }
}

/// Downloads `remote` into `sink` (converting netascii to local line ends).
pub fn get(
    cfg: &ClientConfig,
    remote: &[u8],
    sink: &mut dyn Write,
    progress: &mut dyn Progress,
) -> Result<Download, ClientError> {
    let started = Instant::now();
    let tsize = (cfg.mode == Mode::Octet).then_some(0);
    let n = request(cfg, false, remote, tsize)?;
    let (mut params, options, first) = match &n.answer {
        Answer::Oack(granted) => (accept_oack(cfg, &n, granted)?, *granted, None),
        Answer::Data(data) => (
            Params::negotiated(&Options::default(), cfg.retries, cfg.timeout),
            Options::default(),
            Some(data.as_slice()),
        ),
        Answer::Ack0 => unreachable!("request() only accepts ACK 0 for uploads"),
    };
    progress.start(options.tsize);
    engine::size_buffers(&n.socket, params.blksize, params.windowsize);
    let mut ch = Channel::new(&n.socket, n.peer, "server");
    let start = match first {
        Some(data) => Start::FirstData(data),
        None => Start::Send(Packet::ack(0).to_vec()),
    };
    let mut update = |b| progress.update(b);
    let stats = engine::receive_in_mode(
        &mut ch,
        &mut params,
        start,
        cfg.mode,
        sink,
        None,
        &mut update,
    )?;
    sink.flush().map_err(|e| ch.write_failed(e))?;
    let report = Report {
        stats,
        options,
        fallback: n.fallback,
        elapsed: started.elapsed(),
        peer: n.peer,
    };
    Ok(Download {
        linger: params.timer.linger(),
        socket: n.socket,
        report,
    })
}

/// Uploads `source` as `remote`; `size` (when known) is announced as `tsize`.
pub fn put(
    cfg: &ClientConfig,
    remote: &[u8],
    source: &mut dyn Read,
    size: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<Report, ClientError> {
    let started = Instant::now();
    let tsize = if cfg.mode == Mode::Octet { size } else { None };
    let n = request(cfg, true, remote, tsize)?;
    let (mut params, options) = match &n.answer {
        Answer::Oack(granted) => (accept_oack(cfg, &n, granted)?, *granted),
        Answer::Ack0 => (
            Params::negotiated(&Options::default(), cfg.retries, cfg.timeout),
            Options::default(),
        ),
        Answer::Data(_) => unreachable!("request() only accepts DATA 1 for downloads"),
    };
    progress.start(size);
    engine::size_buffers(&n.socket, params.blksize, params.windowsize);
    let mut ch = Channel::new(&n.socket, n.peer, "server");
    let mut update = |b| progress.update(b);
    let stats = engine::send_in_mode(&mut ch, &mut params, None, cfg.mode, source, &mut update)?;
    Ok(Report {
        stats,
        options,
        fallback: n.fallback,
        elapsed: started.elapsed(),
        peer: n.peer,
    })
}
