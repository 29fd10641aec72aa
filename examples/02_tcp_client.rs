//! Lesson 02 — TCP client (notes 000 §3.7, 003 §2): connect, send one message,
//! `recv(1024)`, print the raw bytes and the decoded text, close.
//!
//! The message is the one from notes 003: "你好服务端，我是客户端小黑!". With `--gbk`
//! it is sent in GBK, as NetAssist on a Chinese Windows would, and the printed bytes
//! are exactly the notes' `b'\xc4\xe3\xba\xc3...'`; without it, in UTF-8. The reply
//! is decoded with the same encoding.
//!
//! Run (HOST and PORT are optional, default 127.0.0.1 8080; `HOST:PORT` works too):
//!
//! ```text
//! cargo run --example 02_tcp_client -- [HOST] [PORT] [--gbk]
//! cargo run --example 02_tcp_client -- 127.0.0.1 8080 --gbk
//! ```
//!
//! First, in another terminal, start a server for it to talk to — any of:
//!
//! ```text
//! cargo run --bin tcp-server -- 8080 --reply 我是服务器
//! cargo run --bin tcp-server -- 8080 --encoding gbk --reply 我是服务器    # with --gbk
//! cargo run --example 03_tcp_server -- 8080                               # lesson 03
//! python3 server.py      # the notes' server (003 §3), which speaks GBK: use --gbk
//! nc -l 8080             # type a reply into nc and press Enter
//! ```

// 0. 导入模块 — import what we need. `std::net` is Python's `socket`; socktools adds
//    the pieces a learner would otherwise write by hand.
use socktools::hex::py_repr;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use socktools::addr::{self, AddrError, Family, Target};
use socktools::codec::{self, Encoding, TextDecoder, TextEncoder, Unmappable, parse_label};
use socktools::hex;

/// The notes' message (003 §2).
const MESSAGE: &str = "你好服务端，我是客户端小黑!";

/// How long `connect` and `recv` may take. Python's `recv(1024)` waits forever if
/// the server never answers; a learner's program should rather say what happened.
const TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: 02_tcp_client [HOST] [PORT] [--gbk]   (default 127.0.0.1 8080)";

/// What the command line asked for.
struct Args {
    target: Target,
    encoding: &'static Encoding,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            // Bad input is the user's mistake, not a crash: one line, exit code 2.
            eprintln!("02_tcp_client: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("02_tcp_client: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // 1. 创建客户端套接字对象 — create the client socket, and
    // 2. 和服务端套接字建立连接 — connect it to the server.
    //    Python does these in two calls (`socket.socket()`, then `connect((host, port))`);
    //    Rust's `TcpStream::connect` does both at once, so a `TcpStream` is always a
    //    connected socket. `addr::connect` also resolves host names and, like Python's
    //    `socket.create_connection`, tries each address (IPv6 and IPv4 for
    //    `localhost`) with a timeout. The client does not bind: the OS picks a free
    //    port for it (notes 000 §3.9, point 2).
    let mut stream =
        addr::connect(&args.target, Family::Any, Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let local = stream.local_addr().map_err(|e| e.to_string())?;
    let peer = stream.peer_addr().map_err(|e| e.to_string())?;
    println!("已连接 connected: {local} -> {peer}");

    // 3. 发送数据 — send the data.
    //    A socket carries bytes, never text: `send_data = "...".encode("gbk")`. The
    //    encoder refuses characters the encoding lacks (GBK has no emoji) instead of
    //    sending HTML like `&#128512;`; our message is all GBK, so this cannot fail.
    let send_data = TextEncoder::new(args.encoding)
        .encode(MESSAGE, Unmappable::Refuse)
        .map_err(|e| e.to_string())?
        .bytes;
    println!(
        "将要发送已编码成{}的数据 ({} bytes): {}",
        codec::display_name(args.encoding),
        send_data.len(),
        py_repr(&send_data)
    );
    print!("{}", hex::dump(&send_data));
    //    `write_all` is Python's `sendall`: `send` may take only part of the bytes when
    //    the kernel's send buffer is full, `write_all` loops until all are handed over.
    stream.write_all(&send_data).map_err(|e| e.to_string())?;

    // 4. 接收数据 — receive data, at most 1024 bytes (`recv(1024)`).
    //    `set_read_timeout` is Python's `settimeout` (lesson 14): without it a server
    //    that never answers would leave us blocked here forever.
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut recv_buf = [0u8; 1024];
    let n = match stream.read(&mut recv_buf) {
        Ok(n) => n,
        // A timeout shows up as WouldBlock on Unix and TimedOut on Windows.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(format!(
                "no reply within {} s (the server got our message but did not answer)",
                TIMEOUT.as_secs()
            ));
        }
        Err(e) => return Err(format!("recv failed: {}", addr::describe_io(&e))),
    };
    let recv_data = &recv_buf[..n];
    if n == 0 {
        // recv returning b'' means the server closed the connection (000 §3.9, point 8).
        println!("服务端返回的数据: b'' (the server closed the connection without replying)");
    } else {
        //    What came back is bytes too, exactly as the server sent them.
        println!("服务端返回的数据 ({n} bytes): {}", py_repr(recv_data));
        print!("{}", hex::dump(recv_data));
        //    对数据进行解码 — decode the bytes into text. `last = true`: we read only
        //    once, so a character cut off at the end of the read will never be finished.
        let mut decoder = TextDecoder::new(args.encoding);
        let text = decoder.decode(recv_data, true);
        println!("接收服务端解码后的数据为: {text}");
        if decoder.had_errors() {
            // Invalid bytes became U+FFFD (�): most likely the server speaks another
            // encoding (lesson 06).
            println!(
                "(some bytes are not valid {}, shown as \u{fffd}: try {})",
                codec::display_name(args.encoding),
                if codec::is_utf8(args.encoding) {
                    "--gbk"
                } else {
                    "without --gbk"
                }
            );
        }
    }

    // 5. 关闭客户端套接字 — close the client socket.
    //    Rust closes a socket when its owner goes out of scope; `drop` just makes
    //    that moment visible. The server's `recv` now returns b''.
    drop(stream);
    println!("已关闭 closed");
    Ok(())
}

/// `[HOST] [PORT] [--gbk]`; `Ok(None)` for `--help`.
fn parse_args(argv: Vec<String>) -> Result<Option<Args>, String> {
    let mut encoding = parse_label("utf-8").map_err(|e| e.to_string())?;
    let mut words = Vec::new();
    for arg in argv {
        match arg.as_str() {
            "--gbk" => encoding = parse_label("gbk").map_err(|e| e.to_string())?,
            "-h" | "--help" => return Ok(None),
            // "-1" is a bad port, not an option: let the port check say so.
            s if s.starts_with('-') && s.parse::<i64>().is_err() => {
                return Err(format!("unknown option {s:?}"));
            }
            _ => words.push(arg),
        }
    }
    // Lesson 01: the library accepts `127.0.0.1 8080`, `127.0.0.1:8080`,
    // `[::1]:8080`, `::1 8080` and host names, and checks the port is 0-65535.
    let target = match words.as_slice() {
        [] => Target {
            host: "127.0.0.1".into(),
            port: 8080,
        },
        [one] => match addr::parse_target(one) {
            Ok(target) => target,
            // Only a host: use the notes' port.
            Err(AddrError::MissingPort(_)) => {
                addr::parse_target_args(&[one.clone(), "8080".into()])
                    .map_err(|e| e.to_string())?
                    .0
            }
            Err(e) => return Err(e.to_string()),
        },
        _ => {
            let (target, rest) = addr::parse_target_args(&words).map_err(|e| e.to_string())?;
            if let Some(extra) = rest.first() {
                return Err(format!("unexpected argument {extra:?}"));
            }
            target
        }
    };
    Ok(Some(Args { target, encoding }))
}
