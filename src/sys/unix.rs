//! The fast paths of [`super`], through nix: `ppoll`, `splice`, `recvmmsg`/`sendmmsg`, `IP_RECVERR`, termios, signals, urgent data.
//!
//! nix wraps each call without `unsafe` on our side. Every function here has
//! the meaning documented in `mod.rs`; the comments say why it is done this way.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::FileType;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::thread::JoinHandleExt;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll, ppoll};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recv, recvmmsg,
    recvmsg, send, sendmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

// ---------------------------------------------------------------------------
// Waiting.
// ---------------------------------------------------------------------------

/// `ppoll` on `fds` for `events`; `Ok(false)` when the time ran out or a
/// signal came. ppoll, not poll: poll counts in whole milliseconds, and a
/// wait that ends a sub-millisecond exchange (a TFTP receiver's linger over
/// loopback, a retransmission timer on a LAN) would be rounded up to one.
fn wait_fds(fds: &[BorrowedFd<'_>], events: PollFlags, timeout: Duration) -> io::Result<bool> {
    let mut fds: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(*fd, events)).collect();
    match ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    wait_fds(&[socket.as_fd()], PollFlags::POLLIN, timeout)
}

pub(super) fn wait_writable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    wait_fds(&[socket.as_fd()], PollFlags::POLLOUT, timeout)
}

pub(super) fn wait_readable_any(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<bool> {
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|s| s.as_fd()).collect();
    wait_fds(&fds, PollFlags::POLLIN, timeout)
}

/// A pipe: one byte written per wake-up call, so that `ppoll` can wait on
/// it and a socket together.
pub(super) struct Wake(io::PipeReader);
pub(super) struct Waker(io::PipeWriter);

pub(super) fn wake_pair() -> io::Result<(Wake, Waker)> {
    let (reader, writer) = io::pipe()?;
    Ok((Wake(reader), Waker(writer)))
}

impl Waker {
    pub(super) fn wake(&mut self) -> io::Result<()> {
        io::Write::write_all(&mut self.0, b"!")
    }
}

impl Wake {
    pub(super) fn clear(&mut self) {
        // Only after the pipe polled readable, so that this read cannot block.
        if wait_fds(&[self.0.as_fd()], PollFlags::POLLIN, Duration::ZERO).unwrap_or(false) {
            let _ = io::Read::read(&mut self.0, &mut [0u8; 64]);
        }
    }
}

pub(super) fn wait_readable_or_woken(
    socket: &UdpSocket,
    wake: &Wake,
    timeout: Duration,
) -> io::Result<bool> {
    wait_fds(
        &[socket.as_fd(), wake.0.as_fd()],
        PollFlags::POLLIN,
        timeout,
    )
}

// ---------------------------------------------------------------------------
// splice, pipe sizes.
// ---------------------------------------------------------------------------

/// Pipe capacity asked for by [`widen_pipe`]: Linux's default ceiling for
/// unprivileged processes (`/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: usize = 1 << 20;

/// Best effort: on anything but a pipe, or when the system caps pipes
/// lower, nothing changes.
fn widen_pipe(fd: BorrowedFd<'_>) {
    use nix::fcntl::{FcntlArg, fcntl};
    let size = PIPE_SIZE.min(i32::MAX as usize) as i32;
    if fcntl(fd, FcntlArg::F_GETPIPE_SZ).is_ok_and(|have| have < size) {
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(size));
    }
}

pub(super) fn widen_stdio_pipes() {
    widen_pipe(io::stdin().as_fd());
    widen_pipe(io::stdout().as_fd());
}

pub(super) fn discard(stream: &TcpStream, mut on_read: impl FnMut(usize)) -> io::Result<bool> {
    use nix::fcntl::{SpliceFFlags, splice};
    let Ok((pipe_out, pipe_in)) = io::pipe() else {
        return Ok(false);
    };
    widen_pipe(pipe_in.as_fd());
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return Ok(false);
    };
    let mut first = true;
    loop {
        let n = match splice(
            stream,
            None,
            &pipe_in,
            None,
            PIPE_SIZE,
            SpliceFFlags::SPLICE_F_MOVE,
        ) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EINVAL | Errno::ENOSYS) if first => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        first = false;
        let mut left = n;
        while left > 0 {
            match splice(
                &pipe_out,
                None,
                &null,
                None,
                left,
                SpliceFFlags::SPLICE_F_MOVE,
            ) {
                Ok(m) => left -= m,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        on_read(n);
    }
}

// ---------------------------------------------------------------------------
// recvmmsg, sendmmsg.
// ---------------------------------------------------------------------------

pub(super) struct BatchReader {
    /// One buffer per datagram of a batch.
    bufs: Vec<Vec<u8>>,
    /// The kernel's `mmsghdr` array (where each datagram's length and sender go).
    headers: MultiHeaders<SockaddrStorage>,
    /// What the last [`BatchReader::recv`] got: each datagram's length and sender.
    got: Vec<(usize, SocketAddr)>,
}

impl BatchReader {
    pub(super) fn new(batch: usize, size: usize) -> Self {
        BatchReader {
            bufs: vec![vec![0u8; size]; batch],
            headers: MultiHeaders::preallocate(batch, None),
            got: Vec::with_capacity(batch),
        }
    }

    /// `MSG_DONTWAIT`: the socket itself stays blocking.
    pub(super) fn recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        let max = max.min(self.bufs.len());
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self.bufs[..max]
            .iter_mut()
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            &mut iovs,
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        self.got.clear();
        for m in received {
            self.got.push((m.bytes, std_addr(m.address.as_ref())));
        }
        Ok(self.got.len())
    }

    pub(super) fn get(&self, i: usize) -> (&[u8], usize, SocketAddr) {
        let (n, from) = self.got[i];
        (&self.bufs[i], n, from)
    }
}

/// nix's socket address as std's. A UDP socket's sender is always IPv4 or IPv6;
/// anything else (which the kernel never gives us) becomes `0.0.0.0:0`.
fn std_addr(addr: Option<&SockaddrStorage>) -> SocketAddr {
    if let Some(v4) = addr.and_then(|a| a.as_sockaddr_in()) {
        SocketAddr::V4(SocketAddrV4::from(*v4))
    } else if let Some(v6) = addr.and_then(|a| a.as_sockaddr_in6()) {
        SocketAddr::V6(SocketAddrV6::from(*v6))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    }
}

/// `sendmmsg`, with its headers kept from one batch to the next.
pub(super) struct BatchSender {
    headers: MultiHeaders<SockaddrStorage>,
    sent: Vec<usize>,
}

impl BatchSender {
    pub(super) fn new(batch: usize) -> Self {
        BatchSender {
            headers: MultiHeaders::preallocate(batch, None),
            sent: Vec::with_capacity(batch),
        }
    }

    /// One `sendmmsg` for at most a batch: it stops at the first datagram the
    /// kernel refuses and says how many went out; the refused one fails
    /// again, alone, at the start of the caller's next call.
    pub(super) fn send(
        &mut self,
        socket: &UdpSocket,
        datagrams: &[(&[u8], SocketAddr)],
    ) -> io::Result<&[usize]> {
        self.sent.clear();
        if datagrams.is_empty() {
            return Ok(&self.sent);
        }
        let slices: Vec<[IoSlice<'_>; 1]> =
            datagrams.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
        let to: Vec<Option<SockaddrStorage>> = datagrams
            .iter()
            .map(|(_, a)| Some(SockaddrStorage::from(*a)))
            .collect();
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            &slices,
            &to,
            no_cmsgs,
            MsgFlags::empty(),
        )?;
        self.sent.extend(sent.map(|m| m.bytes));
        Ok(&self.sent)
    }
}

pub(super) fn is_broadcast_refusal(error: &io::Error) -> bool {
    error.raw_os_error() == Some(Errno::EACCES as i32)
}

// ---------------------------------------------------------------------------
// IP_RECVERR.
// ---------------------------------------------------------------------------

pub(super) fn report_unreachable(socket: &UdpSocket) {
    // A dual-stack socket carries IPv4 too: ask at both levels.
    let _ = setsockopt(socket, sockopt::Ipv4RecvErr, &true);
    let _ = setsockopt(socket, sockopt::Ipv6RecvErr, &true);
}

pub(super) fn unreachable_destinations(socket: &UdpSocket) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    let mut buf = [0u8; 64];
    let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
    // A bound on the loop: the queue is short, and a broken kernel must not spin us.
    for _ in 0..64 {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let Ok(msg) =
            recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)
        else {
            break;
        };
        let refused = msg.cmsgs().is_ok_and(|mut c| {
            c.any(|m| match m {
                ControlMessageOwned::Ipv4RecvErr(e, _) | ControlMessageOwned::Ipv6RecvErr(e, _) => {
                    e.ee_errno as i32 == nix::libc::ECONNREFUSED
                }
                _ => false,
            })
        });
        let dest = msg.address.and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SocketAddr::from(SocketAddrV4::from(*v4)))
            } else {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::from(SocketAddrV6::from(*v6)))
            }
        });
        if let (true, Some(dest)) = (refused, dest) {
            found.push(crate::addr::unmapped(dest));
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Descriptors.
// ---------------------------------------------------------------------------

pub(super) fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // Best effort: where it fails (a hard limit of "unlimited" above the
    // kernel's nr_open, say), the old limit stays, and is what we report.
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

pub(super) fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(n) if n == Errno::EMFILE as i32 || n == Errno::ENFILE as i32
    )
}

// ---------------------------------------------------------------------------
// The terminal, threads.
// ---------------------------------------------------------------------------

pub(super) type SavedTerminal = nix::sys::termios::Termios;

pub(super) fn quiet_terminal() -> Option<SavedTerminal> {
    use nix::sys::termios::{
        InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr,
    };
    let saved = tcgetattr(io::stdin()).ok()?;
    let mut quiet = saved.clone();
    quiet
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::IEXTEN);
    quiet.input_flags.remove(InputFlags::ICRNL);
    quiet.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    quiet.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    tcsetattr(io::stdin(), SetArg::TCSANOW, &quiet).ok()?;
    Some(saved)
}

pub(super) fn restore_terminal(saved: &SavedTerminal) {
    let _ = nix::sys::termios::tcsetattr(io::stdin(), nix::sys::termios::SetArg::TCSANOW, saved);
}

pub(super) fn interrupt_thread<T>(thread: &JoinHandle<T>) {
    let _ =
        nix::sys::pthread::pthread_kill(thread.as_pthread_t(), nix::sys::signal::Signal::SIGINT);
}

pub(super) fn in_foreground() -> bool {
    use nix::unistd::{getpgrp, tcgetpgrp};
    tcgetpgrp(io::stdin()).is_ok_and(|fg| fg == getpgrp())
}

// ---------------------------------------------------------------------------
// Urgent data.
// ---------------------------------------------------------------------------

pub(super) fn send_urgent(stream: &TcpStream, byte: u8) -> io::Result<()> {
    match send(stream.as_raw_fd(), &[byte], MsgFlags::MSG_OOB) {
        Ok(_) => Ok(()),
        // In nix's words (`EPIPE: Broken pipe`), as chat --verbose has always said it.
        Err(e) => Err(io::Error::new(io::Error::from(e).kind(), e.to_string())),
    }
}

pub(super) struct UrgentWatch {
    byte: u8,
}

impl UrgentWatch {
    pub(super) fn new(byte: u8) -> Self {
        UrgentWatch { byte }
    }

    pub(super) fn wait(&mut self, stream: &TcpStream) -> io::Result<super::Woken> {
        let mut fds = [PollFd::new(
            stream.as_fd(),
            PollFlags::POLLIN | PollFlags::POLLPRI,
        )];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => {
                return Ok(super::Woken {
                    data: false,
                    urgent: false,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let events = fds[0].revents().unwrap_or(PollFlags::empty());
        if !events.contains(PollFlags::POLLPRI) {
            return Ok(super::Woken {
                data: true,
                urgent: false,
            });
        }
        let mut byte = [0u8; 1];
        let urgent = match recv(stream.as_raw_fd(), &mut byte, MsgFlags::MSG_OOB) {
            Ok(1) => byte[0] == self.byte,
            Ok(_) => false,
            // Not there after all: read normally, so this cannot spin.
            Err(_) => {
                return Ok(super::Woken {
                    data: true,
                    urgent: false,
                });
            }
        };
        Ok(super::Woken {
            data: events.intersects(!PollFlags::POLLPRI),
            urgent,
        })
    }
}

// ---------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------

pub(super) fn os_str_from_bytes(bytes: &[u8]) -> Cow<'_, OsStr> {
    Cow::Borrowed(OsStr::from_bytes(bytes))
}

pub(super) fn open_quietly(options: &mut cap_std::fs::OpenOptions) {
    use cap_std::fs::OpenOptionsExt;
    use nix::fcntl::OFlag;
    options.custom_flags(OFlag::O_NONBLOCK.bits() | OFlag::O_NOCTTY.bits());
}

pub(super) fn is_socket(file_type: &FileType) -> bool {
    file_type.is_socket()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widen_pipe_grows_a_pipe_and_leaves_other_files_alone() {
        use nix::fcntl::{FcntlArg, fcntl};
        let (r, _w) = io::pipe().unwrap();
        let before = fcntl(r.as_fd(), FcntlArg::F_GETPIPE_SZ).unwrap();
        widen_pipe(r.as_fd());
        let after = fcntl(r.as_fd(), FcntlArg::F_GETPIPE_SZ).unwrap();
        // The system may cap pipes below PIPE_SIZE (fs.pipe-max-size): never smaller.
        assert!(after >= before, "{after} < {before}");
        let file = tempfile::tempfile().unwrap();
        widen_pipe(file.as_fd());
    }
}
