//! UDP for lessons 07–09: send a datagram, receive one, and an echo server that answers every sender.
//!
//! UDP has no connection. The notes' three scripts show everything there is:
//!
//! - lesson 07, send: `socket(AF_INET, SOCK_DGRAM)` → `sendto(data, (ip, port))` →
//!   `close()`. Nothing checks that anyone is listening: `发送完成` ("sent") only
//!   means the datagram left this machine.
//! - lesson 08, receive: `bind` → `recvfrom(1024)` gives one datagram and the
//!   address it came from, `(data, (ip, port))`.
//! - lesson 09, echo: the server loops over `recvfrom` and `sendto(data, addr)`
//!   answers *whoever sent this datagram*; the client sends lines, prints each
//!   echo, and stops after `exit`.
//!
//! [`server::serve`] is lesson 08/09's server and [`client::send`] lesson 07/09's client. What
//! they add to the notes, and why:
//!
//! - **Every sender gets its answer.** The server never `connect()`s its socket,
//!   so each `recv_from` may come from someone new and each reply goes to the
//!   address that datagram came from. (`nc -u -l` connects to its first peer and
//!   silently ignores everyone else — the bug learners hit when two clients test
//!   one server.)
//! - **Datagrams arrive whole, or we say so.** `recvfrom(1024)` cuts a longer
//!   datagram to 1024 bytes and throws the rest away without a word. We read into
//!   a buffer larger than any UDP payload can be (see [`datagram::DatagramReader`]).
//! - **A datagram is a message.** Unlike TCP (lesson 13), UDP keeps message
//!   boundaries: one `sendto` is one `recvfrom`. So each datagram is decoded on its
//!   own — a character cannot continue in the next datagram, which may come from
//!   someone else.
//! - **Replies are checked against the address we sent to.** The client's socket
//!   is not connected either, so it can show a datagram from a third address
//!   (`[ADDR] text`) instead of mistaking it for the answer, and a reply that
//!   never comes is reported after `--wait` seconds instead of blocking forever
//!   in `recvfrom` like the notes' client.
//! - **A busy server works in batches.** The notes' loop makes three system calls
//!   per datagram (`recvfrom`, `sendto`, and the `write` behind `print`); each is
//!   a trip into the kernel and back, and on a busy server those trips, not
//!   Python or Rust, are much of the cost. When many datagrams are waiting,
//!   [`server::serve`] takes up to 32 of them with one `recvmmsg`, prints them with one
//!   `write` and answers them with one `sendmmsg`. Each is still handled as its
//!   own message, in order; with one datagram at a time (a person typing)
//!   nothing changes.

pub mod client;
pub mod datagram;
pub mod server;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::addr::{AddrError, describe_io};
use crate::error::{Blame, UsageError};
use crate::message::SendError;
use crate::output::{no_reply_summary, plural};

/// `udp-echo serve`'s port when none is given (the notes' lesson 09 server uses 8090).
pub const DEFAULT_PORT: u16 = 8090;

/// The largest UDP payload to an IPv4 address: the IPv4 total length is a 16-bit
/// field (65535) and includes the 20-byte IP header and the 8-byte UDP header.
pub const MAX_PAYLOAD_V4: usize = 65_535 - 20 - 8;

/// The largest UDP payload to an IPv6 address: the IPv6 payload length (65535)
/// excludes IPv6's own header but includes the 8-byte UDP header. (Jumbograms,
/// RFC 2675, go beyond this; nothing a learner meets uses them.)
pub const MAX_PAYLOAD_V6: usize = 65_535 - 8;

/// How often a waiting loop looks at the stop flag. A UDP socket cannot be "shut
/// down" to wake a thread blocked in `recv_from` the way a TCP socket can
/// ([`Shutdown`](crate::shutdown::Shutdown)), so the server waits in slices
/// this long: Ctrl-C is noticed within a tenth of a second.
const TICK: Duration = Duration::from_millis(100);

/// The largest payload one datagram to `addr` can carry. An IPv4 client of a
/// dual-stack server (`::ffff:a.b.c.d`) is still reached over IPv4.
pub fn max_payload(addr: &SocketAddr) -> usize {
    match addr.ip().to_canonical() {
        IpAddr::V4(_) => MAX_PAYLOAD_V4,
        IpAddr::V6(_) => MAX_PAYLOAD_V6,
    }
}

/// What went wrong in [`server::serve`] or [`client::send`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad host, port or address family.
    #[error("{0}")]
    Addr(#[from] AddrError),
    /// A message could not be turned into bytes (`--strict-encoding`, bad `--send-hex`).
    #[error("{0}")]
    Message(#[from] SendError),
    /// Something on the command line cannot work (a message too long for a datagram, …).
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// `sendto` failed. (The error is part of the message, not a `source`: a
    /// broken pipe here would be the network's, not our stdout's.)
    #[error("cannot send to {addr}: {}{}", describe_io(.error), send_hint(.error, *.broadcast))]
    Send {
        /// Where to.
        addr: String,
        /// What the OS said.
        error: io::Error,
        /// Was `--broadcast` given?
        broadcast: bool,
    },
    /// Any other socket operation failed.
    #[error("{what}: {}", describe_io(.error))]
    Socket {
        /// `receive`, `bind`, …
        what: &'static str,
        /// What the OS said.
        error: io::Error,
    },
    /// Reading stdin failed.
    #[error("reading stdin: {0}")]
    Stdin(#[source] io::Error),
    /// Writing to stdout failed (a broken pipe here is a reader that has had
    /// enough, as in `udp-echo send … | head -1`: not an error).
    #[error("cannot write to stdout: {0}")]
    Output(#[source] io::Error),
    /// The run finished, but not everything was answered or sent.
    #[error("{}", incomplete(*.missing, *.sent, *.not_sent, *.wait))]
    Incomplete {
        /// Datagrams that got no reply within `--wait`.
        missing: u64,
        /// Datagrams sent.
        sent: u64,
        /// Lines or messages that could not be sent.
        not_sent: u64,
        /// How long each reply was waited for (None: no fixed limit).
        wait: Option<Duration>,
    },
}

impl Blame for Error {
    fn is_usage(&self) -> bool {
        match self {
            Error::Addr(e) => e.is_usage(),
            Error::Message(e) => e.is_usage(),
            Error::Usage(_) => true,
            _ => false,
        }
    }
}

fn send_hint(error: &io::Error, broadcast: bool) -> &'static str {
    // Linux refuses (EACCES) to send to a broadcast address — 255.255.255.255,
    // 192.168.1.255 on a /24 — from a socket without SO_BROADCAST. The datagram is
    // never sent: the check comes before anything leaves the machine.
    if crate::sys::is_broadcast_refusal(error) && !broadcast {
        " (sending to a broadcast address needs --broadcast)"
    } else {
        ""
    }
}

fn incomplete(missing: u64, sent: u64, not_sent: u64, wait: Option<Duration>) -> String {
    let mut parts = Vec::new();
    if missing > 0 {
        parts.push(no_reply_summary(missing, sent, "datagram", wait));
    }
    if not_sent > 0 {
        parts.push(format!("{not_sent} message{} not sent", plural(not_sent)));
    }
    parts.join("; ")
}

/// Why a message cannot be one datagram to `dest`.
fn too_long(len: usize, dest: &SocketAddr) -> Option<String> {
    let max = max_payload(dest);
    (len > max).then(|| {
        let family = if max == MAX_PAYLOAD_V4 {
            "IPv4"
        } else {
            "IPv6"
        };
        format!("{len} bytes is more than one UDP datagram can carry (at most {max} bytes to an {family} address)")
    })
}

/// What the tests of `serve`, `send` and the readers share: loopback sockets
/// with timeouts, and a server running in a thread with its output in memory.
#[cfg(test)]
mod test_support {
    use super::*;
    use std::net::UdpSocket;

    pub(super) const T: Duration = Duration::from_secs(10);

    /// A socket on loopback with timeouts, as every test socket has.
    pub(super) fn sock() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.set_write_timeout(Some(T)).unwrap();
        s
    }

    pub(super) fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 70_000];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    }

    pub(super) type Running = crate::testutil::Running<server::Summary, Error>;

    /// `serve` on 127.0.0.1:0 in a thread, its stdout and stderr in memory.
    pub(super) fn start(cfg: server::Config) -> Running {
        Running::udp(move |socket, io, sd| server::serve(socket, &cfg, io, sd))
    }
}
