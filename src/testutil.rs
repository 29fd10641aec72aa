//! Unit tests' servers: a `serve` on 127.0.0.1:0 in a thread of its own, its stdout and stderr in memory.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use crate::codec::Unmappable;
use crate::error::Blame;
use crate::message::{Reply, SendOptions};
use crate::net::{ListenSpec, tcp_listener, udp_socket};
use crate::output::{Io, Log, Output, Verbosity};
use crate::shutdown::Shutdown;

/// Longest a test waits for a server to stop.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// Where a server listens in a test: loopback, any free port.
fn loopback() -> ListenSpec {
    ListenSpec {
        bind: Some(Ipv4Addr::LOCALHOST.into()),
        ..ListenSpec::any(0)
    }
}

/// A server running in this process.
pub(crate) struct Running<S, E> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stdout (empty when the test gave an `Output` of its own).
    pub out: SharedBuf,
    /// Its stderr.
    pub log: SharedBuf,
    /// Its Ctrl-C.
    pub shutdown: Shutdown,
    done: mpsc::Receiver<Result<S, E>>,
}

/// A socket a server can be handed, and where it listens.
pub(crate) trait Bound: Send + 'static {
    /// Bind one on loopback, any free port.
    fn loopback() -> Self;
    /// Its address.
    fn addr(&self) -> SocketAddr;
}

impl Bound for TcpListener {
    fn loopback() -> Self {
        tcp_listener(loopback()).unwrap()
    }
    fn addr(&self) -> SocketAddr {
        self.local_addr().unwrap()
    }
}

impl Bound for UdpSocket {
    fn loopback() -> Self {
        udp_socket(loopback()).unwrap()
    }
    fn addr(&self) -> SocketAddr {
        self.local_addr().unwrap()
    }
}

impl<S: Send + 'static, E: Send + 'static> Running<S, E> {
    /// `serve(listener, io, shutdown)` on a TCP listener.
    pub fn tcp(
        serve: impl FnOnce(TcpListener, Io, &Shutdown) -> Result<S, E> + Send + 'static,
    ) -> Self {
        Self::start(None, serve)
    }

    /// `serve(socket, io, shutdown)` on a UDP socket.
    pub fn udp(
        serve: impl FnOnce(UdpSocket, Io, &Shutdown) -> Result<S, E> + Send + 'static,
    ) -> Self {
        Self::start(None, serve)
    }

    /// `serve` on a new loopback socket of type `T`, its stdout going to `out`
    /// (default: memory, in [`Running::out`]).
    pub fn start<T: Bound>(
        out: Option<Output>,
        serve: impl FnOnce(T, Io, &Shutdown) -> Result<S, E> + Send + 'static,
    ) -> Self {
        let socket = T::loopback();
        let addr = socket.addr();
        let (stdout, log) = (SharedBuf::new(), SharedBuf::new());
        let io = Io::new(
            out.unwrap_or_else(|| Output::to_writer(stdout.clone())),
            Log::to_writer(log.clone(), Verbosity::Normal),
        );
        let shutdown = Shutdown::new();
        let sd = shutdown.clone();
        let (tx, done) = mpsc::channel();
        thread::spawn(move || tx.send(serve(socket, io, &sd)));
        Running {
            addr,
            out: stdout,
            log,
            shutdown,
            done,
        }
    }
}

impl<S, E> Running<S, E> {
    /// What `serve` returned, once it has stopped by itself.
    pub fn result(&self) -> Result<S, E> {
        self.done
            .recv_timeout(STOP_WITHIN)
            .expect("serve did not stop")
    }

    /// Ctrl-C, then what `serve` returned.
    pub fn stop_result(self) -> Result<S, E> {
        self.shutdown.trigger();
        self.result()
    }
}

impl<S, E: std::fmt::Debug> Running<S, E> {
    /// The summary of a server that stopped by itself.
    pub fn finished(&self) -> S {
        self.result().unwrap()
    }

    /// Ctrl-C, then the summary.
    pub fn stop(self) -> S {
        self.stop_result().unwrap()
    }
}

/// `--reply 😀 --send-encoding gbk --strict-encoding`: a reply the send encoding
/// cannot carry.
pub(crate) fn unsendable_reply() -> (Reply, SendOptions) {
    let send = SendOptions {
        encoding: encoding_rs::GBK,
        unmappable: Unmappable::Refuse,
        ..SendOptions::default()
    };
    (Reply::Text("😀".into()), send)
}

/// The server refused [`unsendable_reply`] before it listened: a usage error
/// that names the character, and not a word on stderr.
pub(crate) fn assert_refused_before_listening<S, E: Blame + std::fmt::Display>(
    server: Running<S, E>,
) {
    let err = match server.result() {
        Ok(_) => panic!("the server started"),
        Err(e) => e,
    };
    assert!(err.is_usage(), "{err}");
    assert!(err.to_string().contains("U+1F600"), "{err}");
    assert_eq!(server.log.text(), "");
}

/// An in-memory writer whose clones share one buffer: hand one clone to a
/// [`Log`] or [`Output`], keep the other to read what was written.
#[derive(Clone, Default)]
pub(crate) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Everything written so far.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything written so far, as (lossy) text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
