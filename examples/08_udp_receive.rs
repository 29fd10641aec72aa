//! Lesson 08 — UDP receive once (notes 001 §3.1.2, 004 p170): bind a port,
//! `recvfrom` one datagram, print it the way Python prints `(data, (ip, port))`,
//! decode it, optionally answer the sender with `sendto(reply, addr)`, close.
//!
//! Run (PORT is optional, default 8090 like the notes; 0 lets the OS pick a free
//! port, which the first stderr line `listening on ADDR` shows):
//!
//! ```text
//! cargo run --example 08_udp_receive -- [PORT] [--gbk] [--reply TEXT | --ask] [--lib]
//! cargo run --example 08_udp_receive -- 8090
//! cargo run --example 08_udp_receive -- 8090 --reply 收到
//! cargo run --example 08_udp_receive -- 8888 --ask
//! ```
//!
//! `--gbk` decodes (and replies) in GBK, for the notes' 003 scripts (NetAssist
//! sends GBK but shows UTF-8: `udp-echo serve --recv-encoding gbk` suits it). `--reply TEXT`
//! answers the sender; `--ask` asks you for the answer, as the receiver in notes
//! 004 p170 does with `input('请输入要回复的数据:')` — take your time: `udp-echo
//! send` on a terminal keeps listening for it past its `--wait`. Step by step it does
//! what the Python does, with `std::net::UdpSocket`; with `--lib` it does the same
//! with one library call, `socktools::udp::server::serve` — what `udp-echo serve PORT
//! --count 1 --no-echo` runs.
//!
//! Then, in another terminal, send it a datagram — any of:
//!
//! ```text
//! cargo run --example 07_udp_send -- 127.0.0.1 8090 我爱你             # lesson 07
//! cargo run --bin udp-echo -- send 127.0.0.1 8090 我爱你 --no-wait
//! cargo run --bin udp-echo -- send 127.0.0.1 8090 我爱你    # with --reply or --ask: prints the answer
//! python3 client.py      # the notes' sender (001 §3.1.1) with its IP set to 127.0.0.1
//! nc -u 127.0.0.1 8090   # type a line and press Enter
//! ```

// 0. 导入模块 — import what we need (Python: `from socket import *`).
use std::process::ExitCode;

use socktools::addr::{describe_io, display_addr, parse_port};
use socktools::codec::{self, Encoding, TextDecoder, TextEncoder, Unmappable, parse_label};
use socktools::hex::{self, py_repr};
use socktools::message::Reply;
use socktools::net::{ListenSpec, udp_socket};
use socktools::output::{Io, Log, Output, Verbosity};
use socktools::shutdown::Shutdown;
use socktools::udp;
use socktools::udp::datagram::DatagramReader;
use socktools::udp::server;

const USAGE: &str = "usage: 08_udp_receive [PORT] [--gbk] [--reply TEXT | --ask] [--lib]   (default port 8090; 0: any free port)";

/// What the command line asked for.
struct Args {
    port: u16,
    encoding: &'static Encoding,
    reply: Option<String>,
    /// Type the reply after the datagram has come (004 p170's `input()`).
    ask: bool,
    lib: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("08_udp_receive: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if args.lib {
        with_library(&args)
    } else {
        by_hand(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("08_udp_receive: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The notes' script, step by step.
fn by_hand(args: &Args) -> Result<(), String> {
    // 1. 创建一个服务端的socket — `socket(AF_INET, SOCK_DGRAM)`,
    // 2. 定义服务器端的IP地址和端口号 — `host_port = ('', 8090)`: '' means every
    //    interface, so a sender on the LAN reaches us as well as one on 127.0.0.1,
    // 3. 服务器端的Socket 绑定地址和端口 — `bind(host_port)`. "只有绑定了地址和端口，
    //    才能称之为服务器的Socket": a sender must know the port to send to.
    //    `socktools::net::udp_socket` does the three steps (and listens on IPv6
    //    too, when the machine has it: a dual-stack socket).
    let socket_server = udp_socket(ListenSpec::any(args.port)).map_err(|e| e.to_string())?;
    let local = socket_server.local_addr().map_err(|e| describe_io(&e))?;
    eprintln!("listening on {}", display_addr(&local));

    // 4. 接受客户端发送过来的数据 — `recvfrom(1024)`. The notes ask for at most
    //    1024 bytes, and a longer datagram is silently cut to 1024: the rest is
    //    gone. `DatagramReader` reads into a 64 KiB buffer — more than any UDP
    //    payload — so a datagram always arrives whole (and a cut one would be
    //    reported). This waits until a datagram comes; Ctrl-C stops it.
    let mut reader = DatagramReader::new();
    let data = reader
        .recv_from(&socket_server)
        .map_err(|e| format!("recvfrom failed: {}", describe_io(&e)))?;

    // 5. 处理二进制的数据报 — the result is a pair: the bytes, and the sender's
    //    address `(ip, port)`. This is what `print(data)` shows in the notes:
    //    (b'\xe6\x88\x91\xe7\x88\xb1\xe4\xbd\xa0', ('192.168.1.15', 52236))
    let ip = data.from.ip().to_canonical();
    println!(
        "({}, ('{ip}', {}))",
        py_repr(data.payload),
        data.from.port()
    );
    print!("{}", hex::dump(data.payload));
    //    `data[0].decode('utf-8')`: bytes → text. Each datagram is decoded on its
    //    own: it is a whole message, nothing of it waits in another datagram.
    let mut decoder = TextDecoder::new(args.encoding);
    let data_text = decoder.decode(data.payload, true);
    println!("{data_text}");
    if decoder.had_errors() {
        println!(
            "(some bytes are not valid {}, shown as \u{fffd}: another encoding? try {})",
            codec::display_name(args.encoding),
            if codec::is_utf8(args.encoding) {
                "--gbk"
            } else {
                "without --gbk"
            }
        );
    }

    //    Optional (notes 004 p170): answer the sender, `sendto(reply, addr)` — to
    //    the address recvfrom gave us; there is no connection to answer on. The
    //    notes' receiver is a person: `data=input('请输入要回复的数据:')` (--ask).
    let reply = match &args.reply {
        Some(text) => Some(text.clone()),
        None if args.ask => Some(ask_reply()?),
        None => None,
    };
    if let Some(reply) = &reply {
        let bytes = TextEncoder::new(args.encoding)
            .encode(reply, Unmappable::Substitute)
            .map_err(|e| e.to_string())?
            .bytes;
        let n = socket_server
            .send_to(&bytes, data.from)
            .map_err(|e| format!("sendto failed: {}", describe_io(&e)))?;
        println!("回复 — replied {n} bytes to {}", display_addr(&data.from));
    }

    // 6. 关闭套接字，释放资源 — close the socket (when it goes out of scope).
    drop(socket_server);
    Ok(())
}

/// Python's `input('请输入要回复的数据:')`: the prompt, then one line without its ending.
fn ask_reply() -> Result<String, String> {
    use std::io::{BufRead, Write};
    print!("请输入要回复的数据:");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err("no input (Python's input() would raise EOFError)".into()),
        Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
        Err(e) => Err(format!("reading stdin: {}", describe_io(&e))),
    }
}

/// The same with the library: what `udp-echo serve PORT --count 1 --no-echo` does.
fn with_library(args: &Args) -> Result<(), String> {
    if args.ask {
        return Err("--ask is step by step only (udp-echo serve answers by itself)".into());
    }
    let socket = udp_socket(ListenSpec::any(args.port)).map_err(|e| e.to_string())?;
    let mut cfg = server::Config::default();
    cfg.reply = match &args.reply {
        Some(text) => Reply::Text(text.clone()),
        None => Reply::Nothing,
    };
    // One datagram, like the notes' single recvfrom.
    cfg.count = Some(1);
    cfg.show = socktools::message::Show::Text(args.encoding);
    cfg.recv_encoding = args.encoding;
    cfg.send.encoding = args.encoding;
    // `serve` prints `listening on ADDR`, then `[ADDR] text` for the datagram, and a
    // summary; Ctrl-C (with `install_ctrlc`) would stop it before one arrives.
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc().map_err(|e| e.to_string())?;
    let io = Io::new(Output::stdout(), Log::stderr(Verbosity::Normal));
    server::serve(socket, &cfg, io, &shutdown).map_err(|e| e.to_string())?;
    Ok(())
}

/// `[PORT] [--gbk] [--reply TEXT] [--lib]`; `Ok(None)` for `--help`.
fn parse_args(argv: Vec<String>) -> Result<Option<Args>, String> {
    let mut encoding = parse_label("utf-8").map_err(|e| e.to_string())?;
    let mut port = None;
    let mut reply = None;
    let mut ask = false;
    let mut lib = false;
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--gbk" => encoding = parse_label("gbk").map_err(|e| e.to_string())?,
            "--lib" => lib = true,
            "--reply" => reply = Some(it.next().ok_or("--reply needs a TEXT")?),
            "--ask" => ask = true,
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
    if ask && reply.is_some() {
        return Err("--reply and --ask both answer: give one".into());
    }
    Ok(Some(Args {
        port: port.unwrap_or(udp::DEFAULT_PORT),
        encoding,
        reply,
        ask,
        lib,
    }))
}
