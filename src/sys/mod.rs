//! The platform layer: every call that std does not offer on every system, behind small functions.
//!
//! The rest of the library asks this module, never the operating system
//! directly, for what the course's tools need beyond std: waiting for a
//! socket with a timeout, copying a socket into nothing, receiving and sending
//! datagrams in batches, urgent data, the terminal, and a few file details.
//! Each function has two implementations:
//!
//! - `unix.rs`, the fast paths, through `nix`: `ppoll`, `splice` and wide
//!   pipes, `recvmmsg`/`sendmmsg`, `IP_RECVERR`, `termios`, `pthread_kill`,
//!   `MSG_OOB`, `RLIMIT_NOFILE`. Used on Unix (Linux is what is tested).
//! - `portable.rs`, std and socket2 only: the same results with a few more
//!   system calls (a read timeout and a peek instead of `ppoll`, a loop of
//!   `recv_from` instead of `recvmmsg`), and where std has no way at all (a
//!   terminal's echo, another thread's blocking read) nothing, as each
//!   function says. This is what a Windows build uses; the `portable`
//!   feature forces it on Linux too, so that it is tested there
//!   (`cargo test --features portable`).
//!
//! | function | `unix.rs` | `portable.rs` |
//! |---|---|---|
//! | [`wait_readable`], [`wait_writable`], [`wait_readable_any`], [`Wake`] | `ppoll`, a pipe | read timeout + peek, short pauses, a flag |
//! | [`discard`] | `splice` into `/dev/null` | `io::copy` into `io::sink` |
//! | [`widen_stdio_pipes`] | `F_SETPIPE_SZ` | nothing (std cannot size a pipe) |
//! | [`BatchReader`], [`BatchSender`] | `recvmmsg`, `sendmmsg` | `recv_from`, `send_to` in a loop |
//! | [`report_unreachable`], [`unreachable_destinations`] | `IP_RECVERR` error queue | nothing: the peer's silence tells instead |
//! | [`raise_fd_limit`], [`out_of_descriptors`] | `RLIMIT_NOFILE`, `EMFILE` | nothing; the error numbers via std |
//! | [`quiet_terminal`], [`interrupt_thread`], [`in_foreground`] | `termios`, `pthread_kill`, `tcgetpgrp` | nothing; nothing; yes |
//! | [`send_urgent`], [`UrgentWatch`] | `MSG_OOB`, `POLLPRI` | socket2's out-of-band calls |
//! | [`os_str_from_bytes`], [`open_quietly`], [`is_socket`] | raw bytes, `O_NONBLOCK\|O_NOCTTY`, file type | UTF-8, nothing, no |
//!
//! Nothing outside this module names `std::os`, `nix` or `libc`
//! (`tests/platform.rs` checks).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::FileType;
use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::Duration;

#[cfg(all(unix, not(feature = "portable")))]
mod unix;
#[cfg(all(unix, not(feature = "portable")))]
use unix as imp;

#[cfg(not(all(unix, not(feature = "portable"))))]
mod portable;
#[cfg(not(all(unix, not(feature = "portable"))))]
use portable as imp;

#[cfg(all(test, unix))]
pub(crate) mod testing;

/// Is this build the std-only one (`portable.rs`)? Tests of what only the
/// fast paths do ask this.
pub const PORTABLE: bool = !cfg!(all(unix, not(feature = "portable")));

// ---------------------------------------------------------------------------
// Waiting for sockets.
// ---------------------------------------------------------------------------

/// Waits until `socket` has a datagram to read (or an error to report), at
/// most `timeout`; `Ok(false)` when the time ran out or a signal came.
///
/// A socket read timeout (`SO_RCVTIMEO`) would do for long waits, but the
/// kernel counts it in scheduler ticks (4 ms on many kernels, rounded up),
/// so a 5 ms wait can last 12: too coarse for a retransmission timer that
/// follows a LAN's round-trip time. The fast path is `ppoll`, which counts
/// in nanoseconds. The portable path does use a read timeout (and makes a
/// non-blocking socket block) while it waits, so no other thread may read
/// the socket meanwhile; its mode and timeout are as they were after.
pub fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    imp::wait_readable(socket, timeout)
}

/// Waits until `socket` has room to send a datagram, at most `timeout`
/// (for a non-blocking socket whose send said "would block").
pub fn wait_writable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    imp::wait_writable(socket, timeout)
}

/// Waits until any of `sockets` has a datagram to read, at most `timeout`;
/// `Ok(false)` when the time ran out. [`wait_readable`] for several sockets
/// (a TFTP client listens on its two transfer IDs at once).
pub fn wait_readable_any(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<bool> {
    imp::wait_readable_any(sockets, timeout)
}

/// The reading end of a wake-up call: [`wait_readable_or_woken`] returns
/// when the socket has a datagram or the [`Waker`] was called. A thread that
/// blocks on something else (stdin) uses it to get a waiting loop's attention.
pub struct Wake(imp::Wake);

/// The calling end of a [`Wake`]; it may go to another thread.
pub struct Waker(imp::Waker);

/// A connected [`Wake`] and [`Waker`].
pub fn wake_pair() -> io::Result<(Wake, Waker)> {
    let (wake, waker) = imp::wake_pair()?;
    Ok((Wake(wake), Waker(waker)))
}

impl Waker {
    /// Wake the waiting side (again). Fails once the [`Wake`] is gone.
    pub fn wake(&mut self) -> io::Result<()> {
        self.0.wake()
    }
}

impl Wake {
    /// Forget the wake-up calls made so far, without waiting.
    pub fn clear(&mut self) {
        self.0.clear()
    }
}

/// Waits until `socket` has a datagram or `wake` was woken, at most `timeout`;
/// `Ok(false)` when the time ran out. Which of the two it was is not said.
pub fn wait_readable_or_woken(
    socket: &UdpSocket,
    wake: &Wake,
    timeout: Duration,
) -> io::Result<bool> {
    imp::wait_readable_or_woken(socket, &wake.0, timeout)
}

// ---------------------------------------------------------------------------
// Moving bytes without looking at them.
// ---------------------------------------------------------------------------

/// Reads `stream` to its end and throws the bytes away (`tcp-server --sink`,
/// a throughput test's receiving end). `on_read` hears how many bytes each
/// step took. The fast path never copies them into our memory: `splice`
/// moves them from the socket into a pipe and from the pipe into
/// `/dev/null`, all inside the kernel.
///
/// Returns `Ok(false)`, having read nothing, where that is not available
/// (the caller then reads the ordinary way). Errors are the socket's, a read
/// timeout's included.
pub fn discard(stream: &TcpStream, on_read: impl FnMut(usize)) -> io::Result<bool> {
    imp::discard(stream, on_read)
}

/// Lets the pipes on our stdin and stdout (`head -c 2G /dev/zero | tcp-client …`)
/// hold 1 MiB instead of the default 64 KiB. When the kernel moves bytes
/// between a pipe and a socket (`io::copy` splices on Linux), each call moves
/// what the pipe holds, so a wider pipe means a sixteenth of the system calls
/// and of the sleeps and wake-ups between the two programs. Best effort: on
/// anything but a pipe, where the system caps pipes lower, or on the portable
/// path (std cannot size a pipe), nothing changes.
pub fn widen_stdio_pipes() {
    imp::widen_stdio_pipes()
}

// ---------------------------------------------------------------------------
// Datagrams in batches (udp-echo serve).
// ---------------------------------------------------------------------------

/// Receives the datagrams already waiting on a socket, up to a batch at a
/// time. The fast path is one `recvmmsg` call, `recvmsg` in a loop inside
/// the kernel: one trip into the kernel and back instead of one per datagram.
pub struct BatchReader(imp::BatchReader);

impl BatchReader {
    /// Room for `batch` datagrams of up to `size` bytes each (make it one more
    /// than the longest datagram expected: one that fills it was cut).
    pub fn new(batch: usize, size: usize) -> Self {
        BatchReader(imp::BatchReader::new(batch, size))
    }

    /// Takes the datagrams already waiting, at most `max` (and at most the
    /// batch size), without waiting for any. Returns how many; none waiting is
    /// an error of kind `WouldBlock`. The socket must be in blocking mode (it
    /// is again after the call).
    pub fn recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        self.0.recv(socket, max)
    }

    /// Datagram `i` of the last [`BatchReader::recv`]: its buffer (of which
    /// the first `len` bytes came), `len`, and its sender.
    pub fn get(&self, i: usize) -> (&[u8], usize, SocketAddr) {
        self.0.get(i)
    }
}

/// Sends datagrams a batch at a time: the fast path is one `sendmmsg` call.
pub struct BatchSender(imp::BatchSender);

impl BatchSender {
    /// Room for `batch` datagrams per call.
    pub fn new(batch: usize) -> Self {
        BatchSender(imp::BatchSender::new(batch))
    }

    /// Sends `datagrams` (bytes and destination each) in order, at most a
    /// batch, and returns how many bytes each that went out took. It stops
    /// at the first the system refuses: a result shorter than `datagrams`
    /// means the next one was not sent (send the rest again to hear why;
    /// `sendmmsg` cannot say more). `Err` means the first one failed.
    pub fn send(
        &mut self,
        socket: &UdpSocket,
        datagrams: &[(&[u8], SocketAddr)],
    ) -> io::Result<&[usize]> {
        self.0.send(socket, datagrams)
    }
}

/// Did a send fail because the destination is a broadcast address and the
/// socket did not ask for broadcasts (`EACCES` on Linux)?
pub fn is_broadcast_refusal(error: &io::Error) -> bool {
    imp::is_broadcast_refusal(error)
}

// ---------------------------------------------------------------------------
// ICMP "port unreachable" on an unconnected UDP socket (TFTP).
// ---------------------------------------------------------------------------

/// Asks the kernel to tell an unconnected UDP socket about ICMP errors
/// (`IP_RECVERR`, `IPV6_RECVERR`): a datagram to a closed port then comes
/// back as "port unreachable" in the socket's error queue, read with
/// [`unreachable_destinations`]. A TFTP transfer uses it to notice that its
/// peer has gone, while still answering datagrams from strangers (which a
/// connected socket would never see). Best effort: elsewhere, nothing changes
/// (the peer's silence ends the transfer instead, after its retries).
pub fn report_unreachable(socket: &UdpSocket) {
    imp::report_unreachable(socket)
}

/// The destinations of datagrams that met a closed port ("port
/// unreachable") since the last call, from the error queue of a socket set
/// up by [`report_unreachable`]. IPv4-mapped IPv6 addresses come back as IPv4.
/// None where there is no error queue.
pub fn unreachable_destinations(socket: &UdpSocket) -> Vec<SocketAddr> {
    imp::unreachable_destinations(socket)
}

// ---------------------------------------------------------------------------
// Descriptors.
// ---------------------------------------------------------------------------

/// Raises this process's soft limit on open file descriptors (`RLIMIT_NOFILE`)
/// to its hard limit, as most servers do, and returns the soft limit now in
/// force (None if it cannot be read, as on the portable path).
///
/// The soft limit is usually 1024, a default kept for programs that still use
/// `select()`; one thread per client never calls it, and each client costs
/// descriptors, so a thousand clients would otherwise run out. Only the hard
/// limit is a real ceiling, and raising up to it needs no privilege.
pub fn raise_fd_limit() -> Option<u64> {
    imp::raise_fd_limit()
}

/// Did an `accept` (or any call making a descriptor) fail for want of one:
/// this process's (`EMFILE`) or the whole system's (`ENFILE`)?
pub fn out_of_descriptors(e: &io::Error) -> bool {
    imp::out_of_descriptors(e)
}

// ---------------------------------------------------------------------------
// The terminal and threads (chat, udp-echo send).
// ---------------------------------------------------------------------------

/// A terminal's settings as they were, to put back with [`restore_terminal`].
#[derive(Clone)]
pub struct SavedTerminal(imp::SavedTerminal);

/// Takes the terminal on stdin out of its usual cooked mode into a quiet
/// one: no echo, no line buffering, no CR-to-NL (keys reach the line editor
/// untouched); Ctrl-C still a signal. Returns the settings to put back; None
/// when stdin is not a terminal, or on the portable path: std cannot change a
/// terminal's modes, and the line editor sets its own while it reads (only
/// keys typed ahead between two lines are echoed by the terminal then).
pub fn quiet_terminal() -> Option<SavedTerminal> {
    imp::quiet_terminal().map(SavedTerminal)
}

/// Puts the terminal on stdin back as `saved` found it.
pub fn restore_terminal(saved: &SavedTerminal) {
    imp::restore_terminal(&saved.0)
}

/// Makes a blocking read on `thread` return as Ctrl-C does (a SIGINT to that
/// thread, whose handler makes the read fail with `EINTR`). On the portable
/// path nothing happens: std cannot interrupt another thread, and the caller
/// stops waiting for it after a while.
pub fn interrupt_thread<T>(thread: &JoinHandle<T>) {
    imp::interrupt_thread(thread)
}

/// Is this process in the foreground of the terminal on stdin? A job sent to
/// the background that read the terminal would be stopped (SIGTTIN). False
/// when stdin is no terminal; always true on the portable path, which has no
/// job control (nor has Windows).
pub fn in_foreground() -> bool {
    imp::in_foreground()
}

// ---------------------------------------------------------------------------
// TCP urgent data (chat's hello).
// ---------------------------------------------------------------------------

/// Sends `byte` as TCP urgent data (`MSG_OOB`): a program that only calls
/// `recv()` never sees it, as the urgent byte is taken out of the stream.
pub fn send_urgent(stream: &TcpStream, byte: u8) -> io::Result<()> {
    imp::send_urgent(stream, byte)
}

/// What woke an [`UrgentWatch::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Woken {
    /// Bytes wait to be read (or the end of the stream, or an error): read now.
    pub data: bool,
    /// The expected urgent byte came, and was taken.
    pub urgent: bool,
}

/// Waits on a TCP stream for bytes or for one expected byte of urgent data
/// (another chat's hello), taking the urgent byte out of the way.
///
/// The fast path polls for `POLLIN | POLLPRI` and reads the urgent byte
/// with `recv(MSG_OOB)`. The portable one looks for urgent data with
/// socket2's `recv_out_of_band` between short waits for bytes, and only until
/// the first bytes: urgent data must be taken before a read passes its place
/// in the stream (it is lost then), and a chat sends its hello first. It
/// cannot read the urgent byte's value without `unsafe` (socket2 hands it
/// back uninitialised), so any one urgent byte counts as the expected one.
pub struct UrgentWatch(imp::UrgentWatch);

impl UrgentWatch {
    /// Watch for `byte`.
    pub fn new(byte: u8) -> Self {
        UrgentWatch(imp::UrgentWatch::new(byte))
    }

    /// Waits, without a time limit, until bytes or the urgent byte came. Both
    /// false: a signal interrupted the wait, or some other urgent byte was
    /// taken; wait again.
    pub fn wait(&mut self, stream: &TcpStream) -> io::Result<Woken> {
        self.0.wait(stream)
    }
}

// ---------------------------------------------------------------------------
// Files (TFTP).
// ---------------------------------------------------------------------------

/// A file name from the network (raw bytes) as a name for this system. On
/// Unix names are bytes, so GBK or any other non-UTF-8 name reaches the
/// filesystem unchanged. The portable path needs UTF-8 (Windows names are
/// UTF-16 underneath); other bytes become U+FFFD.
pub fn os_str_from_bytes(bytes: &[u8]) -> Cow<'_, OsStr> {
    imp::os_str_from_bytes(bytes)
}

/// Makes `options` open a file without ever blocking or taking over a
/// terminal (`O_NONBLOCK | O_NOCTTY`): a fifo swapped in for a regular file
/// at the last moment cannot hang the open, and reads of a regular file
/// ignore the flag. Nothing on the portable path, which has no such flags.
pub fn open_quietly(options: &mut cap_std::fs::OpenOptions) {
    imp::open_quietly(options)
}

/// Is this a Unix domain socket (which no file can be written to)? Always
/// false on the portable path, where std cannot tell one from other special
/// files: opening it then fails with the system's own reason.
pub fn is_socket(file_type: &FileType) -> bool {
    imp::is_socket(file_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    fn pair() -> (UdpSocket, UdpSocket) {
        let socket = || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).map(|()| s)
        };
        (socket().unwrap(), socket().unwrap())
    }

    #[test]
    fn wait_readable_times_out_then_sees_a_datagram_and_keeps_the_read_timeout() {
        let (a, b) = pair();
        let start = Instant::now();
        assert!(!wait_readable(&a, Duration::from_millis(30)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(!wait_readable(&a, Duration::ZERO).unwrap());
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        assert!(wait_readable(&a, Duration::from_secs(2)).unwrap());
        // Still there: the wait only looked.
        assert!(wait_readable(&a, Duration::ZERO).unwrap());
        assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_secs(2)));
        let mut buf = [0u8; 4];
        assert_eq!(a.recv_from(&mut buf).unwrap().0, 1);
        assert!(wait_writable(&a, Duration::from_secs(1)).unwrap());
    }

    #[test]
    fn wait_readable_works_on_a_nonblocking_socket() {
        let (a, b) = pair();
        a.set_nonblocking(true).unwrap();
        let start = Instant::now();
        assert!(!wait_readable(&a, Duration::from_millis(30)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30));
        let to = a.local_addr().unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.send_to(b"late", to).unwrap();
        });
        assert!(wait_readable(&a, Duration::from_secs(2)).unwrap());
        sender.join().unwrap();
        // Still non-blocking: nothing left after the one datagram.
        let mut buf = [0u8; 8];
        assert_eq!(a.recv_from(&mut buf).unwrap().0, 4);
        let e = a.recv_from(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn wait_readable_any_sees_either_socket() {
        let (a, b) = pair();
        let (c, _) = pair();
        assert!(!wait_readable_any(&[&a, &c], Duration::from_millis(20)).unwrap());
        b.send_to(b"x", c.local_addr().unwrap()).unwrap();
        assert!(wait_readable_any(&[&a, &c], Duration::from_secs(2)).unwrap());
        assert!(!wait_readable(&a, Duration::ZERO).unwrap());
    }

    #[test]
    fn a_waker_ends_the_wait_and_clear_forgets_it() {
        let (a, _) = pair();
        let (mut wake, mut waker) = wake_pair().unwrap();
        assert!(!wait_readable_or_woken(&a, &wake, Duration::from_millis(20)).unwrap());
        let t = std::thread::spawn(move || {
            waker.wake().unwrap();
            waker
        });
        assert!(wait_readable_or_woken(&a, &wake, Duration::from_secs(2)).unwrap());
        let mut waker = t.join().unwrap();
        wake.clear();
        assert!(!wait_readable_or_woken(&a, &wake, Duration::ZERO).unwrap());
        drop(wake);
        assert!(waker.wake().is_err(), "the waiting side is gone");
    }

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order() {
        let (a, b) = pair();
        let to = a.local_addr().unwrap();
        let sizes = [1usize, 0, 1000, 65_535, 5];
        let bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![n as u8; n]).collect();
        let out: Vec<(&[u8], SocketAddr)> = bufs.iter().map(|b| (&b[..], to)).collect();
        // 65 535 bytes is over an IPv4 datagram's limit: refused, the ones
        // before it went, the ones after it wait for the next call.
        let mut sender = BatchSender::new(8);
        assert_eq!(sender.send(&b, &out).unwrap(), [1, 0, 1000]);
        let e = sender.send(&b, &out[3..]).unwrap_err();
        assert!(e.raw_os_error().is_some(), "{e}");
        // At most a batch per call.
        assert_eq!(BatchSender::new(1).send(&b, &out).unwrap(), [1]);
        let mut reader = BatchReader::new(2, 65_537);
        let mut got = Vec::new();
        while got.len() < 4 {
            if !wait_readable(&a, Duration::from_secs(2)).unwrap() {
                break;
            }
            let n = reader.recv(&a, 8).unwrap();
            assert!((1..=2).contains(&n));
            for i in 0..n {
                let (buf, len, from) = reader.get(i);
                assert_eq!(from, b.local_addr().unwrap());
                assert_eq!(buf.len(), 65_537);
                got.push(buf[..len].to_vec());
            }
        }
        assert_eq!(got, [&bufs[..3], &bufs[..1]].concat());
        let e = reader.recv(&a, 8).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // Back in blocking mode, timeout kept.
        let start = Instant::now();
        let mut buf = [0u8; 4];
        a.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert!(a.recv_from(&mut buf).is_err());
        assert!(start.elapsed() >= Duration::from_millis(25));
    }

    #[test]
    fn at_most_max_datagrams_are_taken() {
        let (a, b) = pair();
        let to = a.local_addr().unwrap();
        for i in 0..3u8 {
            b.send_to(&[i], to).unwrap();
        }
        let mut reader = BatchReader::new(8, 16);
        // All three are queued once the last one can be read.
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while seen < 3 && Instant::now() < deadline {
            assert!(wait_readable(&a, Duration::from_secs(2)).unwrap());
            let n = reader.recv(&a, 1).unwrap();
            assert_eq!(n, 1);
            assert_eq!(reader.get(0).0[0], seen as u8);
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    #[test]
    fn discard_counts_every_byte_of_the_stream() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = l.local_addr().unwrap();
        let len = 3 * (1 << 20) + 7;
        let sender = std::thread::spawn(move || {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2)).unwrap();
            c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(&vec![0x5a; len]).unwrap();
        });
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut total = 0;
        assert!(discard(&s, |n| total += n).unwrap(), "available on Linux");
        assert_eq!(total, len);
        sender.join().unwrap();
    }

    #[test]
    fn discard_ends_with_the_read_timeout() {
        let (c, s) = tcp_pair();
        (&c).write_all(b"abc").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut total = 0;
        let e = discard(&s, |n| total += n).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        assert_eq!(total, 3);
    }

    /// A connected pair of TCP streams.
    fn tcp_pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (c, s)
    }

    #[test]
    fn urgent_byte_is_taken_and_bytes_after_it_are_read() {
        let (c, s) = tcp_pair();
        send_urgent(&c, 7).unwrap();
        (&c).write_all(b"after").unwrap();
        let mut watch = UrgentWatch::new(7);
        let mut woken = Woken {
            data: false,
            urgent: false,
        };
        let mut urgent = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !woken.data && Instant::now() < deadline {
            woken = watch.wait(&s).unwrap();
            urgent |= woken.urgent;
        }
        assert!(urgent && woken.data, "{woken:?}");
        let mut buf = [0u8; 16];
        let n = (&s).read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after", "the urgent byte is not in the stream");
        // The read timeout is the caller's again.
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn bytes_without_urgent_data_wake_the_watch() {
        let (c, s) = tcp_pair();
        let mut watch = UrgentWatch::new(0);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            (&c).write_all(b"hi").unwrap();
            c
        });
        let woken = loop {
            let w = watch.wait(&s).unwrap();
            if w.data {
                break w;
            }
        };
        assert!(!woken.urgent);
        let c = t.join().unwrap();
        drop(c);
        let mut buf = [0u8; 4];
        assert_eq!((&s).read(&mut buf).unwrap(), 2);
        // The end of the stream wakes it too.
        assert!(watch.wait(&s).unwrap().data);
    }

    #[test]
    fn names_are_bytes_and_flags_and_types_are_asked_for() {
        assert_eq!(os_str_from_bytes(b"a.txt"), OsStr::new("a.txt"));
        assert_eq!(os_str_from_bytes("文件".as_bytes()), OsStr::new("文件"));
        let gbk = b"\xc4\xe3\xba\xc3.txt";
        if PORTABLE {
            assert_eq!(
                os_str_from_bytes(gbk),
                OsStr::new("\u{fffd}\u{fffd}\u{fffd}.txt")
            );
        } else {
            assert_eq!(os_str_from_bytes(gbk).as_encoded_bytes(), gbk);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let meta = std::fs::metadata(dir.path().join("f")).unwrap();
        assert!(!is_socket(&meta.file_type()));
        let d =
            cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let mut options = cap_std::fs::OpenOptions::new();
        options.read(true);
        open_quietly(&mut options);
        let mut text = String::new();
        d.open_with("f", &options)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "x");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn descriptor_errors_are_told_apart() {
        // EMFILE and ENFILE as Linux (and every Unix) numbers them.
        let emfile = io::Error::from_raw_os_error(24);
        let enfile = io::Error::from_raw_os_error(23);
        assert!(out_of_descriptors(&emfile) && out_of_descriptors(&enfile));
        assert!(!out_of_descriptors(&io::Error::from_raw_os_error(13)));
        assert!(!out_of_descriptors(&io::Error::other("x")));
        // EACCES: what Linux says to a broadcast without SO_BROADCAST.
        assert!(is_broadcast_refusal(&io::Error::from_raw_os_error(13)));
        assert!(!is_broadcast_refusal(&io::Error::from_raw_os_error(24)));
    }
}
