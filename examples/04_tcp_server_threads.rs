//! Lesson 04 — multi-client TCP server, one thread per client (notes 000 §3.10,
//! 003 §5): accept clients in a loop, give each its own thread, answer every
//! message with `ok, 问题正在处理中...`, and print `客户端下线了: ADDR` when a
//! client's `recv` returns 0 bytes. Runs until you press Ctrl-C.
//!
//! Run (PORT is optional, default 8080 like the notes; 0 lets the OS pick a free
//! port, which the first stderr line `listening on ADDR` shows):
//!
//! ```text
//! cargo run --example 04_tcp_server_threads -- [PORT] [--gbk]
//! cargo run --example 04_tcp_server_threads -- 8080
//! ```
//!
//! `--gbk` decodes and replies in GBK, for the notes' 003 clients (NetAssist sends
//! GBK but shows UTF-8: `tcp-server --recv-encoding gbk` suits it). Then open two or three more terminals and connect from each — any of:
//!
//! ```text
//! cargo run --bin tcp-client -- 127.0.0.1 8080          # type lines; Ctrl-D leaves
//! cargo run --bin tcp-client -- 127.0.0.1 8080 我是客户端1
//! cargo run --example 02_tcp_client -- 127.0.0.1 8080   # lesson 02
//! python3 client.py      # the notes' client (000 §3.7) with its IP set to 127.0.0.1
//! nc 127.0.0.1 8080
//! ```

// 0. 导入模块 — import what we need (Python: `import socket, threading`).
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use socktools::addr::{describe_io, display_addr, parse_port};
use socktools::codec::{self, Encoding, TextDecoder, TextEncoder, Unmappable, parse_label};
use socktools::net::{ListenSpec, tcp_listener};

/// The notes' reply to every message.
const REPLY: &str = "ok, 问题正在处理中...";

const USAGE: &str =
    "usage: 04_tcp_server_threads [PORT] [--gbk]   (default port 8080; 0: any free port)";

fn main() -> ExitCode {
    let (port, encoding) = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("04_tcp_server_threads: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(port, encoding) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("04_tcp_server_threads: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(port: u16, encoding: &'static Encoding) -> Result<(), String> {
    // The reply never changes: encode it once. Every client thread gets a copy.
    let reply = TextEncoder::new(encoding)
        .encode(REPLY, Unmappable::Refuse)
        .map_err(|e| e.to_string())?
        .bytes;

    // 1. 创建服务端套接字对象 — create the server socket,
    //    设置端口号复用 — SO_REUSEADDR, "让程序退出端口号立即释放": restart the
    //    server right away without "address already in use",
    // 2. 绑定端口号 — bind the port on every interface (`("", 8080)`),
    // 3. 设置监听 — listen(128).
    //    `socktools::net::tcp_listener` does these in that order (std's own
    //    `TcpListener::bind` sets SO_REUSEADDR too, on Unix, but cannot make a
    //    dual-stack socket). "立即释放" holds only when the old server set it as
    //    well: Linux lets a bind pass TIME-WAIT connections only when both sockets
    //    have SO_REUSEADDR; otherwise the error says how long the port stays taken.
    let listener = tcp_listener(ListenSpec::any(port)).map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("listening on {local}");

    // 4. 等待接受客户端的连接请求 — wait for clients, in a loop: the main thread
    //    does nothing but accept, so a new client never waits for an old one.
    loop {
        let (client, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) => {
                // E.g. out of file descriptors. Not a reason to stop serving the
                // clients we have: report, pause a moment, and try again.
                eprintln!("accept failed: {}", describe_io(&e));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        eprintln!("客户端连接成功: {}", display_addr(&peer));

        //    实现子线程 — start a thread for this client. `thread::Builder::spawn`
        //    returns an error where `thread::spawn` would panic (no memory for
        //    another thread, say); then only this client is turned away.
        //    `move` hands the socket to the thread: from now on only it may use it.
        //    设置守护主线程 — Python marks the thread a daemon so it dies with the
        //    program. Rust threads behave that way already: when the process ends
        //    (Ctrl-C), every thread ends with it and the OS closes every socket.
        let reply = reply.clone();
        let spawned = thread::Builder::new()
            .name(format!("client {}", display_addr(&peer)))
            .spawn(move || handle_client_request(client, peer, encoding, &reply));
        if let Err(e) = spawned {
            eprintln!("cannot start a thread for {}: {e}", display_addr(&peer));
        }
    }
    // 服务端一般不用关闭 — a server normally never closes its listening socket: the
    // loop above never ends; Ctrl-C ends the process, and the OS closes the socket.
}

/// One client's conversation, in its own thread (the notes' `handle_client_request`).
///
/// No read timeout here, on purpose: an idle client blocks only its own thread,
/// and the notes' server waits for its clients for as long as they stay connected.
fn handle_client_request(
    mut client: TcpStream,
    peer: SocketAddr,
    encoding: &'static Encoding,
    reply: &[u8],
) {
    let who = display_addr(&peer);
    // One decoder for the whole connection: TCP may split a character across two
    // reads (the first byte of 你 in one, the rest in the next); a streaming
    // decoder keeps the first half until the rest arrives (lesson 06).
    let mut decoder = TextDecoder::new(encoding);
    let mut recv_buf = [0u8; 1024];
    // 循环接收客户端发送的数据 — receive in a loop: we do not know how much the
    // client will send.
    loop {
        // 5. 接收数据 — receive data: up to 1024 bytes, whatever has arrived.
        match client.read(&mut recv_buf) {
            // recv returns b'' (0 bytes): the client closed its end (000 §3.9,
            // point 8). A half character still held by the decoder can never be
            // completed now; `last = true` shows it as U+FFFD instead of losing it.
            Ok(0) => {
                let tail = decoder.decode(&[], true);
                if !tail.is_empty() {
                    println!("接收的数据: {tail} {who}");
                }
                eprintln!("客户端下线了: {who}");
                break;
            }
            Ok(n) => {
                let text = decoder.decode(&recv_buf[..n], false);
                // Like the notes' `print(recv_data.decode(), ip_port)`, minus the
                // line ending that nc and tcp-client send after each line.
                println!("接收的数据: {} {who}", text.trim_end_matches(['\r', '\n']));
                if decoder.take_error_warning() {
                    eprintln!(
                        "({who} sends bytes that are not valid {}, shown as \u{fffd}: another encoding?)",
                        codec::display_name(encoding)
                    );
                }
                // 6. 发送数据 — reply to every message.
                if let Err(e) = client.write_all(reply) {
                    eprintln!("客户端下线了: {who} (send failed: {})", describe_io(&e));
                    break;
                }
            }
            // A reset (the client was killed, or its machine went away) also ends
            // the conversation: only this thread notices, the others go on.
            Err(e) => {
                eprintln!("客户端下线了: {who} ({})", describe_io(&e));
                break;
            }
        }
    }
    // 7. 关闭套接字 — 终止和客户端进行通信: the socket closes when `client` is
    //    dropped, at the end of this function. The listening socket stays open.
    drop(client);
}

/// `[PORT] [--gbk]`; `Ok(None)` for `--help`.
fn parse_args(argv: Vec<String>) -> Result<Option<(u16, &'static Encoding)>, String> {
    let mut encoding = parse_label("utf-8").map_err(|e| e.to_string())?;
    let mut port = None;
    for arg in argv {
        match arg.as_str() {
            "--gbk" => encoding = parse_label("gbk").map_err(|e| e.to_string())?,
            "-h" | "--help" => return Ok(None),
            // "-1" is a bad port, not an option: let parse_port say so.
            s if s.starts_with('-') && s.parse::<i64>().is_err() => {
                return Err(format!("unknown option {s:?}"));
            }
            // Lesson 01: a port is a number from 0 to 65535.
            s if port.is_none() => port = Some(parse_port(s).map_err(|e| e.to_string())?),
            s => return Err(format!("unexpected argument {s:?}")),
        }
    }
    Ok(Some((port.unwrap_or(8080), encoding)))
}
