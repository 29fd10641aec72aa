//! TFTP (lesson 12): the wire format, the protocol as pure state machines, one driver loop, and the server and client built on them.
//!
//! TFTP moves a file over UDP in numbered blocks. The client sends a
//! request (RRQ to download, WRQ to upload) to the server's port 69; the
//! server answers from a *new* port, the transfer ID, and the two sides
//! then trade DATA and ACK packets until a block shorter than the block
//! size ends the file. Read the modules in this order:
//!
//! | module | what it does |
//! |---|---|
//! | [`packet`] | the six packets and the options, parsed without ever panicking |
//! | [`netascii`] | the text mode: `\n` ↔ `\r\n`, `\r` ↔ `\r\0`, across block boundaries |
//! | [`timer`] | when to retransmit: the RFC's fixed timer, or one adapted to the measured round-trip time |
//! | [`proto`] | the sender, the receiver and the negotiation as sans-IO state machines: datagrams and time in, datagrams and deadlines out (windows, retransmission, duplicates, strays) |
//! | [`engine`] | the one loop that runs a machine on real sockets and a real file; `--trace` |
//! | [`fs`] | confining requests to the served directory (cap-std); files written under a temporary name |
//! | [`server`] | `tftp-serve`: one thread and one socket per transfer; slots that requests cannot hoard |
//! | [`client`] | `tftp-get` / `tftp-put`: the client's machine on two ports |
//! | [`local`] | where `tftp-get` writes: regular files replaced whole, devices and fifos written into |

pub mod client;
pub mod engine;
pub mod fs;
pub mod local;
pub mod netascii;
pub mod packet;
pub mod proto;
pub mod server;
pub mod timer;

pub use packet::{ErrorCode, Mode, Options, Packet};
