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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
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

    /// 127.0.0.1, this port, this family.
    fn loopback(port: u16, family: Family) -> ListenSpec {
        ListenSpec {
            bind: Some(Ipv4Addr::LOCALHOST.into()),
            port,
            family,
        }
    }

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
        let spec = loopback(0, Family::Any);
        let l = tcp_listener(spec).unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        roundtrip(&l, addr);
    }

    #[test]
    fn port_in_use_names_the_program_listening_there() {
        let spec = loopback(0, Family::V4);
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
        let spec = loopback(port, Family::V4);
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
        let spec = loopback(0, Family::Any);
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
