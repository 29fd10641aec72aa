//! Lesson 13 — sticky packets 黏包 (notes 001 §4): TCP carries a stream of bytes,
//! not messages. "数据和数据之间没有明确的分界线": two `send` calls can come out of
//! one `recv`, and the receiver cannot tell where the first message ended.
//!
//! Self-contained: the example starts its own server thread on 127.0.0.1 (a free
//! port) and plays the client itself, twice:
//!
//! * Part 1, raw (what the notes' Python does): the client sends two messages
//!   with two `write_all` calls; the server's single `recv(1024)` returns both,
//!   stuck together.
//! * Part 2, the fix: each message gets a 4-byte big-endian length prefix
//!   (`--framing len` in tcp-client/tcp-server), and `socktools::framing` cuts the
//!   stream back into the two messages, even though they again arrived in one read.
//!
//! Each part ends with what `tcp-server` prints for it (`socktools::message::Incoming`):
//! one record per read in part 1 (the notes' lines `one\n`, `two\n`, `three\n` sent
//! the same way show as one record whose further lines are marked `│`, and a last
//! line `└ 14 bytes in one read`), one record per message in part 2.
//!
//! To make part 1 repeatable, the server reads only after the client has sent
//! both messages and both have reached the server's receive buffer. In real
//! programs nobody waits like this, so sometimes messages stick and sometimes they
//! do not — which is what makes the bug so nasty.
//!
//! Run (no arguments):
//!
//! ```text
//! cargo run --example 13_sticky_packets
//! ```
//!
//! Nothing to run in another terminal. To see the same with the tools:
//! `cargo run --bin tcp-server -- 8080 --framing len` and
//! `cargo run --bin tcp-client -- 127.0.0.1 8080 你好服务端 我是客户端小黑! --framing len`.

// 0. 导入模块 — import what we need.
use socktools::hex::py_repr;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use socktools::addr::{Family, describe_io};
use socktools::framing::{DEFAULT_MAX_FRAME, FrameReader, Framing, encode_frame};
use socktools::hex;
use socktools::message::{Incoming, Show};
use socktools::net::{ListenSpec, tcp_listener};

/// The two messages the client sends, one `write_all` each.
const MESSAGES: [&str; 2] = ["你好服务端", "我是客户端小黑!"];

/// Upper bound for every wait: `accept`ed socket reads, the client's "sent" signal.
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            println!("usage: 13_sticky_packets   (no arguments)");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("13_sticky_packets: unexpected argument {other:?} (it takes none)");
            return ExitCode::from(2);
        }
    }
    for framing in [Framing::Raw, Framing::Len] {
        if let Err(msg) = demo(framing) {
            eprintln!("13_sticky_packets: {msg}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// One round: a server thread and a client (this thread) that sends [`MESSAGES`].
fn demo(framing: Framing) -> Result<(), String> {
    match framing {
        Framing::Len => println!(
            "\n===== Part 2: the fix, a 4-byte length prefix before every message (--framing len) ====="
        ),
        _ => println!("===== Part 1: raw bytes, as in the notes — two sends, one recv ====="),
    }

    // 服务端 1. 创建服务端套接字对象, 2. 绑定端口号, 3. 设置监听 — create, bind,
    //    listen. On 127.0.0.1 only (nobody else needs to reach this demo) and port
    //    0: the OS picks a free port, so the example never collides with a server
    //    you are running. We create it here, before the client starts, so the
    //    client cannot try to connect before anyone listens.
    let listener = tcp_listener(ListenSpec {
        bind: Some(Ipv4Addr::LOCALHOST.into()),
        port: 0,
        family: Family::V4,
    })
    .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("listening on {addr}");

    // The client tells the server "I have sent everything, N bytes" through this
    // channel. Only for the demo: it makes sure both messages are on their way
    // before the server's first recv.
    let (sent_tx, sent_rx) = mpsc::channel::<usize>();
    let server = thread::Builder::new()
        .name("server".into())
        .spawn(move || match framing {
            Framing::Len => server_len(&listener, &sent_rx),
            _ => server_raw(&listener, &sent_rx),
        })
        .map_err(|e| format!("cannot start the server thread: {e}"))?;

    // 客户端 1. 创建客户端套接字对象, 2. 和服务端套接字建立连接 — create the client
    //    socket and connect (one call in Rust).
    let client = (|| -> Result<(), String> {
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .map_err(|e| format!("connect: {}", describe_io(&e)))?;
        //    TCP_NODELAY: hand each write to the network at once, as its own
        //    segment, instead of letting Nagle's algorithm hold the second one back
        //    and merge them. So whatever sticks together below was sent as two
        //    separate packets: the *receiver* merges them.
        stream.set_nodelay(true).map_err(|e| e.to_string())?;

        // 客户端 3. 发送数据 — send the two messages, one `write_all` (Python's
        //    `sendall`) each.
        let mut total = 0;
        for (i, message) in MESSAGES.iter().enumerate() {
            // Raw: the bytes as they are. Len: 4-byte length, then the bytes.
            let wire = encode_frame(framing, message.as_bytes()).map_err(|e| e.to_string())?;
            println!(
                "客户端 send #{} ({} bytes): {}  = {message:?}",
                i + 1,
                wire.len(),
                py_repr(&wire)
            );
            stream
                .write_all(&wire)
                .map_err(|e| format!("send: {}", describe_io(&e)))?;
            total += wire.len();
        }
        // If the server thread already gave up, it will report why when joined.
        let _ = sent_tx.send(total);

        // 客户端 5. 关闭客户端套接字 — close. Bytes already sent still arrive; after
        //    them the server's recv returns b''.
        drop(stream);
        Ok(())
    })();

    // A client failure first: the server thread may be stuck in `accept` then,
    // and returning ends it with the process.
    client?;
    // Wait for the server thread and pass on its result.
    server
        .join()
        .map_err(|_| "the server thread panicked".to_string())?
}

/// Part 1, the server as in the notes: one `recv(1024)` is taken as one message.
fn server_raw(listener: &TcpListener, sent: &mpsc::Receiver<usize>) -> Result<(), String> {
    let mut conn = accept_when_sent(listener, sent)?;

    // 服务端 5. 接收数据 — `recv(1024)`: "give me whatever has arrived, up to
    //    1024 bytes". It knows nothing of the client's two `send` calls.
    let mut buf = [0u8; 1024];
    let n = read(&mut conn, &mut buf)?;
    let got = &buf[..n];
    println!("服务端 recv(1024) #1 -> {n} bytes: {}", py_repr(got));
    print!("{}", hex::dump(got));
    println!(
        "服务端 decoded as ONE message: {:?}",
        String::from_utf8_lossy(got)
    );

    //    The next recv finds nothing more: the client has closed, so it returns b''.
    let n2 = read(&mut conn, &mut [0u8; 1024])?;
    println!("服务端 recv(1024) #2 -> {n2} bytes (b'': the client closed)");
    let joined: String = MESSAGES.concat();
    if got == joined.as_bytes() {
        println!(
            "=> 黏包: {} sends came out of 1 recv; nothing tells where {:?} ends and {:?} begins.",
            MESSAGES.len(),
            MESSAGES[0],
            MESSAGES[1]
        );
    } else {
        println!("=> (this time the bytes were split differently; run it again)");
    }

    //    What `tcp-server` shows: one record per read, whatever the read holds. Lines
    //    sent the same way (`send(b'one\n')`, `send(b'two\n')`, `send(b'three\n')`)
    //    and read together are one record too: the lines after the first are marked
    //    under it, and its size comes last.
    let peer = conn.peer_addr().map_err(|e| e.to_string())?;
    let mut display = Incoming::new(Show::Text(encoding_rs::UTF_8), Some(format!("[{peer}] ")));
    let mut shown = Vec::new();
    display.render(got, false, &mut shown);
    display.render(b"one\ntwo\nthree\n", false, &mut shown);
    println!("tcp-server shows this read, and then a read of b'one\\ntwo\\nthree\\n', as:");
    print!("{}", String::from_utf8_lossy(&shown));

    // 服务端 7. 关闭套接字 — the sockets close when `conn` and the listener are
    //    dropped, at the end of this function and of `demo`.
    Ok(())
}

/// Part 2: the same bytes-on-arrival situation, but the messages carry their
/// length, and `FrameReader` uses it to cut the stream.
fn server_len(listener: &TcpListener, sent: &mpsc::Receiver<usize>) -> Result<(), String> {
    let conn = accept_when_sent(listener, sent)?;

    // 服务端 5. 接收数据 — through a `FrameReader`: it reads whatever has arrived
    //    (like recv), keeps the bytes, and hands out one complete message at a time:
    //    read 4 bytes of length N, then wait for exactly N more. Leftover bytes stay
    //    buffered for the next message. `LoggedReads` prints each socket read, so
    //    you can see one read bringing both messages.
    let peer = conn.peer_addr().map_err(|e| e.to_string())?;
    let mut frames = FrameReader::new(LoggedReads(conn), Framing::Len, DEFAULT_MAX_FRAME);
    // What `tcp-server --framing len` prints: one record per message.
    let mut display = Incoming::new(Show::Text(encoding_rs::UTF_8), Some(format!("[{peer}] ")));
    let mut shown = Vec::new();
    let mut count = 0;
    loop {
        let frame = match frames.read_frame() {
            Ok(Some(frame)) => frame,
            // `None`: the client closed the connection between two messages.
            Ok(None) => break,
            Err(e) => return Err(format!("server: {e}")),
        };
        count += 1;
        let (header, payload) = frame.wire().split_at(4.min(frame.wire().len()));
        println!(
            "服务端 message #{count}: length prefix {} = {} bytes, payload {} = {:?}",
            py_repr(header),
            payload.len(),
            py_repr(payload),
            String::from_utf8_lossy(frame.payload())
        );
        display.render(frame.payload(), true, &mut shown);
    }
    println!("服务端 read_frame -> None: the client closed after a complete message");
    if count == MESSAGES.len() {
        println!(
            "=> fixed: {count} sends, {count} messages, even though they arrived in one read."
        );
    }
    println!("tcp-server --framing len shows them as:");
    print!("{}", String::from_utf8_lossy(&shown));
    // 服务端 7. 关闭套接字 — dropped at the end of this function and of `demo`.
    Ok(())
}

/// 服务端 4. 等待接受客户端的连接请求 — accept the client, then (demo only) wait
/// until it has sent everything and all of it sits in our receive buffer.
fn accept_when_sent(
    listener: &TcpListener,
    sent: &mpsc::Receiver<usize>,
) -> Result<TcpStream, String> {
    let (conn, peer) = listener
        .accept()
        .map_err(|e| format!("accept: {}", describe_io(&e)))?;
    //    Every read of this socket gets a timeout (Python's settimeout), so a bug
    //    cannot hang the example.
    conn.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let total = sent
        .recv_timeout(TIMEOUT)
        .map_err(|_| "the client never finished sending".to_string())?;
    let buffered = wait_until_buffered(&conn, total).map_err(|e| describe_io(&e))?;
    println!("服务端 accepted {peer}; its receive buffer now holds {buffered} of {total} bytes");
    Ok(conn)
}

/// Wait until `want` bytes have arrived, without taking them: `peek` (Python's
/// `recv(n, MSG_PEEK)`) looks into the kernel's receive buffer and leaves the
/// bytes there for the real read.
fn wait_until_buffered(conn: &TcpStream, want: usize) -> io::Result<usize> {
    let deadline = Instant::now() + TIMEOUT;
    let mut scratch = vec![0u8; want.max(1)];
    loop {
        let n = conn.peek(&mut scratch)?;
        // 0: the client closed and nothing (more) is coming.
        if n >= want || n == 0 || Instant::now() >= deadline {
            return Ok(n);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// One `read` with the timeout turned into a readable error.
fn read(conn: &mut TcpStream, buf: &mut [u8]) -> Result<usize, String> {
    conn.read(buf)
        .map_err(|e| format!("server recv: {}", describe_io(&e)))
}

/// A reader that prints the size of every `read` on the socket underneath.
struct LoggedReads(TcpStream);

impl Read for LoggedReads {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        println!("服务端   (socket read -> {n} bytes)");
        Ok(n)
    }
}
