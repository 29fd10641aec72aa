//! Lesson 03 — TCP server for a single client (notes 000 §3.8, 003 §3): bind, listen,
//! accept one client, print its address, receive one message, decode it, reply
//! `我是服务器, 你好客户端: ('ip', port)`, close both sockets and exit.
//!
//! Run (PORT is optional, default 8080 like the notes; 0 lets the OS pick a free
//! port, which the first stderr line `listening on ADDR` shows):
//!
//! ```text
//! cargo run --example 03_tcp_server -- [PORT] [--gbk]
//! cargo run --example 03_tcp_server -- 8080
//! ```
//!
//! `--gbk` decodes and replies in GBK, for the notes' 003 client (NetAssist sends
//! GBK but shows UTF-8: `tcp-server --recv-encoding gbk` suits it). Then, in another terminal, play the client — any of:
//!
//! ```text
//! cargo run --bin tcp-client -- 127.0.0.1 8080 你好服务端
//! cargo run --bin tcp-client -- 127.0.0.1 8080 你好服务端 --encoding gbk   # with --gbk
//! cargo run --example 02_tcp_client -- 127.0.0.1 8080                     # lesson 02
//! python3 client.py      # the notes' client (000 §3.7) with its IP set to 127.0.0.1
//! nc 127.0.0.1 8080      # type a line and press Enter
//! ```

// 0. 导入模块 — import what we need.
use socktools::hex::py_repr;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use socktools::addr::{describe_io, display_addr, parse_port};
use socktools::codec::{self, Encoding, TextDecoder, TextEncoder, Unmappable, parse_label};
use socktools::net::{ListenSpec, tcp_listener};

/// How long we wait for the client's message once it has connected. The notes'
/// `recv(1024)` waits forever; a client that connects and never speaks would then
/// hang this one-client server for good.
const RECV_TIMEOUT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: 03_tcp_server [PORT] [--gbk]   (default port 8080; 0: any free port)";

fn main() -> ExitCode {
    let (port, encoding) = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("03_tcp_server: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(port, encoding) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("03_tcp_server: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(port: u16, encoding: &'static Encoding) -> Result<(), String> {
    // 1. 创建服务端套接字对象 — create the server socket,
    //    设置端口号复用 — set SO_REUSEADDR, so a restarted server can bind again at
    //    once instead of failing with "端口被占用" (address in use) while the old
    //    connection sits in TIME_WAIT,
    // 2. 绑定端口号 — bind the port: `bind(("", 8080))`, every interface, so a
    //    client on the LAN can reach us as well as one on 127.0.0.1,
    // 3. 设置监听 — listen, with `listen(128)`: up to 128 connections may wait
    //    for `accept`. From now on this socket only accepts; it never carries data.
    //
    //    SO_REUSEADDR helps only when the program that left the old connections
    //    set it too: Linux lets a socket bind past TIME-WAIT only when both did.
    //    After the notes' 000 §3.8 server (which does not) has closed, the port
    //    stays taken for about 60 s, and the error here says exactly that.
    //
    //    std's `TcpListener::bind` sets SO_REUSEADDR itself (on Unix) but cannot
    //    make a dual-stack socket or choose the backlog, so
    //    `socktools::net::tcp_listener` does all three steps with the socket2 crate
    //    (and listens on IPv6 too, when the machine has it).
    let listener = tcp_listener(ListenSpec::any(port)).map_err(|e| e.to_string())?;
    // With port 0 the OS chose the port: ask the socket which (Python's getsockname).
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("listening on {local}");

    // 4. 等待接受客户端的连接请求 — wait for a client to connect.
    //    `accept` blocks until one does, then returns a NEW socket that talks to
    //    that client only, and the client's (ip, port).
    let (mut client, peer) = listener
        .accept()
        .map_err(|e| format!("accept failed: {}", describe_io(&e)))?;
    // A dual-stack socket sees an IPv4 client as ::ffff:127.0.0.1; show it plainly.
    println!("接收到客户端的ip地址和端口号: {}", display_addr(&peer));

    // 5. 接收数据 — receive data: one `recv(1024)`. `set_read_timeout` is Python's
    //    `settimeout` (lesson 14).
    client
        .set_read_timeout(Some(RECV_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut recv_buf = [0u8; 1024];
    let n = match client.read(&mut recv_buf) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(format!(
                "the client sent nothing within {} s",
                RECV_TIMEOUT.as_secs()
            ));
        }
        Err(e) => return Err(format!("recv failed: {}", describe_io(&e))),
    };
    if n == 0 {
        // recv returns b'' when the client closed the connection (000 §3.9, point 8).
        println!("客户端没有发送数据就下线了 (the client closed without sending anything)");
    } else {
        let recv_data = &recv_buf[..n];
        println!("接收到的原始数据 ({n} bytes): {}", py_repr(recv_data));
        //    数据解码 — decode the bytes into text. `last = true`: this is our only
        //    read, so half a character at its end can never be completed.
        let mut decoder = TextDecoder::new(encoding);
        println!("接收到客户端消息: {}", decoder.decode(recv_data, true));
        if decoder.had_errors() {
            println!(
                "(some bytes are not valid {}, shown as \u{fffd}: does the client use another encoding?)",
                codec::display_name(encoding)
            );
        }

        // 6. 发送数据 — send data: the reply names the client, as in the notes:
        //    `"我是服务器," + "你好客户端:" + str(ip_port)`.
        let reply = format!("我是服务器, 你好客户端: {}", py_tuple(&peer));
        let send_data = TextEncoder::new(encoding)
            .encode(&reply, Unmappable::Refuse)
            .map_err(|e| e.to_string())?
            .bytes;
        //    `write_all` is Python's `sendall`: it loops until every byte is handed
        //    to the kernel's send buffer.
        client
            .write_all(&send_data)
            .map_err(|e| format!("send failed: {}", describe_io(&e)))?;
        println!("已回复 replied: {reply}");
    }

    // 7. 关闭套接字 — close the sockets.
    //    Closing the client socket ends the conversation with this client: its
    //    `recv` now returns b''. Closing the listening socket ends the service:
    //    new clients are refused. Rust closes a socket when it is dropped; the
    //    explicit `drop`s show the order.
    drop(client);
    drop(listener);
    println!("已关闭 closed");
    Ok(())
}

/// The client's address as Python prints `str(ip_port)`: `('127.0.0.1', 54321)`.
fn py_tuple(addr: &SocketAddr) -> String {
    format!("('{}', {})", addr.ip().to_canonical(), addr.port())
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
