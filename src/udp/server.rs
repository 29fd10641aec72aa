//! The server: lessons 08 and 09 (`udp-echo serve`).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};

use super::datagram::{Answer, BATCH, BatchReader, Datagram, send_answers, transient};
use super::{Error, MAX_PAYLOAD_V6, TICK, too_long};
use crate::addr::{describe_io, display_addr};
use crate::codec::Encoding;
use crate::error::UsageError;
use crate::message::{Echo, Incoming, Outgoing, Reply, SendOptions, Show};
use crate::output::{Io, Log, Timestamps, plural};
use crate::shutdown::Shutdown;
use crate::sys::{BatchSender, wait_readable};

/// The server counts distinct senders up to this many (so a flood of spoofed
/// source addresses cannot make it use unbounded memory).
const MAX_TRACKED_SENDERS: usize = 1 << 16;

/// How [`serve`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// What to answer.
    pub reply: Reply,
    /// Stop after this many datagrams (`--count`; lesson 08's server receives one).
    pub count: Option<u64>,
    /// How datagrams are printed.
    pub show: Show,
    /// `--timestamps`: the time before each datagram printed.
    pub stamps: Option<Timestamps>,
    /// The encoding senders use (`--recv-encoding`). When it is not
    /// `send.encoding`, the echo sends back the text, re-encoded.
    pub recv_encoding: &'static Encoding,
    /// How `--reply` text and re-encoded echoes are encoded.
    pub send: SendOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reply: Reply::Echo,
            count: None,
            show: Show::Text(encoding_rs::UTF_8),
            stamps: None,
            recv_encoding: encoding_rs::UTF_8,
            send: SendOptions::default(),
        }
    }
}

/// Totals printed when the server stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Datagrams received (empty ones too).
    pub datagrams: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Distinct sender addresses (counted up to 65536).
    pub senders: u64,
    /// Datagrams sent back.
    pub replies: u64,
    /// Payload bytes sent back.
    pub bytes_out: u64,
    /// Datagrams that arrived cut short.
    pub truncated: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} datagram{} ({} bytes) from {} sender{}, sent {} repl{} ({} bytes)",
            self.datagrams,
            plural(self.datagrams),
            self.bytes_in,
            self.senders,
            plural(self.senders),
            self.replies,
            if self.replies == 1 { "y" } else { "ies" },
            self.bytes_out
        )?;
        if self.truncated > 0 {
            write!(f, ", {} truncated", self.truncated)?;
        }
        Ok(())
    }
}

/// What the server remembers about a sender: only which warnings it has had, so
/// each is given once per sender rather than once per datagram.
#[derive(Default)]
struct Sender {
    warned_decode: bool,
    warned_encode: bool,
}

/// Refuse (`--strict-encoding`, too long) or warn about a `--reply` text once,
/// before the first datagram.
fn check_reply_text(cfg: &Config, log: &Log) -> Result<Option<Vec<u8>>, UsageError> {
    let Reply::Text(text) = &cfg.reply else {
        return Ok(None);
    };
    let wire = Outgoing::new(cfg.send)
        .message(text)
        .map_err(|e| UsageError(format!("--reply: {e}")))?;
    if let Some(w) = wire.warning(cfg.send.encoding) {
        log.warn(format_args!("--reply: {w}"));
    }
    // Even to an IPv6 sender, and before `{peer}` makes it longer.
    if wire.bytes.len() > MAX_PAYLOAD_V6 {
        return Err(UsageError(format!(
            "--reply: {}",
            too_long(
                wire.bytes.len(),
                &SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
            )
            .unwrap_or_default()
        )));
    }
    // Without `{peer}` the reply is the same for everyone: encode it once.
    Ok((!text.contains("{peer}")).then_some(wire.bytes))
}

/// The echo server (lessons 08 and 09): receive datagrams on `socket`, print each
/// as `[ADDR] text` on `out`, and answer each sender as `cfg.reply` says, until
/// `cfg.count` datagrams have arrived or `shutdown` is triggered (Ctrl-C).
///
/// `socket` comes bound — the notes' steps 1 to 3 (create the socket, choose
/// `('', 8090)`, bind), which [`crate::net::udp_socket`] does; this is steps 4
/// to 6, in a loop. Logs `listening on ADDR` first (scripts and tests wait for
/// that line) and the totals last. Nothing a sender does stops it: a datagram it
/// cannot answer is reported on `log` and the next one is served. What stops it
/// is stdout failing (a full disk, a closed pipe): it returns
/// [`Error::Output`] rather than go on losing every datagram unseen, and
/// the datagrams that could not be shown are not answered either.
pub fn serve(
    socket: UdpSocket,
    cfg: &Config,
    io: Io,
    shutdown: &Shutdown,
) -> Result<Summary, Error> {
    let (out, log) = (&io.out, &io.log);
    let fixed_reply = check_reply_text(cfg, log)?;
    let local = socket.local_addr().map_err(|error| Error::Socket {
        what: "local address",
        error,
    })?;
    log.always(format_args!("listening on {}", display_addr(&local)));

    let mut summary = Summary::default();
    let mut senders: HashMap<SocketAddr, Sender> = HashMap::new();
    let mut reader = BatchReader::new(BATCH);
    let mut sender = BatchSender::new(BATCH);
    let mut printed = Vec::new();
    let mut answers: Vec<Answer> = Vec::new();
    // Is the socket's queue (probably) empty? Then wait for it with poll. After a
    // full batch more may be waiting: read again at once, without a poll call.
    let mut drained = true;
    while !shutdown.is_triggered() && cfg.count.is_none_or(|n| summary.datagrams < n) {
        // 4. 接收数据 — recvfrom, but never wait longer than TICK, so a Ctrl-C
        //    (which only sets a flag) is seen promptly.
        if drained {
            match wait_readable(&socket, TICK) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    return Err(Error::Socket {
                        what: "wait for datagrams",
                        error,
                    });
                }
            }
        }
        // Every datagram that is already there, but never more than --count allows:
        // the ones after it stay for whoever reads the socket next.
        let want = cfg.count.map_or(BATCH, |n| {
            (n - summary.datagrams).min(BATCH as u64) as usize
        });
        let got = match reader.recv(&socket, want) {
            Ok(got) => got,
            // Nothing after all: poll said "ready" but Linux dropped the datagram
            // (a bad checksum), or the last batch took everything.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                drained = true;
                continue;
            }
            Err(e) if transient(&e) => {
                log.verbose(format_args!("receive: {} (ignored)", describe_io(&e)));
                continue;
            }
            Err(error) => {
                return Err(Error::Socket {
                    what: "receive",
                    error,
                });
            }
        };
        drained = got < want;

        printed.clear();
        answers.clear();
        for i in 0..got {
            let d = reader.datagram(i);
            let name = display_addr(&d.from);
            summary.datagrams += 1;
            summary.bytes_in += d.payload.len() as u64;
            let key = SocketAddr::new(d.from.ip().to_canonical(), d.from.port());
            if !senders.contains_key(&key) && senders.len() < MAX_TRACKED_SENDERS {
                senders.insert(key, Sender::default());
                summary.senders += 1;
            }
            let mut untracked = Sender::default();
            let sender = senders.get_mut(&key).unwrap_or(&mut untracked);
            log.verbose(format_args!("{name}: received {} bytes", d.payload.len()));
            if d.truncated {
                summary.truncated += 1;
                log.warn(format_args!(
                    "{name}: datagram longer than {} bytes, cut to that length (the rest is lost)",
                    d.payload.len()
                ));
            }

            // 5. Print it: a fresh decoder for every datagram (each is a message
            //    of its own), with the sender's address in front, like the notes'
            //    `print(data)` shows `(b'...', ('192.168.1.15', 52236))`. The
            //    lines of the whole batch are written together, below.
            let mut incoming = Incoming::new(cfg.show, Some(format!("[{name}] ")))
                .with_timestamps(cfg.stamps.clone());
            incoming.render_whole(d.payload, &mut printed);
            if let Some(w) = incoming.take_error_warning()
                && !std::mem::replace(&mut sender.warned_decode, true)
            {
                log.warn(format_args!("{name}: {w}"));
            }

            // 6. Answer *this* sender: `sendto(data, addr)` with the address
            //    recvfrom returned. No connect(): the next datagram may be someone
            //    else's. (Sent with the rest of the batch, below.)
            let Some(reply) = reply_for(cfg, fixed_reply.as_deref(), &d, &name, sender, log) else {
                continue;
            };
            if let Some(why) = too_long(reply.len(), &d.from) {
                log.warn(format_args!("{name}: reply not sent: {why}"));
                continue;
            }
            answers.push(Answer {
                bytes: reply,
                to: d.from,
                name,
            });
        }
        // One write for the batch's lines, then one sendmmsg for its replies.
        if let Err(e) = out.write(&printed) {
            // Nobody reads our stdout any more (`udp-echo serve | head`): not an
            // error (the binary exits 0), but say once why the server stops.
            if e.kind() == io::ErrorKind::BrokenPipe {
                log.info(format_args!("stdout was closed (broken pipe): stopping"));
            }
            log.info(format_args!("{summary}"));
            return Err(Error::Output(e));
        }
        send_answers(&socket, &answers, &mut sender, &mut summary, log);
    }
    log.info(format_args!("{summary}"));
    Ok(summary)
}

/// The bytes to send back for datagram `d`, or None for no reply.
fn reply_for(
    cfg: &Config,
    fixed: Option<&[u8]>,
    d: &Datagram<'_>,
    name: &str,
    sender: &mut Sender,
    log: &Log,
) -> Option<Vec<u8>> {
    match &cfg.reply {
        Reply::Nothing => None,
        Reply::Echo => {
            // GBK from a Windows NetAssist, say, back as UTF-8: bytes → text in
            // the encoding it was sent in → bytes in the one we send in. With
            // one encoding, the bytes as they came.
            let mut echo = Echo::new(cfg.recv_encoding, cfg.send.encoding, cfg.send.unmappable);
            match echo.message(d.payload) {
                Ok(wire) => {
                    if let Some(w) = wire.warning(cfg.send.encoding)
                        && !std::mem::replace(&mut sender.warned_encode, true)
                    {
                        log.warn(format_args!("{name}: echo: {w}"));
                    }
                    Some(wire.bytes)
                }
                Err(e) => {
                    log.warn(format_args!("{name}: not echoed: {e}"));
                    None
                }
            }
        }
        Reply::Text(text) => match fixed {
            Some(bytes) => Some(bytes.to_vec()),
            None => match Outgoing::new(cfg.send).message(&text.replace("{peer}", name)) {
                Ok(w) => Some(w.bytes),
                Err(e) => {
                    log.warn(format_args!("{name}: reply not sent: {e}"));
                    None
                }
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ListenSpec, udp_socket};
    use crate::output::{Output, Verbosity};
    use crate::testutil::SharedBuf;
    use crate::testutil::{assert_refused_before_listening, unsendable_reply};
    use crate::udp::MAX_PAYLOAD_V4;
    use crate::udp::test_support::*;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    /// Send `bytes` from `a` to `to`, and the answer.
    fn ask(a: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
        a.send_to(bytes, to).unwrap();
        recv(a).0
    }

    #[test]
    fn serve_echoes_every_sender_and_prints_each_datagram() {
        let srv = start(Config::default());
        let (a, b) = (sock(), sock());
        // Interleaved, as two people at two terminals would: each gets its own echo.
        a.send_to("我爱你".as_bytes(), srv.addr).unwrap();
        b.send_to(b"from b", srv.addr).unwrap();
        a.send_to(b"again", srv.addr).unwrap();
        assert_eq!(recv(&a), ("我爱你".as_bytes().to_vec(), srv.addr));
        assert_eq!(recv(&b), (b"from b".to_vec(), srv.addr));
        assert_eq!(recv(&a).0, b"again");
        let (out, log) = (srv.out.clone(), srv.log.clone());
        let summary = srv.stop();
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(
            out.text(),
            format!("[{pa}] 我爱你\n[{pb}] from b\n[{pa}] again\n")
        );
        assert_eq!(
            summary,
            Summary {
                datagrams: 3,
                bytes_in: 20,
                senders: 2,
                replies: 3,
                bytes_out: 20,
                truncated: 0
            }
        );
        let log = log.text();
        assert!(log.starts_with("listening on 127.0.0.1:"), "{log}");
        assert!(
            log.ends_with(
                "received 3 datagrams (20 bytes) from 2 senders, sent 3 replies (20 bytes)\n"
            ),
            "{log}"
        );
    }

    #[test]
    fn reply_text_names_the_peer_and_no_echo_stays_silent() {
        let srv = start(Config {
            reply: Reply::Text("你好客户端: {peer}".into()),
            ..Config::default()
        });
        let a = sock();
        let me = a.local_addr().unwrap();
        assert_eq!(
            ask(&a, srv.addr, b"hi"),
            format!("你好客户端: {me}").as_bytes()
        );
        srv.stop();

        let srv = start(Config {
            reply: Reply::Nothing,
            count: Some(1),
            ..Config::default()
        });
        a.send_to(b"lesson 08", srv.addr).unwrap();
        // --count 1: the server ends by itself after one datagram.
        let summary = srv.finished();
        assert_eq!((summary.datagrams, summary.replies), (1, 0));
        assert_eq!(srv.out.text(), format!("[{me}] lesson 08\n"));
        a.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(a.recv_from(&mut [0u8; 16]).is_err(), "no reply expected");
    }

    #[test]
    fn echo_with_two_encodings_sends_the_text_back_re_encoded() {
        let srv = start(Config {
            recv_encoding: encoding_rs::GBK,
            show: Show::Text(encoding_rs::GBK),
            ..Config::default()
        });
        let a = sock();
        // 你好 in GBK comes back in UTF-8.
        assert_eq!(ask(&a, srv.addr, b"\xc4\xe3\xba\xc3"), "你好".as_bytes());
        let out = srv.out.clone();
        srv.stop();
        assert!(out.text().ends_with("] 你好\n"), "{}", out.text());

        // Same encoding both ways: the bytes go back untouched, even invalid ones.
        let gbk = SendOptions {
            encoding: encoding_rs::GBK,
            ..SendOptions::default()
        };
        let srv = start(Config {
            recv_encoding: encoding_rs::GBK,
            send: gbk,
            ..Config::default()
        });
        assert_eq!(ask(&a, srv.addr, b"\xc4\xe3\xff"), b"\xc4\xe3\xff");
        srv.stop();

        // UTF-8 to GBK, with a character GBK lacks: '?' and one warning.
        let srv = start(Config {
            send: gbk,
            ..Config::default()
        });
        assert_eq!(ask(&a, srv.addr, "你😀".as_bytes()), b"\xc4\xe3?");
        let log = srv.log.clone();
        srv.stop();
        assert!(
            log.text()
                .contains("'😀' (U+1F600) cannot be encoded in GBK"),
            "{}",
            log.text()
        );
    }

    #[test]
    fn empty_and_largest_datagrams_come_back_whole() {
        let srv = start(Config::default());
        let a = sock();
        assert_eq!(ask(&a, srv.addr, b""), b"");
        let big: Vec<u8> = (0..MAX_PAYLOAD_V4).map(|i| (i % 251) as u8).collect();
        let back = ask(&a, srv.addr, &big);
        assert_eq!(back.len(), MAX_PAYLOAD_V4);
        assert!(back == big, "the echo differs");
        let summary = srv.stop();
        assert_eq!(summary.bytes_in, MAX_PAYLOAD_V4 as u64);
        assert_eq!(summary.truncated, 0);
    }

    #[test]
    fn shutdown_wakes_a_waiting_server() {
        let srv = start(Config::default());
        let a = sock();
        // The echo proves the server is in its loop, waiting for the next datagram.
        assert_eq!(ask(&a, srv.addr, b"x"), b"x");
        let started = Instant::now();
        srv.shutdown.trigger();
        let summary = srv.finished();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(summary.datagrams, 1);
    }

    #[test]
    fn a_queue_of_datagrams_is_served_in_batches_in_order_and_count_stops_mid_batch() {
        // 40 datagrams wait before the server reads once: more than one batch, and
        // --count 35 ends in the middle of the second.
        let socket = udp_socket(ListenSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            ..ListenSpec::any(0)
        })
        .unwrap();
        let addr = socket.local_addr().unwrap();
        let left = socket.try_clone().unwrap();
        let a = sock();
        let me = a.local_addr().unwrap();
        for i in 0..40 {
            a.send_to(format!("n{i}").as_bytes(), addr).unwrap();
        }
        let out = SharedBuf::new();
        let cfg = Config {
            count: Some(35),
            ..Config::default()
        };
        let io = Io::new(
            Output::to_writer(out.clone()),
            Log::to_writer(SharedBuf::new(), Verbosity::Normal),
        );
        let summary = serve(socket, &cfg, io, &Shutdown::new()).unwrap();
        assert_eq!((summary.datagrams, summary.replies), (35, 35));
        assert_eq!((summary.bytes_in, summary.bytes_out), (95, 95));
        let expected: String = (0..35).map(|i| format!("[{me}] n{i}\n")).collect();
        assert_eq!(out.text(), expected);
        for i in 0..35 {
            assert_eq!(recv(&a), (format!("n{i}").into_bytes(), addr));
        }
        // The five after --count are still there for whoever reads next.
        left.set_read_timeout(Some(T)).unwrap();
        for i in 35..40 {
            assert_eq!(recv(&left).0, format!("n{i}").into_bytes());
        }
    }

    #[test]
    fn a_sender_that_vanished_does_not_stop_the_server() {
        let srv = start(Config::default());
        {
            let gone = sock();
            gone.send_to(b"bye", srv.addr).unwrap();
        } // closed before the echo arrives: the echo goes to a closed port.
        let a = sock();
        for i in 0..3 {
            assert_eq!(
                ask(&a, srv.addr, format!("{i}").as_bytes()),
                format!("{i}").as_bytes()
            );
        }
        assert_eq!(srv.stop().datagrams, 4);
    }

    #[test]
    fn strict_reply_text_is_refused_before_listening() {
        let mut cfg = Config::default();
        (cfg.reply, cfg.send) = unsendable_reply();
        assert_refused_before_listening(start(cfg));
    }
}
