//! The std-only side of [`super`]: std and socket2, for Windows builds and for `--features portable` on Linux.
//!
//! Every function has the meaning documented in `mod.rs`. std has no
//! `poll`, and cannot ask a socket whether it is in non-blocking mode (nor
//! can Windows), so a wait is a peek under a read timeout: a blocking socket
//! waits in it, a non-blocking one returns at once and is made blocking for
//! the rest of the wait. A socket's mode and read timeout are as the caller
//! left them afterwards (no other thread may use it meanwhile).

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fs::FileType;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::SockRef;

/// The pause between two looks at several sockets (std cannot wait on more
/// than one): short next to a LAN's retransmission timeouts, long enough not
/// to keep a core busy.
const PAUSE: Duration = Duration::from_millis(1);

/// The shortest read timeout std accepts (zero means "none"). The kernel
/// rounds it up to a scheduler tick.
const SHORTEST: Duration = Duration::from_micros(1);

/// How long one wait for bytes lasts before looking for urgent data again,
/// and for a wake-up call: the delay either may see.
const SLICE: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// Waiting.
// ---------------------------------------------------------------------------

/// Is a datagram (or an error) waiting on `socket`? Peeks, which waits as
/// long as the socket's read timeout if it blocks. `Some(false)`: a signal came.
fn peek_ready(socket: &UdpSocket) -> io::Result<Option<bool>> {
    match socket.peek_from(&mut [0u8; 1]) {
        Ok(_) => Ok(Some(true)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(false)),
        // An error waits to be received (an ICMP error; on Windows, a
        // datagram longer than the one-byte peek): a receive returns at once.
        Err(_) => Ok(Some(true)),
    }
}

pub(super) fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let saved = socket.read_timeout()?;
    let mut made_blocking = false;
    let mut wait = || -> io::Result<bool> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            socket.set_read_timeout(Some(left.max(SHORTEST)))?;
            let asked = Instant::now();
            if let Some(ready) = peek_ready(socket)? {
                return Ok(ready);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            // Back before its timeout: a non-blocking socket (a blocking one
            // never returns early). It blocks, under the timeout, for the rest.
            if !made_blocking && asked.elapsed() < left {
                socket.set_nonblocking(false)?;
                made_blocking = true;
            }
        }
    };
    let result = wait();
    if made_blocking {
        socket.set_nonblocking(true)?;
    }
    socket.set_read_timeout(saved)?;
    result
}

/// std cannot wait for room to send. A UDP socket's send buffer drains as
/// the kernel hands datagrams to the network, so a short pause, after which
/// the caller tries again, does the same.
pub(super) fn wait_writable(_socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    thread::sleep(PAUSE.min(timeout));
    Ok(true)
}

/// One socket is waited on ([`wait_readable`]); several are looked at in
/// turn without waiting, with a short pause ([`PAUSE`]) between rounds.
pub(super) fn wait_readable_any(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<bool> {
    if let [socket] = sockets {
        return wait_readable(socket, timeout);
    }
    let deadline = Instant::now() + timeout;
    loop {
        for socket in sockets {
            if wait_readable(socket, Duration::ZERO)? {
                return Ok(true);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        thread::sleep(PAUSE.min(left));
    }
}

/// A flag, set by the [`Waker`]: looked at between short waits on the socket.
pub(super) struct Wake(Arc<AtomicBool>);
pub(super) struct Waker(Weak<AtomicBool>);

pub(super) fn wake_pair() -> io::Result<(Wake, Waker)> {
    let flag = Arc::new(AtomicBool::new(false));
    let waker = Waker(Arc::downgrade(&flag));
    Ok((Wake(flag), waker))
}

impl Waker {
    pub(super) fn wake(&mut self) -> io::Result<()> {
        match self.0.upgrade() {
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            }
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }
}

impl Wake {
    pub(super) fn clear(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

pub(super) fn wait_readable_or_woken(
    socket: &UdpSocket,
    wake: &Wake,
    timeout: Duration,
) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if wake.0.load(Ordering::SeqCst) {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if wait_readable(socket, left.min(SLICE))? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

// ---------------------------------------------------------------------------
// Copying, pipes.
// ---------------------------------------------------------------------------

/// A stream that tells how much each read took.
struct Counting<'a, F> {
    stream: &'a TcpStream,
    on_read: F,
}

impl<F: FnMut(usize)> Read for Counting<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&mut &*self.stream).read(buf)?;
        if n > 0 {
            (self.on_read)(n);
        }
        Ok(n)
    }
}

pub(super) fn discard(stream: &TcpStream, on_read: impl FnMut(usize)) -> io::Result<bool> {
    io::copy(&mut Counting { stream, on_read }, &mut io::sink())?;
    Ok(true)
}

/// std cannot size a pipe.
pub(super) fn widen_stdio_pipes() {}

// ---------------------------------------------------------------------------
// Datagrams one at a time.
// ---------------------------------------------------------------------------

pub(super) struct BatchReader {
    bufs: Vec<Vec<u8>>,
    got: Vec<(usize, SocketAddr)>,
    /// An error met after some datagrams of a batch: reported by the next
    /// call, as `recvmmsg` does.
    pending: Option<io::Error>,
}

impl BatchReader {
    pub(super) fn new(batch: usize, size: usize) -> Self {
        BatchReader {
            bufs: vec![vec![0u8; size]; batch],
            got: Vec::with_capacity(batch),
            pending: None,
        }
    }

    /// Non-blocking for the batch only: the socket blocks again afterwards.
    pub(super) fn recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        self.got.clear();
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let max = max.min(self.bufs.len());
        socket.set_nonblocking(true)?;
        let mut failed = None;
        while self.got.len() < max {
            match socket.recv_from(&mut self.bufs[self.got.len()]) {
                Ok(got) => self.got.push(got),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        socket.set_nonblocking(false)?;
        match failed {
            Some(e) if self.got.is_empty() => Err(e),
            Some(e) if e.kind() != io::ErrorKind::WouldBlock => {
                self.pending = Some(e);
                Ok(self.got.len())
            }
            _ => Ok(self.got.len()),
        }
    }

    pub(super) fn get(&self, i: usize) -> (&[u8], usize, SocketAddr) {
        let (n, from) = self.got[i];
        (&self.bufs[i], n, from)
    }
}

pub(super) struct BatchSender {
    batch: usize,
    sent: Vec<usize>,
}

impl BatchSender {
    pub(super) fn new(batch: usize) -> Self {
        BatchSender {
            batch,
            sent: Vec::with_capacity(batch),
        }
    }

    /// `send_to` for each, stopping at the first refused, as `sendmmsg` does.
    pub(super) fn send(
        &mut self,
        socket: &UdpSocket,
        datagrams: &[(&[u8], SocketAddr)],
    ) -> io::Result<&[usize]> {
        self.sent.clear();
        for (bytes, to) in datagrams.iter().take(self.batch) {
            match socket.send_to(bytes, to) {
                Ok(n) => self.sent.push(n),
                Err(e) if self.sent.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(&self.sent)
    }
}

/// EACCES on Unix and WSAEACCES on Windows: std calls both "permission denied".
pub(super) fn is_broadcast_refusal(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
}

// ---------------------------------------------------------------------------
// ICMP errors: no error queue in std.
// ---------------------------------------------------------------------------

pub(super) fn report_unreachable(_socket: &UdpSocket) {}

pub(super) fn unreachable_destinations(_socket: &UdpSocket) -> Vec<SocketAddr> {
    Vec::new()
}

// ---------------------------------------------------------------------------
// Descriptors.
// ---------------------------------------------------------------------------

/// std has no resource limits.
pub(super) fn raise_fd_limit() -> Option<u64> {
    None
}

/// The numbers as Unix has them (EMFILE 24, ENFILE 23; the same on every
/// Unix), and Winsock's WSAEMFILE; std has no name for them.
pub(super) fn out_of_descriptors(e: &io::Error) -> bool {
    const NUMBERS: &[i32] = if cfg!(windows) { &[10024] } else { &[24, 23] };
    e.raw_os_error().is_some_and(|n| NUMBERS.contains(&n))
}

// ---------------------------------------------------------------------------
// The terminal, threads: beyond std.
// ---------------------------------------------------------------------------

/// Never made: [`quiet_terminal`] has nothing to save.
#[derive(Clone)]
pub(super) struct SavedTerminal;

pub(super) fn quiet_terminal() -> Option<SavedTerminal> {
    None
}

pub(super) fn restore_terminal(_saved: &SavedTerminal) {}

pub(super) fn interrupt_thread<T>(_thread: &JoinHandle<T>) {}

pub(super) fn in_foreground() -> bool {
    true
}

// ---------------------------------------------------------------------------
// Urgent data.
// ---------------------------------------------------------------------------

pub(super) fn send_urgent(stream: &TcpStream, byte: u8) -> io::Result<()> {
    SockRef::from(stream).send_out_of_band(&[byte])?;
    Ok(())
}

pub(super) struct UrgentWatch {
    /// Bytes came: urgent data is no longer looked for.
    data_seen: bool,
}

impl UrgentWatch {
    pub(super) fn new(_byte: u8) -> Self {
        UrgentWatch { data_seen: false }
    }

    /// Takes an urgent byte, if one waits. Its value stays unread: socket2
    /// hands it back as `MaybeUninit`, and reading that needs `unsafe`.
    fn take_urgent(stream: &TcpStream) -> bool {
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        SockRef::from(stream)
            .recv_out_of_band(&mut byte)
            .is_ok_and(|n| n == 1)
    }

    pub(super) fn wait(&mut self, stream: &TcpStream) -> io::Result<super::Woken> {
        let woken = |data, urgent| super::Woken { data, urgent };
        if self.data_seen {
            // The read that follows waits by itself.
            return Ok(woken(true, false));
        }
        let saved = stream.read_timeout()?;
        stream.set_read_timeout(Some(SLICE))?;
        let result = loop {
            if Self::take_urgent(stream) {
                break Ok(woken(false, true));
            }
            // A peek stops neither at urgent data nor before it: bytes sent
            // after the urgent byte are seen, and the urgent byte, which came
            // first, is taken below before any read can pass it.
            match stream.peek(&mut [0u8; 1]) {
                Ok(_) => {
                    self.data_seen = true;
                    break Ok(woken(true, Self::take_urgent(stream)));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break Ok(woken(false, false)),
                // The read reports it.
                Err(_) => break Ok(woken(true, false)),
            }
        };
        stream.set_read_timeout(saved)?;
        result
    }
}

// ---------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------

pub(super) fn os_str_from_bytes(bytes: &[u8]) -> Cow<'_, OsStr> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(OsStr::new(text)),
        Err(_) => Cow::Owned(OsString::from(String::from_utf8_lossy(bytes).into_owned())),
    }
}

/// std has no such flags.
pub(super) fn open_quietly(_options: &mut cap_std::fs::OpenOptions) {}

/// std tells files, directories and symlinks apart, nothing more.
pub(super) fn is_socket(_file_type: &FileType) -> bool {
    false
}
