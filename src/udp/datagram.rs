//! One datagram, or a batch of them, on a socket: received whole (or known to be
//! cut), and a batch of replies sent with one `sendmmsg`.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use super::server;
use crate::addr::describe_io;
use crate::net::is_transient;
use crate::output::Log;
use crate::sys::{self, BatchSender};

/// How many datagrams the server takes with one `recvmmsg` (and answers with one
/// `sendmmsg`). A client with a window of 32 datagrams in flight gets them all
/// served in one round; each needs a 64 KiB buffer (see [`BatchReader`]), so this
/// is 2 MiB, most of it never touched.
pub(super) const BATCH: usize = 32;

/// One datagram as received: its bytes, who sent it, and whether it was cut.
#[derive(Debug)]
pub struct Datagram<'a> {
    /// The payload (all of it, unless `truncated`).
    pub payload: &'a [u8],
    /// The sender's address, exactly as the socket reports it (an IPv4 sender of a
    /// dual-stack socket is `[::ffff:a.b.c.d]:port`; show it with [`display_addr`](crate::addr::display_addr)).
    pub from: SocketAddr,
    /// The datagram was longer than the buffer, and the rest is lost.
    pub truncated: bool,
}

impl<'a> Datagram<'a> {
    /// The `n` bytes a receive put into `buf`, which is one byte larger than any
    /// datagram taken whole: a receive that filled it was cut (see [`DatagramReader`]).
    fn received(buf: &'a [u8], n: usize, from: SocketAddr) -> Self {
        let truncated = n == buf.len();
        let whole = if truncated { n - 1 } else { n };
        Datagram {
            payload: &buf[..whole],
            from,
            truncated,
        }
    }
}

/// The longest datagram a reader takes whole by default: any a UDP socket can give.
const WHOLE: usize = u16::MAX as usize;

/// Receives whole datagrams, and knows when one was not whole.
///
/// `recv_from` copies at most as many bytes as the buffer holds and silently
/// drops the rest of the datagram: the notes' `recvfrom(1024)` loses everything
/// after byte 1024. The usual fix is to ask the kernel with `MSG_TRUNC` (with
/// `recvmsg`, the flag comes back set when the datagram did not fit); std does not
/// expose it, and socket2's `recvmsg` wants a buffer of `MaybeUninit<u8>` that we
/// could only read back with `unsafe`, which this crate forbids.
///
/// So we use a buffer *one byte larger* than the largest datagram we accept whole:
/// a read that returns fewer bytes than the buffer holds got the whole datagram, and
/// a read that fills the buffer exactly was cut. With the default 65536-byte buffer
/// that never happens to a UDP payload (at most 65527 bytes, see
/// [`MAX_PAYLOAD_V6`](super::MAX_PAYLOAD_V6)), but if it ever does (an IPv6 jumbogram, say) it is
/// reported, not hidden.
pub struct DatagramReader {
    buf: Vec<u8>,
}

impl Default for DatagramReader {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramReader {
    /// A reader for datagrams of any size UDP allows (a 64 KiB buffer).
    pub fn new() -> Self {
        Self::with_limit(WHOLE)
    }

    /// A reader that receives datagrams of up to `limit` bytes whole and reports
    /// longer ones as truncated (to `limit` bytes).
    pub fn with_limit(limit: usize) -> Self {
        DatagramReader {
            buf: vec![0u8; limit + 1],
        }
    }

    /// One `recv_from`. Errors are the socket's, unchanged (timeouts included).
    pub fn recv_from(&mut self, socket: &UdpSocket) -> io::Result<Datagram<'_>> {
        let (n, from) = socket.recv_from(&mut self.buf)?;
        Ok(Datagram::received(&self.buf, n, from))
    }
}

/// Receives up to [`BATCH`] datagrams with one `recvmmsg` system call (where
/// there is one: [`sys::BatchReader`]): what [`DatagramReader`] does for one,
/// with the same buffer one byte larger than any UDP payload, so a datagram
/// that fills it was cut (and is reported as such).
pub(super) struct BatchReader(sys::BatchReader);

impl BatchReader {
    pub(super) fn new(batch: usize) -> Self {
        BatchReader(sys::BatchReader::new(batch, WHOLE + 1))
    }

    /// Takes the datagrams already waiting, at most `max` (and at most the batch
    /// size), without waiting for any. Returns how many; none waiting is an
    /// error of kind `WouldBlock`.
    pub(super) fn recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        self.0.recv(socket, max)
    }

    /// Datagram `i` of the last [`BatchReader::recv`].
    pub(super) fn datagram(&self, i: usize) -> Datagram<'_> {
        let (buf, n, from) = self.0.get(i);
        Datagram::received(buf, n, from)
    }
}

/// A reply waiting to be sent with the rest of its batch.
pub(super) struct Answer {
    pub(super) bytes: Vec<u8>,
    pub(super) to: SocketAddr,
    /// The sender's address as printed, for the log.
    pub(super) name: String,
}

/// Sends a batch of replies with as few `sendmmsg` calls as possible, and counts
/// them. `sendmmsg` stops at the first reply the kernel refuses and says how many
/// went out; that one is reported (its sender is gone or unreachable: its
/// problem, not the server's) and the rest are sent with the next call.
pub(super) fn send_answers(
    socket: &UdpSocket,
    answers: &[Answer],
    sender: &mut BatchSender,
    summary: &mut server::Summary,
    log: &Log,
) {
    let mut next = 0;
    while next < answers.len() {
        let rest = &answers[next..];
        let datagrams: Vec<(&[u8], SocketAddr)> =
            rest.iter().map(|a| (&a.bytes[..], a.to)).collect();
        match sender.send(socket, &datagrams) {
            Ok(sent) => {
                let before = next;
                for (&n, a) in sent.iter().zip(rest) {
                    summary.replies += 1;
                    summary.bytes_out += n as u64;
                    log.verbose(format_args!("{}: sent {} bytes", a.name, n));
                    next += 1;
                }
                // (sendmmsg sends at least one or fails; never spin if it did not.)
                next = next.max(before + 1);
            }
            Err(e) => {
                let a = &rest[0];
                log.warn(format_args!(
                    "{}: reply not sent: {}",
                    a.name,
                    describe_io(&e)
                ));
                next += 1;
            }
        }
    }
}

/// Errors of a receive that only mean "nothing (useful) yet": a timeout, a signal,
/// or an ICMP error ("port unreachable", "host unreachable") about an earlier
/// send, which some systems report on the next receive. None of them is a reason
/// to stop a UDP server.
pub(super) fn transient(e: &io::Error) -> bool {
    is_transient(e)
        || matches!(
            e.kind(),
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::test_support::*;

    #[test]
    fn a_datagram_longer_than_the_buffer_is_reported_as_truncated() {
        let (a, b) = (sock(), sock());
        let mut reader = DatagramReader::with_limit(16);
        a.send_to(&[7u8; 16], b.local_addr().unwrap()).unwrap();
        a.send_to(&[8u8; 17], b.local_addr().unwrap()).unwrap();
        let d = reader.recv_from(&b).unwrap();
        assert_eq!((d.payload.len(), d.truncated), (16, false));
        let d = reader.recv_from(&b).unwrap();
        assert_eq!((d.payload, d.truncated), (&[8u8; 16][..], true));
    }
}
