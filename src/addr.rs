//! Addresses and ports (lesson 01): parsing what a user types, resolving it, and connecting.
//!
//! In the notes a socket address is a Python tuple `("192.168.3.9", 8080)`. On the
//! command line people write it in many ways — `127.0.0.1 8080`, `127.0.0.1:8080`,
//! `[::1]:8080`, `::1 8080`, `localhost 8080` — and this module accepts all of them.
//! A host name may resolve to several addresses (IPv6 and IPv4 for `localhost`), so
//! [`connect`] tries each in turn, the way `socket.create_connection` does in Python.

use crate::error::Blame;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Which IP versions a tool may use (`-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Either IPv4 or IPv6, whatever the name resolves to.
    #[default]
    Any,
    /// IPv4 only (`AF_INET` in the notes).
    V4,
    /// IPv6 only (`AF_INET6`).
    V6,
}

impl Family {
    /// The family chosen by the `-4` and `-6` flags (they conflict in clap).
    pub fn from_flags(ipv4: bool, ipv6: bool) -> Family {
        match (ipv4, ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }

    /// Does `addr` belong to this family?
    pub fn allows(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }
}

/// Errors from parsing, resolving or connecting to an address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// A port that is not a number from 0 to 65535.
    #[error("invalid port \"{0}\": expected 0-65535")]
    InvalidPort(String),
    /// The host part is empty or malformed (`[::1` without its bracket, say).
    #[error("invalid host \"{0}\"")]
    InvalidHost(String),
    /// A host was given without any port.
    #[error("missing port after host \"{0}\" (write HOST PORT or HOST:PORT)")]
    MissingPort(String),
    /// Name resolution failed.
    #[error("cannot resolve \"{host}\": {source}")]
    Resolve {
        /// The name that failed.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// The name resolved, but to no address of the requested family.
    #[error("\"{host}\" has no {family}address")]
    NoAddress {
        /// The name.
        host: String,
        /// `"IPv4 "`, `"IPv6 "` or `""` (any family).
        family: &'static str,
    },
    /// Every address was tried and none accepted the connection.
    #[error("cannot connect to {0}")]
    Connect(ConnectFailures),
}

impl Blame for AddrError {
    /// A host or port that cannot be parsed is the user's; one that does not
    /// resolve or answer is the network's.
    fn is_usage(&self) -> bool {
        matches!(
            self,
            AddrError::InvalidPort(_) | AddrError::InvalidHost(_) | AddrError::MissingPort(_)
        )
    }
}

/// The addresses that were tried and why each failed.
#[derive(Debug)]
pub struct ConnectFailures(pub Vec<(SocketAddr, io::Error)>);

impl fmt::Display for ConnectFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (addr, err)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{addr}: {}", describe_io(err))?;
        }
        Ok(())
    }
}

/// A short, human description of an I/O error (`connection refused`, `timed out`),
/// without the `(os error 111)` noise.
pub fn describe_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let text = err.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_lowercase(),
                None => text,
            }
        }
    }
}

/// A host (name or IP literal, without brackets) and a port, not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `127.0.0.1`, `::1`, `localhost`, …
    pub host: String,
    /// 0–65535.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parse a port number, naming the bad input in the error.
pub fn parse_port(s: &str) -> Result<u16, AddrError> {
    let t = s.trim();
    // `u16::from_str` accepts a leading '+', which no one means as a port.
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::InvalidPort(s.to_string()));
    }
    t.parse::<u16>()
        .map_err(|_| AddrError::InvalidPort(s.to_string()))
}

/// Strip `[` `]` from an IPv6 literal and check the host is not empty.
fn clean_host(host: &str) -> Result<String, AddrError> {
    let h = host.trim();
    let h = match (h.strip_prefix('['), h.ends_with(']')) {
        (Some(rest), true) => &rest[..rest.len() - 1],
        (None, false) => h,
        _ => return Err(AddrError::InvalidHost(host.to_string())),
    };
    if h.is_empty() || h.contains(['[', ']', ' ', '/']) {
        return Err(AddrError::InvalidHost(host.to_string()));
    }
    // `999.1.1.1` looks like an IPv4 address but is not one; the resolver would
    // treat it as a host name and fail with a confusing "name not known".
    let dotted = h.contains('.') && h.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if dotted && h.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(AddrError::InvalidHost(host.to_string()));
    }
    Ok(h.to_string())
}

/// If `s` carries its own port (`host:port` or `[v6]:port`), split it.
/// A bare IPv6 address (`::1`, two or more colons, no brackets) carries no port.
fn split_host_port(s: &str) -> Option<Result<Target, AddrError>> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Some(Err(AddrError::InvalidHost(s.to_string())));
        };
        let port = after.strip_prefix(':')?;
        return Some(clean_host(host).and_then(|host| {
            Ok(Target {
                host,
                port: parse_port(port)?,
            })
        }));
    }
    if s.matches(':').count() == 1 {
        let (host, port) = s.split_once(':')?;
        return Some(clean_host(host).and_then(|host| {
            Ok(Target {
                host,
                port: parse_port(port)?,
            })
        }));
    }
    None
}

/// Parse a host and port given as one word (`host:port`, `[v6]:port`).
pub fn parse_target(s: &str) -> Result<Target, AddrError> {
    split_host_port(s).unwrap_or_else(|| Err(AddrError::MissingPort(s.to_string())))
}

/// Parse `host`, `host:port`, `[v6]:port` or a bare IPv6 address; a host
/// without a port gets `default_port` (TFTP's 69).
pub fn parse_host_or_target(s: &str, default_port: u16) -> Result<Target, AddrError> {
    match split_host_port(s) {
        Some(parsed) => parsed,
        None => Ok(Target {
            host: clean_host(s)?,
            port: default_port,
        }),
    }
}

/// Parse the address at the front of a tool's positional arguments and return the rest.
///
/// `["127.0.0.1:8080", "hi"]` and `["127.0.0.1", "8080", "hi"]` both give
/// `127.0.0.1:8080` and `["hi"]`; so do `[::1]:8080` and `::1 8080`.
pub fn parse_target_args(args: &[String]) -> Result<(Target, &[String]), AddrError> {
    let first = args
        .first()
        .ok_or_else(|| AddrError::InvalidHost(String::new()))?;
    if let Some(parsed) = split_host_port(first) {
        return Ok((parsed?, &args[1..]));
    }
    let host = clean_host(first)?;
    let port = args
        .get(1)
        .ok_or_else(|| AddrError::MissingPort(first.clone()))?;
    Ok((
        Target {
            host,
            port: parse_port(port)?,
        },
        &args[2..],
    ))
}

/// Parse a local address to bind: an IP literal (`127.0.0.1`, `::1`, `[::1]`) or a host
/// name that resolves to one.
pub fn parse_bind(s: &str, family: Family) -> Result<IpAddr, AddrError> {
    let host = clean_host(s)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let target = Target { host, port: 0 };
    Ok(resolve(&target, family)?[0].ip())
}

/// Resolve a target to every address of the wanted family, in the resolver's order.
pub fn resolve(target: &Target, family: Family) -> Result<Vec<SocketAddr>, AddrError> {
    let all: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|source| AddrError::Resolve {
            host: target.host.clone(),
            source,
        })?
        .collect();
    let wanted: Vec<SocketAddr> = all.into_iter().filter(|a| family.allows(a)).collect();
    if wanted.is_empty() {
        return Err(AddrError::NoAddress {
            host: target.host.clone(),
            family: match family {
                Family::V4 => "IPv4 ",
                Family::V6 => "IPv6 ",
                Family::Any => "",
            },
        });
    }
    Ok(wanted)
}

/// Connect to the first address of `target` that accepts, each attempt bounded by
/// `timeout` (`None`: the operating system's own, often minutes).
pub fn connect(
    target: &Target,
    family: Family,
    timeout: Option<Duration>,
) -> Result<TcpStream, AddrError> {
    let mut failures = Vec::new();
    for addr in resolve(target, family)? {
        let attempt = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(err) => failures.push((addr, err)),
        }
    }
    Err(AddrError::Connect(ConnectFailures(failures)))
}

/// `addr` with an IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]:69`, what a
/// dual-stack socket reports) turned into plain IPv4, so the two compare equal.
pub fn unmapped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Show an address the way people expect: an IPv4 client of a dual-stack server
/// appears as `127.0.0.1:5000`, not `[::ffff:127.0.0.1]:5000`.
pub fn display_addr(addr: &SocketAddr) -> String {
    SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn t(host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn host_and_port_as_two_words() {
        let a = args(&["127.0.0.1", "8080", "hi"]);
        let (target, rest) = parse_target_args(&a).unwrap();
        assert_eq!(target, t("127.0.0.1", 8080));
        assert_eq!(rest, &a[2..]);
    }

    #[test]
    fn host_port_as_one_word() {
        let a = args(&["127.0.0.1:8080", "hi", "there"]);
        let (target, rest) = parse_target_args(&a).unwrap();
        assert_eq!(target, t("127.0.0.1", 8080));
        assert_eq!(rest.len(), 2);
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(parse_target("[::1]:8080").unwrap(), t("::1", 8080));
        let a = args(&["::1", "9000"]);
        assert_eq!(parse_target_args(&a).unwrap().0, t("::1", 9000));
        let a = args(&["[::1]", "9000"]);
        assert_eq!(parse_target_args(&a).unwrap().0, t("::1", 9000));
        let a = args(&["fe80::1:2", "1"]);
        assert_eq!(parse_target_args(&a).unwrap().0, t("fe80::1:2", 1));
    }

    #[test]
    fn host_names_kept_for_resolution() {
        let a = args(&["localhost", "80"]);
        assert_eq!(parse_target_args(&a).unwrap().0, t("localhost", 80));
        assert_eq!(
            parse_target("example.com:443").unwrap(),
            t("example.com", 443)
        );
    }

    #[test]
    fn bad_ports_are_named() {
        let a = args(&["127.0.0.1", "80a"]);
        let err = parse_target_args(&a).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid port "80a": expected 0-65535"#);
        for bad in ["65536", "-1", "+80", "", "99999999999", "8 0"] {
            assert!(parse_port(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_port("0").unwrap(), 0);
        assert_eq!(parse_port("65535").unwrap(), 65535);
        assert!(matches!(
            parse_target("host:http"),
            Err(AddrError::InvalidPort(p)) if p == "http"
        ));
    }

    #[test]
    fn missing_or_malformed_hosts() {
        assert!(matches!(
            parse_target_args(&args(&["127.0.0.1"])),
            Err(AddrError::MissingPort(_))
        ));
        assert!(matches!(
            parse_target_args(&args(&["::1"])),
            Err(AddrError::MissingPort(_))
        ));
        assert!(matches!(
            parse_target("[::1:80"),
            Err(AddrError::InvalidHost(_))
        ));
        assert!(matches!(
            parse_target(":80"),
            Err(AddrError::InvalidHost(_))
        ));
        assert!(matches!(
            parse_target_args(&args(&["[::1", "80"])),
            Err(AddrError::InvalidHost(_))
        ));
        assert!(parse_target_args(&[]).is_err());
        let err = parse_target_args(&args(&["999.1.1.1", "80"])).unwrap_err();
        assert_eq!(err.to_string(), "invalid host \"999.1.1.1\"");
        assert!(parse_target("1.2.3:80").is_err());
    }

    #[test]
    fn resolve_filters_family() {
        let v4 = resolve(&t("127.0.0.1", 1), Family::V4).unwrap();
        assert_eq!(v4, vec!["127.0.0.1:1".parse().unwrap()]);
        let err = resolve(&t("127.0.0.1", 1), Family::V6).unwrap_err();
        assert_eq!(err.to_string(), "\"127.0.0.1\" has no IPv6 address");
        let v6 = resolve(&t("::1", 2), Family::Any).unwrap();
        assert!(v6[0].is_ipv6());
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(
            parse_bind("127.0.0.1", Family::Any).unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(parse_bind("[::1]", Family::Any).unwrap().to_string(), "::1");
        assert!(parse_bind("", Family::Any).is_err());
    }

    #[test]
    fn connect_refused_names_the_address() {
        // Bind then drop a listener: its port is now (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = connect(
            &t("127.0.0.1", port),
            Family::Any,
            Some(Duration::from_secs(2)),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot connect to 127.0.0.1:{port}: connection refused")
        );
    }

    #[test]
    fn mapped_v4_shown_plain() {
        let a: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert_eq!(display_addr(&a), "127.0.0.1:5000");
        let b: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(display_addr(&b), "[::1]:5000");
    }
}
