//! Unit tests' servers: a `serve` on 127.0.0.1:0 in a thread of its own, its stdout and stderr in memory.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::net::{ListenSpec, tcp_listener, udp_socket};
use crate::output::{Io, Log, Output, SharedBuf, Verbosity};
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

impl<S, E> Running<S, E> {
    /// `serve(listener, io, shutdown)` on a TCP listener.
    pub fn tcp<F>(serve: F) -> Self
    where
        F: FnOnce(TcpListener, Io, &Shutdown) -> Result<S, E> + Send + 'static,
        S: Send + 'static,
        E: Send + 'static,
    {
        Self::tcp_to(None, serve)
    }

    /// The same, with stdout going to `out` instead of memory.
    pub fn tcp_to<F>(out: Option<Output>, serve: F) -> Self
    where
        F: FnOnce(TcpListener, Io, &Shutdown) -> Result<S, E> + Send + 'static,
        S: Send + 'static,
        E: Send + 'static,
    {
        let listener = tcp_listener(loopback()).unwrap();
        let addr = listener.local_addr().unwrap();
        Self::spawn(listener, addr, out, serve)
    }

    /// `serve(socket, io, shutdown)` on a UDP socket.
    pub fn udp<F>(serve: F) -> Self
    where
        F: FnOnce(UdpSocket, Io, &Shutdown) -> Result<S, E> + Send + 'static,
        S: Send + 'static,
        E: Send + 'static,
    {
        let socket = udp_socket(loopback()).unwrap();
        let addr = socket.local_addr().unwrap();
        Self::spawn(socket, addr, None, serve)
    }

    fn spawn<T, F>(socket: T, addr: SocketAddr, out: Option<Output>, serve: F) -> Self
    where
        T: Send + 'static,
        F: FnOnce(T, Io, &Shutdown) -> Result<S, E> + Send + 'static,
        S: Send + 'static,
        E: Send + 'static,
    {
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
