//! socktools: socket command-line tools, and the library behind them, for learners of
//! TCP/UDP socket programming (and people doing it).
//!
//! # Layout
//!
//! Each module serves lessons of the course (`shared/course/LESSONS.md`); reading
//! `src/` in this order follows the course:
//!
//! | module | lesson | what it does |
//! |---|---|---|
//! | [`addr`] | 01 IP addresses and ports | parse `HOST PORT`, `HOST:PORT`, `[v6]:PORT`; resolve; connect trying each address |
//! | [`tcp::client`] | 02 TCP client, 05 send/recv | send a message and print the reply; full-duplex pipe with half-close |
//! | [`net`] | 03/04 TCP server, 08 UDP receive | `socket` → `SO_REUSEADDR` → `bind` → `listen` (backlog 1024), dual-stack |
//! | [`tcp::server`] | 03 single client, 04 thread per client | accept loop, one thread per client, echo/reply/sink/stdin |
//! | [`shutdown`] | 03/04 (closing sockets) | Ctrl-C that wakes threads blocked in `accept`/`recv` |
//! | [`codec`] | 06 GBK vs UTF-8 | streaming decoders, encoders that never send `&#NNNN;` |
//! | [`hex`] | 02/06 (raw bytes `b'\xc4\xe3'`) | hex dumps of what arrived, hex input for what to send |
//! | [`udp`] | 07 UDP send, 08 receive, 09 echo | datagrams: an echo server that answers every sender; send and wait for the reply |
//! | [`framing`] | 13 sticky packets 黏包 | raw / line / 4-byte length framing |
//! | [`chat`] | 10 UDP chat, 11 TCP chat | two-person chat over TCP or UDP, both typing at once; a line editor for terminals; a multi-user room |
//! | [`tftp`] | 12 TFTP download | packets, netascii, retransmission timer, transfer engine, `tftp-serve` / `tftp-get` / `tftp-put` |
//! | [`message`] | 02, 06, 13 | text ↔ wire bytes: encode, hex, line endings, framing; what arrives shown as records (one read, one record); the echo rule for two encodings |
//! | [`output`] | all | data to stdout, logs to stderr; the `--timestamps` clock |
//! | [`cli`] | all | the flags every tool shares, exit codes |
//! | [`sys`] | all | the platform layer: the calls beyond std (`ppoll`, `splice`, `recvmmsg`, termios, …), with a std-only fallback |
//!
//! Lesson 14 (the socket API table) maps onto std: `settimeout` is
//! [`std::net::TcpStream::set_read_timeout`], `getpeername`/`getsockname` are
//! `peer_addr`/`local_addr`, `sendall` is `write_all`, `connect_ex` is
//! [`addr::connect`] returning an error instead of a code.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod chat;
pub mod cli;
pub mod codec;
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
