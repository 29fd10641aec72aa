//! Server sockets (lessons 03, 04, 08): create → `SO_REUSEADDR` → bind → listen, via socket2.
//!
//! The notes bind `("", 8080)`: every IPv4 interface. We do one better when no
//! address is given and bind `[::]` with `IPV6_V6ONLY` off — a *dual-stack* socket
//! that IPv4 clients (seen as `::ffff:a.b.c.d`) and IPv6 clients both reach. Where
//! the machine has no IPv6 we fall back to `0.0.0.0`, as the notes do.
//!
//! `SO_REUSEADDR` only helps if set before `bind` (it lets a restarted server bind
//! while old connections sit in TIME-WAIT — the "端口被占用" error the notes fix the
//! same way). std's `TcpListener::bind` sets it on Unix, but offers no way to set
//! `IPV6_V6ONLY` or the backlog, hence socket2.
//!
//! Linux lets a socket bind past TIME-WAIT connections only when *both* it and the
//! socket those connections came from set `SO_REUSEADDR`. So after the notes'
//! lesson 03 server (which does not) has closed, even our servers are refused for
//! about a minute. When a bind fails with "address already in use", [`BindError`]
//! says who holds the port, read from `/proc/net/tcp` and friends: a program
//! listening there (by name, when we may see it), connections in TIME-WAIT and when
//! they go away, or connections of a program that stopped listening.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

use crate::addr::{AddrError, Family, describe_io, parse_bind};

/// How many connections may wait for `accept()`. The notes use `listen(128)`; a burst
/// of a thousand connects overflows that while the accept loop starts threads, and
/// each overflowed client then waits a full second for its SYN to be resent. The
/// kernel caps this at `net.core.somaxconn` (4096 on current Linux).
pub const BACKLOG: i32 = 1024;

/// A server socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {}{}", describe_io(.error), hint(.addr, .error, .holder.as_ref()))]
#[non_exhaustive]
pub struct BindError {
    /// The address we tried.
    pub addr: SocketAddr,
    /// What the OS said (already part of the message, so not a `source`).
    pub error: io::Error,
    /// Who holds the port, when the address was in use and the system says.
    pub holder: Option<PortHolder>,
}

/// A port in use or below 1024 is the world's answer to a valid command line.
impl crate::error::Blame for BindError {
    fn is_usage(&self) -> bool {
        false
    }
}

impl BindError {
    fn new(addr: SocketAddr, error: io::Error, proto: Proto) -> Self {
        let holder = (error.kind() == io::ErrorKind::AddrInUse)
            .then(|| port_holder(proto, &addr))
            .flatten();
        BindError {
            addr,
            error,
            holder,
        }
    }
}

fn hint(addr: &SocketAddr, err: &io::Error, holder: Option<&PortHolder>) -> String {
    if let Some(h) = holder {
        return format!(" ({})", h.explain(addr.port()));
    }
    match err.kind() {
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            // 69 → 6969, 80 → 8080: the usual unprivileged stand-ins.
            let p = addr.port();
            match format!("{p}{p}").parse::<u16>() {
                Ok(alt) if alt >= 1024 => format!(" (ports below 1024 need root; try {alt})"),
                _ => " (ports below 1024 need root; try one above 1023)".into(),
            }
        }
        io::ErrorKind::AddrInUse => " (another program uses this port; pick another)".into(),
        _ => String::new(),
    }
}

/// Where a server listens: an address to bind (`None`: all interfaces), a port
/// (0: any free one) and the allowed family.
#[derive(Debug, Clone, Copy)]
pub struct ListenSpec {
    /// `--bind ADDR`, or `None` for every interface.
    pub bind: Option<IpAddr>,
    /// The port; 0 lets the OS choose (read it back with `local_addr`).
    pub port: u16,
    /// `-4` / `-6`.
    pub family: Family,
}

impl ListenSpec {
    /// From a server's flags: `-b/--bind ADDR` (if given), the port and `-4`/`-6`.
    pub fn parse(bind: Option<&str>, port: u16, family: Family) -> Result<Self, AddrError> {
        Ok(ListenSpec {
            bind: bind.map(|b| parse_bind(b, family)).transpose()?,
            port,
            family,
        })
    }

    /// Every interface, both families, this port.
    pub fn any(port: u16) -> Self {
        ListenSpec {
            bind: None,
            port,
            family: Family::Any,
        }
    }
}

/// Create, configure and bind one socket of the given type.
fn bind_socket(ty: Type, proto: Protocol, addr: SocketAddr, v6only: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    // For TCP, SO_REUSEADDR only lets a restarted server bind past old
    // connections in TIME_WAIT. For UDP on Linux it means something else:
    // several sockets may share one port, so a second server would "start"
    // on a taken port and a port-0 bind could be handed a port in use. No.
    if ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(v6only)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Try the addresses a spec stands for, best first, and return the first that binds.
fn bind_spec(spec: ListenSpec, ty: Type, proto: Protocol) -> Result<Socket, BindError> {
    let kind = if ty == Type::STREAM {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), spec.port);
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), spec.port);
    let (addr, v6only) = match (spec.bind, spec.family) {
        (Some(ip), _) => (SocketAddr::new(ip, spec.port), true),
        (None, Family::V4) => (v4, true),
        (None, Family::V6) => (v6, true),
        (None, Family::Any) => (v6, false),
    };
    match bind_socket(ty, proto, addr, v6only) {
        Ok(s) => Ok(s),
        // No IPv6 on this machine (a container without it, say): the notes' 0.0.0.0.
        Err(e) if spec.bind.is_none() && spec.family == Family::Any && no_ipv6(&e) => {
            bind_socket(ty, proto, v4, true).map_err(|error| BindError::new(v4, error, kind))
        }
        Err(error) => Err(BindError::new(addr, error, kind)),
    }
}

/// Is this the error of a machine without IPv6 (EAFNOSUPPORT, EADDRNOTAVAIL)?
fn no_ipv6(e: &io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(EAFNOSUPPORT)
}

/// A TCP listening socket with `SO_REUSEADDR`, backlog [`BACKLOG`], dual-stack by default.
pub fn tcp_listener(spec: ListenSpec) -> Result<TcpListener, BindError> {
    let socket = bind_spec(spec, Type::STREAM, Protocol::TCP)?;
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], spec.port)));
    socket
        .listen(BACKLOG)
        .map_err(|error| BindError::new(addr, error, Proto::Tcp))?;
    Ok(socket.into())
}

/// A bound UDP socket, dual-stack by default (lessons 08–10).
pub fn udp_socket(spec: ListenSpec) -> Result<UdpSocket, BindError> {
    Ok(bind_spec(spec, Type::DGRAM, Protocol::UDP)?.into())
}

/// TCP or UDP, for [`port_holder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `/proc/net/tcp`, `/proc/net/tcp6`.
    Tcp,
    /// `/proc/net/udp`, `/proc/net/udp6`.
    Udp,
}

/// Who holds a port that a bind found in use, as `/proc/net` tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortHolder {
    /// TCP or UDP.
    pub proto: Option<Proto>,
    /// Sockets listening on the port (TCP) or bound to it (UDP), with the
    /// program that has each open, when we may see it (`name (pid N)`).
    pub listeners: Vec<Option<String>>,
    /// TCP connections in TIME-WAIT on the port.
    pub time_wait: usize,
    /// The longest any of them has left (the kernel keeps them 60 s).
    pub time_wait_left: Option<std::time::Duration>,
    /// Other TCP connections on the port (a program that stopped listening
    /// but still has clients), by state name, e.g. `ESTABLISHED`.
    pub connections: Vec<&'static str>,
}

/// How long Linux keeps a connection in TIME-WAIT (`TCP_TIMEWAIT_LEN`).
const TIME_WAIT_SECS: u64 = 60;

impl PortHolder {
    /// The explanation that follows "address already in use".
    pub fn explain(&self, port: u16) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if let Some(first) = self.listeners.first() {
            let who = first.as_deref().unwrap_or("another program");
            return match self.proto {
                Some(Proto::Udp) => {
                    format!("{who} has UDP port {port} open; stop it or pick another port")
                }
                _ => format!("{who} is listening on port {port}; stop it or pick another port"),
            };
        }
        if !self.connections.is_empty() {
            let n = self.connections.len();
            let mut states = self.connections.clone();
            states.sort_unstable();
            states.dedup();
            return format!(
                "nothing listens on port {port}, but {n} connection{} of a program that stopped listening still use{} it ({}); the port frees when they close",
                plural(n),
                if n == 1 { "s" } else { "" },
                states.join(", ")
            );
        }
        if self.time_wait > 0 {
            let n = self.time_wait;
            let secs = self
                .time_wait_left
                .map_or(TIME_WAIT_SECS, |d| d.as_secs_f64().ceil() as u64)
                .max(1);
            return format!(
                "nothing listens on port {port}, but {n} connection{} of a program that just closed {} in TIME-WAIT there; it frees in about {secs} s. \
                 This is what SO_REUSEADDR (lesson 04) is for: a server may bind past TIME-WAIT when it and the program that closed both set it, and that program did not",
                plural(n),
                if n == 1 { "is" } else { "are" },
            );
        }
        "another program uses this port; pick another".into()
    }
}

/// One line of `/proc/net/tcp` (or udp, tcp6, udp6): local address, state,
/// time left on its timer, and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcSocket {
    local: SocketAddr,
    state: u8,
    timer_left: Option<std::time::Duration>,
    inode: u64,
}

/// The socket lines of a `/proc/net/{tcp,udp}{,6}` file.
///
/// An address is written as the hex of its 32-bit words as the kernel holds
/// them in memory (network order) but printed as numbers in host order: so each
/// word's bytes are the number's native-endian bytes. `tr:tm->when` is the
/// timer's kind and its time left, in clock ticks of 1/100 s (`USER_HZ`).
fn parse_proc_net(text: &str) -> Vec<ProcSocket> {
    fn ip(hex: &str) -> Option<IpAddr> {
        let words = (0..hex.len() / 8)
            .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
            .collect::<Option<Vec<u32>>>()?;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        match bytes.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
            _ => None,
        }
    }
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            let local = SocketAddr::new(ip(addr)?, u16::from_str_radix(port, 16).ok()?);
            let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
            let timer_left = f.get(5).and_then(|t| {
                let (kind, when) = t.split_once(':')?;
                (kind != "00")
                    .then(|| u64::from_str_radix(when, 16).ok())
                    .flatten()
                    .map(|ticks| std::time::Duration::from_millis(ticks * 10))
            });
            let inode = f.get(9)?.parse().ok()?;
            Some(ProcSocket {
                local,
                state,
                timer_left,
                inode,
            })
        })
        .collect()
}

/// Could a socket bound to `a` stand in the way of a bind to `b` (same port)?
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    a.is_unspecified() || b.is_unspecified() || a.to_canonical() == b.to_canonical()
}

/// Who holds `addr`'s port, from `/proc/net` (None where there is no such file,
/// or nothing there explains the refusal).
pub fn port_holder(proto: Proto, addr: &SocketAddr) -> Option<PortHolder> {
    let files: &[&str] = match proto {
        Proto::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
        Proto::Udp => &["/proc/net/udp", "/proc/net/udp6"],
    };
    let sockets: Vec<ProcSocket> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| parse_proc_net(&t))
        .filter(|s| s.local.port() == addr.port() && overlaps(s.local.ip(), addr.ip()))
        .collect();
    let holder = classify(proto, &sockets, &program_of);
    (holder != PortHolder::default()).then_some(holder)
}

/// Sort the sockets on a port into listeners, TIME-WAIT and other connections.
fn classify(
    proto: Proto,
    sockets: &[ProcSocket],
    program: &dyn Fn(u64) -> Option<String>,
) -> PortHolder {
    // Linux's TCP states (include/net/tcp_states.h), as /proc/net/tcp numbers them.
    const STATES: [&str; 12] = [
        "",
        "ESTABLISHED",
        "SYN-SENT",
        "SYN-RECV",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "TIME-WAIT",
        "CLOSE",
        "CLOSE-WAIT",
        "LAST-ACK",
        "LISTEN",
        "CLOSING",
    ];
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;
    const CLOSE: u8 = 0x07;
    let mut h = PortHolder::default();
    for s in sockets {
        match (proto, s.state) {
            (Proto::Udp, _) | (Proto::Tcp, LISTEN) => h.listeners.push(program(s.inode)),
            (Proto::Tcp, TIME_WAIT) => {
                h.time_wait += 1;
                h.time_wait_left = h.time_wait_left.max(s.timer_left);
            }
            // Bound but neither listening nor connected: a server between bind
            // and listen, as good as a listener for whoever wants the port.
            (Proto::Tcp, CLOSE) => h.listeners.push(program(s.inode)),
            (Proto::Tcp, n) => h
                .connections
                .push(STATES.get(n as usize).copied().unwrap_or("?")),
        }
    }
    if h != PortHolder::default() {
        h.proto = Some(proto);
    }
    h
}

/// `name (pid N)` of a process that has socket `inode` open, if we may look
/// (only our own processes, unless we are root). This is what `ss -p` does.
fn program_of(inode: u64) -> Option<String> {
    if inode == 0 {
        return None;
    }
    let wanted = format!("socket:[{inode}]");
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = proc_dir.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        let found = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == wanted.as_str())
        });
        if found {
            let comm = std::fs::read_to_string(proc_dir.path().join("comm")).ok()?;
            return Some(format!("{} (pid {pid})", comm.trim_end()));
        }
    }
    None
}

/// Errors a UDP receive may return that mean "nothing (useful) yet": a
/// timeout, a signal, or an ICMP error from an earlier send, which Linux
/// reports once on the next call and which is not fatal to UDP.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

/// Waits until `socket` has a datagram to read (or room to send, with
/// `write`), at most `timeout`; `Ok(false)` when the time ran out.
///
/// This is `poll()`. A socket read timeout (`SO_RCVTIMEO`) would do for long
/// waits, but the kernel counts it in scheduler ticks (4 ms on many
/// kernels, rounded up), so a 5 ms wait can last 12: too coarse for a
/// retransmission timer that follows a LAN's round-trip time.
pub fn wait_ready(
    socket: &impl std::os::fd::AsFd,
    write: bool,
    timeout: std::time::Duration,
) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, ppoll};
    use nix::sys::time::TimeSpec;
    let events = if write {
        PollFlags::POLLOUT
    } else {
        PollFlags::POLLIN
    };
    let mut fds = [PollFd::new(socket.as_fd(), events)];
    // ppoll, not poll: poll counts in whole milliseconds, and a wait that ends a
    // sub-millisecond exchange (a TFTP receiver's linger over loopback, a
    // retransmission timer on a LAN) would be rounded up to one.
    match ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits until any of `sockets` has a datagram to read, at most `timeout`;
/// `Ok(false)` when the time ran out. [`wait_ready`] for several sockets (a
/// TFTP client listens on its two transfer IDs at once).
pub fn wait_readable_any(
    sockets: &[std::os::fd::BorrowedFd<'_>],
    timeout: std::time::Duration,
) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, ppoll};
    use nix::sys::time::TimeSpec;
    let mut fds: Vec<PollFd<'_>> = sockets
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    match ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Asks the kernel to tell an unconnected UDP socket about ICMP errors
/// (`IP_RECVERR`, `IPV6_RECVERR`): a datagram to a closed port then comes
/// back as "port unreachable" in the socket's error queue, read with
/// [`unreachable_destinations`]. A TFTP transfer uses it to notice that its
/// peer has gone, while still answering datagrams from strangers (which a
/// connected socket would never see). Best effort: elsewhere, nothing changes.
pub fn report_unreachable(socket: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    // A dual-stack socket carries IPv4 too: ask at both levels.
    let _ = setsockopt(socket, sockopt::Ipv4RecvErr, &true);
    let _ = setsockopt(socket, sockopt::Ipv6RecvErr, &true);
}

/// The destinations of datagrams that met a closed port ("port
/// unreachable") since the last call, from the error queue of a socket set
/// up by [`report_unreachable`]. IPv4-mapped IPv6 addresses come back as IPv4.
pub fn unreachable_destinations(socket: &UdpSocket) -> Vec<SocketAddr> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut found = Vec::new();
    let mut buf = [0u8; 64];
    let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
    // A bound on the loop: the queue is short, and a broken kernel must not spin us.
    for _ in 0..64 {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
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
                Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
            } else {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
            }
        });
        if let (true, Some(dest)) = (refused, dest) {
            found.push(crate::addr::unmapped(dest));
        }
    }
    found
}

/// Pipe capacity asked for by [`widen_pipe`]: Linux's default ceiling for
/// unprivileged processes (`/proc/sys/fs/pipe-max-size`).
pub const PIPE_SIZE: usize = 1 << 20;

/// Lets a pipe on `fd` (our stdin or stdout in `head -c 2G /dev/zero | tcp-client …`)
/// hold [`PIPE_SIZE`] bytes instead of the default 64 KiB. When bytes are spliced
/// between the pipe and a socket, each call moves what the pipe holds, so a wider
/// pipe means a sixteenth of the system calls and of the sleeps and wake-ups
/// between the two programs. Best effort: on anything but a pipe, or when the
/// system caps pipes lower, nothing changes.
pub fn widen_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    use nix::fcntl::{FcntlArg, fcntl};
    let size = PIPE_SIZE.min(i32::MAX as usize) as i32;
    if fcntl(fd, FcntlArg::F_GETPIPE_SZ).is_ok_and(|have| have < size) {
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(size));
    }
}

/// Reads `stream` to its end and throws the bytes away without copying them into
/// our memory: `splice` moves them from the socket into a pipe and from the pipe
/// into `/dev/null`, all inside the kernel (`tcp-server --sink`, a throughput
/// test's receiving end). `on_read` hears how many bytes each step took.
///
/// Returns `Ok(false)`, having read nothing, where splicing is not available
/// (the caller then reads the ordinary way).
pub fn discard(stream: &TcpStream, mut on_read: impl FnMut(usize)) -> io::Result<bool> {
    use nix::errno::Errno;
    use nix::fcntl::{SpliceFFlags, splice};
    let Ok((pipe_out, pipe_in)) = io::pipe() else {
        return Ok(false);
    };
    widen_pipe(std::os::fd::AsFd::as_fd(&pipe_in));
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

/// Raises this process's soft limit on open file descriptors (`RLIMIT_NOFILE`)
/// to its hard limit, as most servers do, and returns the soft limit now in
/// force (None if it cannot be read).
///
/// The soft limit is usually 1024, a default kept for programs that still use
/// `select()`; one thread per client never calls it, and each client costs
/// descriptors, so a thousand clients would otherwise run out. Only the hard
/// limit is a real ceiling, and raising up to it needs no privilege.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // Best effort: where it fails (a hard limit of "unlimited" above the
    // kernel's nr_open, say), the old limit stays, and is what we report.
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The places of a server with a limit (`--max-clients`, `--max-users`): how
/// many are taken, and a [`Slot`] for each client being served.
#[derive(Debug, Default, Clone)]
pub struct Places(Arc<AtomicUsize>);

impl Places {
    /// How many slots are held right now.
    pub fn taken(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Take a place until the returned slot is dropped.
    pub fn claim(&self) -> Slot {
        self.0.fetch_add(1, Ordering::SeqCst);
        Slot(self.0.clone())
    }
}

/// One of the [`Places`], freed when dropped: on every path, including a
/// client thread that never started or ended with a panic.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    fn roundtrip(listener: &TcpListener, to: SocketAddr) {
        let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn discard_counts_every_byte_of_the_stream() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = l.local_addr().unwrap();
        let len = 3 * PIPE_SIZE + 7;
        let sender = std::thread::spawn(move || {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2)).unwrap();
            c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(&vec![0x5a; len]).unwrap();
        });
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut total = 0;
        assert!(
            discard(&s, |n| total += n).unwrap(),
            "splice is available on Linux"
        );
        assert_eq!(total, len);
        sender.join().unwrap();
    }

    #[test]
    fn widen_pipe_grows_a_pipe_and_leaves_other_files_alone() {
        use nix::fcntl::{FcntlArg, fcntl};
        use std::os::fd::AsFd;
        let (r, _w) = io::pipe().unwrap();
        let before = fcntl(r.as_fd(), FcntlArg::F_GETPIPE_SZ).unwrap();
        widen_pipe(r.as_fd());
        let after = fcntl(r.as_fd(), FcntlArg::F_GETPIPE_SZ).unwrap();
        // The system may cap pipes below PIPE_SIZE (fs.pipe-max-size): never smaller.
        assert!(after >= before, "{after} < {before}");
        let file = tempfile::tempfile().unwrap();
        widen_pipe(file.as_fd());
    }

    #[test]
    fn dual_stack_accepts_v4_and_v6() {
        let l = tcp_listener(ListenSpec::any(0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert_ne!(port, 0);
        roundtrip(&l, SocketAddr::from(([127, 0, 0, 1], port)));
        if l.local_addr().unwrap().is_ipv6() {
            roundtrip(&l, SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port));
        }
    }

    #[test]
    fn bind_one_interface() {
        let spec = ListenSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            port: 0,
            family: Family::Any,
        };
        let l = tcp_listener(spec).unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        roundtrip(&l, addr);
    }

    #[test]
    fn port_in_use_names_the_program_listening_there() {
        let spec = ListenSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            port: 0,
            family: Family::V4,
        };
        let first = tcp_listener(spec).unwrap();
        let port = first.local_addr().unwrap().port();
        let err = tcp_listener(ListenSpec { port, ..spec }).unwrap_err();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot listen on 127.0.0.1:{port}: address already in use ({} (pid {}) is listening on port {port}; stop it or pick another port)",
                comm.trim_end(),
                std::process::id()
            )
        );
        let udp = udp_socket(spec).unwrap();
        let port = udp.local_addr().unwrap().port();
        let err = udp_socket(ListenSpec { port, ..spec }).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "has UDP port {port} open; stop it or pick another port)"
            )),
            "{err}"
        );
    }

    /// A TIME-WAIT connection on a port, as the notes' lesson 03 server leaves
    /// one: a listener without SO_REUSEADDR whose side closes first.
    fn time_wait_port() -> u16 {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        l.listen(1).unwrap();
        let l: TcpListener = l.into();
        let port = l.local_addr().unwrap().port();
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (s, _) = l.accept().unwrap();
        drop(s);
        assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
        port
    }

    #[test]
    fn time_wait_without_reuseaddr_is_told_apart_from_a_listener() {
        let port = time_wait_port();
        let spec = ListenSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            port,
            family: Family::V4,
        };
        // Our listener sets SO_REUSEADDR, yet the kernel refuses it: the
        // connection's socket did not.
        let err = tcp_listener(spec).unwrap_err();
        let h = err.holder.as_ref().expect("holder found in /proc/net/tcp");
        assert_eq!((h.listeners.len(), h.time_wait), (0, 1), "{h:?}");
        let left = h.time_wait_left.expect("TIME-WAIT timer");
        assert!(
            left > Duration::from_secs(50) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        let text = err.to_string();
        assert!(text.contains("nothing listens on port"), "{text}");
        // The kernel's 60 s, less however long this machine took to get here.
        let said =
            "1 connection of a program that just closed is in TIME-WAIT there; it frees in about ";
        let secs: u64 = text
            .split_once(said)
            .and_then(|(_, rest)| rest.split_once(" s."))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("no \"{said}N s.\" in {text}"));
        assert!((51..=60).contains(&secs), "{text}");
        assert!(text.contains("SO_REUSEADDR (lesson 04)"), "{text}");
    }

    const PROC_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C776 06 00000000:00000000 03:00000BB8 00000000     0        0 0 3 0000000000000000
   2: 00000000:1F91 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 77 1 0000000000000000
";

    #[test]
    fn proc_net_lines_are_read_with_address_state_timer_and_inode() {
        let s = parse_proc_net(PROC_TCP);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].local, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(
            (s[0].state, s[0].inode, s[0].timer_left),
            (0x0A, 4242, None)
        );
        assert_eq!(s[1].state, 0x06);
        assert_eq!(s[1].timer_left, Some(Duration::from_secs(30)));
        assert_eq!(s[2].local, SocketAddr::from(([0, 0, 0, 0], 8081)));
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 99 1 0000000000000000 100 0 0 10 0
";
        let s = parse_proc_net(v6);
        assert_eq!(s[0].local, SocketAddr::from((Ipv6Addr::LOCALHOST, 8080)));
    }

    #[test]
    fn a_listener_wins_over_time_wait_and_connections_over_time_wait() {
        let s = parse_proc_net(PROC_TCP);
        let name = |inode: u64| Some(format!("prog{inode}"));
        let h = classify(Proto::Tcp, &s[..2], &name);
        assert_eq!(
            h.explain(8080),
            "prog4242 is listening on port 8080; stop it or pick another port"
        );
        let h = classify(Proto::Tcp, &s[1..2], &|_| None);
        assert!(h.explain(8080).contains("frees in about 30 s"), "{h:?}");
        let mut est = s[1].clone();
        est.state = 0x01;
        let h = classify(Proto::Tcp, &[s[1].clone(), est], &|_| None);
        assert_eq!(
            h.explain(8080),
            "nothing listens on port 8080, but 1 connection of a program that stopped listening still uses it (ESTABLISHED); the port frees when they close"
        );
        assert_eq!(classify(Proto::Tcp, &[], &name), PortHolder::default());
    }

    #[test]
    fn only_overlapping_addresses_count() {
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        assert!(overlaps(lo, Ipv4Addr::UNSPECIFIED.into()));
        assert!(overlaps(Ipv6Addr::UNSPECIFIED.into(), lo));
        assert!(overlaps(lo, Ipv4Addr::LOCALHOST.to_ipv6_mapped().into()));
        assert!(!overlaps(lo, Ipv4Addr::new(10, 0, 0, 1).into()));
    }

    #[test]
    fn udp_binds_and_receives() {
        let spec = ListenSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            port: 0,
            family: Family::Any,
        };
        let s = udp_socket(spec).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"ping", s.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from, c.local_addr().unwrap());
    }
}
