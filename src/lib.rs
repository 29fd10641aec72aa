//! socktools: socket command-line tools, and the library behind them, for learners of
//! TCP/UDP socket programming (and people doing it).
//!
//! # Where to start
//!
//! Each tool is one function, re-exported here under the tool's name, with a
//! `Config` (from `Config::default()`, or `Config::new(..)` for TFTP, which needs a
//! directory or a server first; then adjust its fields), an [`Io`] (where data and
//! logs go) and a [`Shutdown`] (Ctrl-C). Every server has the same shape:
//! `serve(listener_or_socket, &Config, Io, &Shutdown) -> Result<Summary, Error>`.
//!
//! | tool | function | module |
//! |---|---|---|
//! | `tcp-client` | [`tcp_client`] | [`tcp::client`] |
//! | `tcp-server` | [`tcp_server`] | [`tcp::server`] |
//! | `udp-echo send` / `serve` | [`udp_echo_send`] / [`udp_echo_serve`] | [`udp`] |
//! | `chat listen` / `connect` | [`chat_session`] | [`chat::session`] |
//! | `chat room` | [`chat_room`] | [`chat::room`] |
//! | `tftp-get` / `tftp-put` | [`tftp_get`] / [`tftp_put`] | [`tftp::client`] |
//! | `tftp-serve` | [`tftp_serve`] | [`tftp::server`] |
//!
//! Every error answers [`Blame::is_usage`] (the user's command line, exit 2, or
//! the world, exit 1) and converts into [`Error`] with `?`.
//!
//! `tcp-server`'s echo, in-process, on a free loopback port (as every test here runs it):
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use socktools::output::Verbosity;
//! use socktools::{Io, Log, Output, Shutdown, tcp};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! // What clients send would go to stdout and the log to stderr; here, nowhere.
//! let io = Io::new(
//!     Output::to_writer(std::io::sink()),
//!     Log::to_writer(std::io::sink(), Verbosity::Quiet),
//! );
//! let shutdown = Shutdown::new();
//! let stop = shutdown.clone();
//! let server = std::thread::spawn(move || {
//!     socktools::tcp_server(listener, &tcp::server::Config::default(), io, &stop)
//! });
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.set_read_timeout(Some(Duration::from_secs(10)))?;
//! client.write_all("你好".as_bytes())?;
//! let mut echo = [0; 6];
//! client.read_exact(&mut echo)?;
//! assert_eq!(&echo, "你好".as_bytes());
//! drop(client);
//!
//! shutdown.trigger(); // what Ctrl-C does in the binary
//! let summary = server.join().unwrap().expect("the server ran");
//! assert_eq!((summary.bytes_in, summary.bytes_out), (6, 6));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Modules, in the order of the course
//!
//! The README's "Lesson map" says which command and example serve each lesson;
//! reading `src/` in this order follows the course:
//!
//! | module | lesson | what it does |
//! |---|---|---|
//! | [`addr`] | 01 IP addresses and ports | parse `HOST PORT`, `HOST:PORT`, `[v6]:PORT`; resolve; connect trying each address |
//! | [`tcp::client`] | 02 TCP client, 05 send/recv | send a message and print the reply; full-duplex pipe with half-close |
//! | [`net`] | 03/04 TCP server, 08 UDP receive | `socket` → `SO_REUSEADDR` → `bind` → `listen` (backlog 1024), dual-stack; who holds a port in use |
//! | [`tcp::server`] | 03 single client, 04 thread per client | accept loop, one thread per client, echo/reply/sink/stdin |
//! | [`shutdown`] | 03/04 (closing sockets) | Ctrl-C that wakes threads blocked in `accept`/`recv` |
//! | [`codec`] | 06 GBK vs UTF-8 | streaming decoders, encoders that never send `&#NNNN;` |
//! | [`hex`] | 02/06 (raw bytes `b'\xc4\xe3'`) | hex dumps of what arrived, hex input for what to send |
//! | [`udp`] | 07 UDP send, 08 receive, 09 echo | datagrams: an echo server that answers every sender; send and wait for the reply |
//! | [`chat`] | 10 UDP chat, 11 TCP chat | two-person chat over TCP or UDP, both typing at once ([`chat::session`]); what chats and the room say to each other ([`chat::protocol`]); a line editor for terminals; a multi-user room ([`chat::room`]) |
//! | [`tftp`] | 12 TFTP download | packets, netascii, the sans-IO protocol core, retransmission timer, transfer engine, `tftp-serve` / `tftp-get` / `tftp-put` |
//! | [`framing`] | 13 sticky packets 黏包 | raw / line / 4-byte length framing |
//! | [`message`] | 02, 06, 13 | text ↔ wire bytes: encode, hex, line endings, framing; what arrives shown as records (one read, one record); the echo rule for two encodings |
//! | [`output`] | all | data to stdout, logs to stderr ([`Io`]); the `--timestamps` clock |
//! | [`error`] | all | whose mistake an error is ([`Blame`]), and the [`Error`] binaries return |
//! | `cli` (feature `cli`) | all | the flags every tool shares, help, man pages, completions, exit codes |
//! | [`sys`] | all | the platform layer: the calls beyond std (`ppoll`, `splice`, `recvmmsg`, termios, …), with a std-only fallback |
//!
//! Lesson 14 (the socket API table) maps onto std: `settimeout` is
//! [`std::net::TcpStream::set_read_timeout`], `getpeername`/`getsockname` are
//! `peer_addr`/`local_addr`, `sendall` is `write_all`, `connect_ex` is
//! [`addr::connect`] returning an error instead of a code.
//!
//! # Features
//!
//! `cli` (on by default) adds the command-line glue the binaries use: clap,
//! clap_complete, clap_mangen, indicatif and ctrlc. Without it
//! (`socktools = { default-features = false }`) the library has the sockets,
//! codecs, framing, chat and TFTP alone.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod chat;
#[cfg(feature = "cli")]
pub mod cli;
pub mod codec;
pub mod error;
pub mod framing;
pub mod hex;
pub mod message;
pub mod net;
pub mod output;
pub mod shutdown;
pub mod sys;
pub mod tcp;
pub mod tftp;
pub mod udp;

#[cfg(test)]
pub(crate) mod testutil;

pub use error::{Blame, Error, UsageError};
pub use output::{Io, Log, Output};
pub use shutdown::Shutdown;

pub use chat::room::serve as chat_room;
pub use chat::session::run as chat_session;
pub use tcp::client::run as tcp_client;
pub use tcp::server::serve as tcp_server;
pub use tftp::client::{get as tftp_get, put as tftp_put};
pub use tftp::server::serve as tftp_serve;
pub use udp::client::send as udp_echo_send;
pub use udp::server::serve as udp_echo_serve;
