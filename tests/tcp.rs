//! End-to-end tests of tcp-client and tcp-server: the lessons' scenarios, run as a user would.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use util::*;

fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

fn accept(l: &TcpListener) -> TcpStream {
    l.set_nonblocking(false).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Run tcp-client with these arguments and nothing on stdin.
fn client(args: &[&str]) -> std::process::Output {
    run(cmd("tcp-client", args), b"")
}

/// What a peer does with its one client: read `n` bytes, answer `reply`, then
/// read until the client closes; the `n` bytes read.
fn one_shot(n: usize, reply: &'static [u8]) -> impl FnOnce(TcpStream) -> Vec<u8> + Send + 'static {
    move |s| {
        let got = read_n(&s, n);
        send_all(&s, reply);
        assert!(read_all(&s).is_empty(), "client sent more than expected");
        got
    }
}

/// `tcp-client 127.0.0.1 PORT ARGS…` with `input`, against a peer ([`one_peer`])
/// that `talk`s: the client's run and what `talk` returned.
fn dial<T: Send + 'static>(
    talk: impl FnOnce(TcpStream) -> T + Send + 'static,
    args: &[&str],
    input: &[u8],
) -> (Output, T) {
    let (port, peer) = one_peer(talk);
    let args = [&["127.0.0.1", port.as_str()][..], args].concat();
    let out = run(cmd("tcp-client", &args), input);
    (out, peer.join().unwrap())
}

/// A peer on a free loopback port that takes one connection and hands it to
/// `talk`: the port to give the client, and the thread with `talk`'s result.
fn one_peer<T: Send + 'static>(
    talk: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, thread::JoinHandle<T>) {
    let l = loopback_listener();
    let port = l.local_addr().unwrap().port().to_string();
    (port, thread::spawn(move || talk(accept(&l))))
}

#[test]
fn lesson_02_03_one_client_then_exit() {
    let mut srv = Process::server(
        "tcp-server",
        &["--once", "--reply", "我是服务器, 你好客户端: {peer}"],
    );
    let port = srv.addr().port().to_string();
    let out = client(&[
        "127.0.0.1",
        &port,
        "你好服务端，我是客户端小黑!",
        "--wait",
        "0.5",
    ]);
    succeeded(&out);
    let reply = text(&out.stdout);
    assert!(
        reply.starts_with("我是服务器, 你好客户端: 127.0.0.1:"),
        "{reply:?}"
    );
    assert!(reply.ends_with('\n'));
    let line = srv.out().expect("你好服务端");
    assert!(line.starts_with("[127.0.0.1:") && line.ends_with("] 你好服务端，我是客户端小黑!"));
    assert!(srv.wait().success());
    let log = srv.err().rest_with("served 1 client,");
    assert!(log.contains("connected"), "{log}");
}

#[test]
fn lesson_04_many_concurrent_clients_each_get_replies() {
    let mut srv = Process::server("tcp-server", &["--reply", "ok, 问题正在处理中..."]);
    const CLIENTS: usize = 200;
    // Connect everyone first, so all 200 are being served at the same time.
    let streams: Vec<_> = (0..CLIENTS).map(|_| connect(srv.addr())).collect();
    let reply = "ok, 问题正在处理中...".as_bytes();
    let handles: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            thread::spawn(move || {
                for round in 0..3 {
                    send_all(&s, format!("client {i} round {round}").as_bytes());
                    assert_eq!(read_n(&s, reply.len()), reply);
                }
                s.shutdown(Shutdown::Write).unwrap();
                assert!(read_all(&s).is_empty());
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < CLIENTS * 3 {
        let line = srv.out().next().expect("a message line per message");
        seen.insert(line.split("] ").nth(1).unwrap().to_string());
    }
    assert!(seen.contains("client 199 round 2"));
}

#[test]
fn echo_is_byte_exact_through_duplex_client() {
    let srv = Process::server("tcp-server", &["-q"]);
    let data = noise(3 << 20, 7);
    let out = run(cmd("tcp-client", &[&srv.addr().to_string()]), &data);
    succeeded(&out);
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "echoed bytes differ");
}

#[test]
fn stdin_eof_half_closes_and_reply_still_arrives() {
    let peer = |s| {
        // The client's half-close shows up as end of stream (lesson 05: recv → b'')...
        let got = read_all(&s);
        // ...yet its read side is still open for our answer.
        send_all(&s, b"got it");
        got
    };
    let (out, got) = dial(peer, &[], b"hello\n");
    succeeded(&out);
    assert_eq!(got, b"hello\n");
    assert_eq!(out.stdout, b"got it");
}

#[test]
fn no_shutdown_keeps_write_side_open_until_peer_closes() {
    let peer = |s: TcpStream| {
        assert_eq!(read_n(&s, 3), b"hi\n");
        // With --no-shutdown the client never sends FIN: a short read times out.
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 1];
        let r = (&s).read(&mut b);
        assert!(r.is_err(), "expected a timeout, got {r:?}");
        send_all(&s, b"bye");
    };
    let (out, ()) = dial(peer, &["--no-shutdown"], b"hi\n");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"bye");
}

#[test]
fn gbk_both_ways_with_netassist_style_peer() {
    // A NetAssist-like peer: sends GBK, expects GBK back.
    let mut srv = Process::server(
        "tcp-server",
        &["--encoding", "gbk", "--reply", "我是服务器"],
    );
    let s = connect(srv.addr());
    assert_eq!(
        ask(&s, b"\xc4\xe3\xba\xc3", 10),
        b"\xce\xd2\xca\xc7\xb7\xfe\xce\xf1\xc6\xf7"
    ); // 你好 // 我是服务器
    assert!(srv.out().expect("你好").ends_with("] 你好"));

    // And tcp-client speaking GBK to a GBK peer, printing UTF-8 on our terminal.
    let (out, got) = dial(
        one_shot(4, b"\xce\xd2\xca\xc7\xb7\xfe\xce\xf1\xc6\xf7"),
        &["你好", "-e", "gbk", "--wait", "0.5"],
        b"",
    );
    assert_eq!(got, b"\xc4\xe3\xba\xc3");
    assert_eq!(text(&out.stdout), "我是服务器\n");
}

#[test]
fn hex_shows_raw_reply_bytes() {
    let (out, got) = dial(
        one_shot(3, b"\xce\xd2!"),
        &["48 65 0a", "--send-hex", "--hex", "--wait", "0.5"],
        b"",
    );
    assert_eq!(got, b"He\n");
    assert_eq!(
        text(&out.stdout),
        "00000000  ce d2 21                                          |..!|\n"
    );
}

#[test]
fn invalid_bytes_are_shown_and_warned_once() {
    let mut srv = Process::server("tcp-server", &["--reply", "."]);
    let s = connect(srv.addr());
    assert_eq!(ask(&s, b"ok\xff", 1), b".");
    assert_eq!(
        srv.out().next().unwrap().split("] ").nth(1),
        Some("ok\u{FFFD}")
    );
    let warning = srv.err().expect("warning:");
    assert!(warning.contains("--hex"), "{warning}");
}

/// SIGTERM (systemd, `docker stop`) and SIGHUP (a closed terminal) stop it just as Ctrl-C does.
#[test]
fn ctrl_c_sigterm_or_sighup_stops_server_with_idle_clients_and_prints_summary() {
    for sig in ["INT", "TERM", "HUP"] {
        let mut srv = Process::server("tcp-server", &[]);
        let idle = connect(srv.addr());
        let busy = connect(srv.addr());
        echoes(&busy, b"abc");
        srv.err().expect("connected");
        srv.err().expect("connected");
        let took = srv.stop(sig);
        // Both clients see the server close their connection.
        assert!(read_all(&idle).is_empty(), "SIG{sig}: idle client");
        assert!(read_all(&busy).is_empty(), "SIG{sig}: busy client");
        srv.err()
            .rest_with("served 2 clients, 3 bytes in, 3 bytes out");
        eprintln!("SIG{sig}: shutdown took {took:?}");
    }
}

#[test]
fn slow_client_does_not_hold_up_others() {
    let mut srv = Process::server("tcp-server", &["--framing", "line"]);
    let silent = connect(srv.addr());
    let half = connect(srv.addr());
    send_all(&half, b"no newline yet");
    let good = connect(srv.addr());
    echoes(&good, b"ping\n");
    // A client that leaves mid-line: its partial line is still shown, not lost.
    drop(half);
    srv.out().expect("no newline yet");
    drop(silent);
    echoes(&good, b"again\n");
}

#[test]
fn max_clients_refuses_politely() {
    let mut srv = Process::server("tcp-server", &["--max-clients", "1"]);
    let first = connect(srv.addr());
    echoes(&first, b"x");
    let second = connect(srv.addr());
    let answer = text(&read_all(&second));
    assert!(answer.starts_with("server busy"), "{answer:?}");
    srv.err().expect("refused");
    drop(first);
    srv.err().expect("disconnected");
    let third = connect(srv.addr());
    echoes(&third, b"y");
}

#[test]
fn once_raw_receives_a_file_like_nc_l() {
    let mut srv = Process::server_raw_stdout("tcp-server", &["--once", "--raw"]);
    let mut stdout = srv.child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    let data = noise(2 << 20, 99);
    let s = connect(srv.addr());
    srv.err().expect("connected");
    // --once: the listening socket is closed while the one client is served.
    let second = std::net::TcpStream::connect_timeout(&srv.addr(), TIMEOUT);
    assert_eq!(
        second.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    send_all(&s, &data);
    s.shutdown(Shutdown::Write).unwrap();
    // --raw without a mode flag only receives: nothing comes back.
    assert!(read_all(&s).is_empty());
    assert!(srv.wait().success());
    assert!(reader.join().unwrap() == data, "received file differs");
}

#[test]
fn len_framing_splits_sticky_messages_and_survives_hostile_lengths() {
    let mut srv = Process::server(
        "tcp-server",
        &["--framing", "len", "--reply", "ok", "--max-frame", "1K"],
    );
    let s = connect(srv.addr());
    // Two messages in one write: the sticky-packet case (lesson 13).
    assert_eq!(
        ask(&s, b"\0\0\0\x05hello\0\0\0\x05world", 12),
        b"\0\0\0\x02ok\0\0\0\x02ok"
    );
    assert!(srv.out().next().unwrap().ends_with("] hello"));
    assert!(srv.out().next().unwrap().ends_with("] world"));

    let hostile = connect(srv.addr());
    send_all(&hostile, b"\xff\xff\xff\xff");
    assert!(
        read_all(&hostile).is_empty(),
        "hostile client should be dropped"
    );
    let why = srv.err().expect("exceeds");
    assert!(why.contains("4294967295"), "{why}");

    // The server goes on serving.
    assert_eq!(ask(&s, b"\0\0\0\x01!", 6), b"\0\0\0\x02ok");
}

#[test]
fn client_line_framing_prints_each_frame_on_its_line() {
    let (out, got) = dial(
        one_shot(4, b"one\r\ntwo\n"),
        &["a", "b", "--framing", "line", "--wait", "0.3"],
        b"",
    );
    assert_eq!(got, b"a\nb\n");
    assert_eq!(text(&out.stdout), "one\ntwo\n");
}

#[test]
fn repeat_resends_messages() {
    let args = ["x", "--repeat", "3", "--interval", "10", "--wait", "0"];
    let (out, got) = dial(|s| read_all(&s), &args, b"");
    assert!(out.status.success());
    assert_eq!(got, b"xxx");
}

#[test]
fn crlf_and_transcoding_in_duplex_mode() {
    let args = ["--crlf", "--send-encoding", "gbk"];
    let (out, got) = dial(|s| read_all(&s), &args, "你好\nhi\n".as_bytes());
    succeeded(&out);
    assert_eq!(got, b"\xc4\xe3\xba\xc3\r\nhi\r\n");
}

#[test]
fn idle_timeout_gives_up_on_silent_peer() {
    let (port, peer) = one_peer(move |s| {
        // Stay silent and keep the connection open until the client leaves.
        read_all(&s)
    });
    let mut c = cmd("tcp-client", &["127.0.0.1", &port, "-i", "0.3"]);
    c.stdin(Stdio::null());
    c.stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = Process::new(c).read_lines();
    let status = child.wait();
    let err = child.err().rest().join("\n");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("idle"), "{err}");
    drop(child);
    peer.join().unwrap();
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let out = client(&["127.0.0.1", "80a", "hi"]);
    failed_saying(
        &out,
        2,
        "tcp-client: invalid port \"80a\": expected 0-65535\n",
    );

    let port = loopback_listener().local_addr().unwrap().port().to_string();
    let out = client(&["127.0.0.1", &port, "hi"]);
    failed_saying(
        &out,
        1,
        &format!("tcp-client: cannot connect to 127.0.0.1:{port}: connection refused\n"),
    );

    let out = client(&["127.0.0.1", "1", "--encoding", "klingon"]);
    failed(&out, 2, "unknown encoding \"klingon\"");

    let out = client(&["127.0.0.1:1", "😀", "-e", "gbk", "--strict-encoding"]);
    failed(&out, 2, "'😀' (U+1F600)");

    let out = run(cmd("tcp-server", &["99999"]), b"");
    failed(&out, 2, "invalid port \"99999\"");

    let taken = loopback_listener();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(cmd("tcp-server", &[&port, "--bind", "127.0.0.1"]), b"");
    failed(&out, 1, "address already in use");
}

#[test]
fn stdin_mode_sends_lines_to_the_client() {
    let mut srv = Process::server_with_stdin("tcp-server", &["--stdin", "--once"]);
    let mut stdin = srv.stdin.take().unwrap();
    let s = connect(srv.addr());
    srv.err().expect("connected");
    stdin.write_all("你好\n".as_bytes()).unwrap();
    assert_eq!(read_n(&s, 7), "你好\n".as_bytes());
    send_all(&s, b"from client\n");
    srv.out().expect("from client");
    // stdin ends: the server half-closes, like nc -N.
    drop(stdin);
    assert!(read_all(&s).is_empty());
    drop(s);
    assert!(srv.wait().success());
    srv.err().rest_with("disconnected (12 bytes in, 7 out)");
}

#[test]
fn ipv6_loopback_and_dual_stack() {
    let srv = Process::serving(cmd("tcp-server", &["0"]));
    let port = srv.addr().port().to_string();
    let v4 = client(&["127.0.0.1", &port, "four", "--wait", "0.3"]);
    assert_eq!(text(&v4.stdout), "four\n");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = client(&[&format!("[::1]:{port}"), "six", "--wait", "0.3"]);
        assert_eq!(text(&v6.stdout), "six\n", "{}", text(&v6.stderr));
        let v6 = client(&["-6", "::1", &port, "six", "--wait", "0.3"]);
        assert_eq!(text(&v6.stdout), "six\n", "{}", text(&v6.stderr));
    }
}

#[test]
fn nc_as_client_of_our_server() {
    if !have_peer("nc") {
        return;
    }
    let srv = Process::server("tcp-server", &[]);
    let mut c = peer_cmd("nc");
    c.args(["-N", "127.0.0.1", &srv.addr().port().to_string()]);
    let data = noise(1 << 20, 3);
    let out = run(c, &data);
    succeeded(&out);
    assert!(out.stdout == data, "nc got different bytes back");
}

#[test]
fn nc_as_server_for_our_client() {
    if !have_peer("nc") {
        return;
    }
    let mut nc = peer_cmd("nc");
    nc.args(["-v", "-l", "127.0.0.1", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut nc = Process::new(nc);
    let collector = nc.collect_stdout();
    let mut nc = nc.read_lines();
    let line = nc.err().expect("Listening on");
    let port = line.rsplit(' ').next().unwrap().to_string();
    let mut nc_stdin = nc.stdin.take().unwrap();
    let data = noise(1 << 20, 5);
    let client = thread::spawn({
        let data = data.clone();
        move || run(cmd("tcp-client", &["127.0.0.1", &port]), &data)
    });
    // nc sends this back to us, then (stdin closed) nc -l ends when we are done.
    nc_stdin.write_all(b"reply from nc").unwrap();
    drop(nc_stdin);
    let out = client.join().unwrap();
    succeeded(&out);
    assert_eq!(out.stdout, b"reply from nc");
    assert!(
        collector.join().unwrap() == data,
        "nc received different bytes"
    );
}

#[test]
fn notes_python_client_against_our_gbk_server() {
    let mut srv = Process::server(
        "tcp-server",
        &["--once", "-e", "gbk", "--reply", "我是服务器"],
    );
    let Some(mut py) = course_python("lesson02_client.py") else {
        return;
    };
    py.arg(srv.addr().port().to_string());
    let out = run(py, b"");
    succeeded(&out);
    let printed = text(&out.stdout);
    assert!(
        printed.contains(r"b'\xce\xd2\xca\xc7\xb7\xfe\xce\xf1\xc6\xf7'"),
        "{printed}"
    );
    assert!(
        printed.contains("接收服务端解码后的数据为: 我是服务器"),
        "{printed}"
    );
    assert!(
        srv.out()
            .expect("你好服务端")
            .ends_with("] 你好服务端，我是客户端小黑!")
    );
    assert!(srv.wait().success());
}

#[test]
fn our_client_against_notes_python_threaded_server() {
    let Some(mut py) = python_server("lesson04_server.py", &["gbk"]) else {
        return;
    };
    let addr = py.addr();
    let result = client(&[
        &addr.to_string(),
        "我是客户端1",
        "-e",
        "gbk",
        "--wait",
        "0.5",
    ]);
    succeeded(&result);
    assert_eq!(text(&result.stdout), "ok, 问题正在处理中...\n");
    assert!(
        py.out()
            .expect("我是客户端1")
            .starts_with("我是客户端1 ('127.0.0.1', ")
    );
    py.out().expect("客户端下线了");
}

#[test]
fn half_character_at_end_of_reply_is_shown_not_dropped() {
    // "ok" and the first byte of a GBK character.
    let args = ["hi", "--recv-encoding", "gbk", "--wait", "0.3"];
    let (out, got) = dial(one_shot(2, b"ok\xc4"), &args, b"");
    succeeded(&out);
    // The read's record is `ok`; its last byte waited for the rest of its
    // character, and the end of the stream shows it as U+FFFD, never dropped.
    assert_eq!(text(&out.stdout), "ok\n\u{FFFD}\n");
    assert!(
        text(&out.stderr).contains("not valid GBK"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(got, b"hi");
}

#[test]
fn replies_get_a_line_each_and_no_wait_loses_nothing() {
    let mut srv = Process::server("tcp-server", &["--framing", "len"]);
    let addr = srv.addr().to_string();
    // --wait 0: send and close at once. The server's echoes are still in flight;
    // closing with them unread would reset the connection and lose messages.
    for _ in 0..5 {
        let out = client(&[
            &addr,
            "one",
            "two",
            "three",
            "--framing",
            "len",
            "--wait",
            "0",
        ]);
        succeeded(&out);
        for m in ["one", "two", "three"] {
            assert!(srv.out().next().unwrap().ends_with(&format!("] {m}")));
        }
        let bye = srv.err().expect("disconnected");
        assert!(bye.ends_with("(23 bytes in, 23 out)"), "{bye}");
    }
    let echo = Process::server("tcp-server", &[]);
    let out = client(&[&echo.addr().to_string(), "a", "b", "--wait", "0.3"]);
    assert_eq!(text(&out.stdout), "a\nb\n");
}

#[test]
fn sink_counts_every_byte_and_sends_nothing_back() {
    let mut server = Process::server("tcp-server", &["--sink", "--once"]);
    let mut c = connect(server.addr());
    let data = noise(5 * 1024 * 1024 + 3, 7);
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert!(read_all(&c).is_empty(), "a sink sends nothing");
    assert!(server.wait().success());
    server.err().rest_with(&format!(
        "served 1 client, {} bytes in, 0 bytes out",
        data.len()
    ));
}

/// Read whatever a closed connection still delivers: everything up to its end,
/// or up to a reset (a server that closes with our bytes unread resets).
fn read_until_closed(mut s: &std::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading until the server closes: {e}"),
        }
    }
}

#[test]
fn raw_receive_into_a_full_disk_fails_with_exit_1_not_silent_loss() {
    let Some(full) = dev_full() else { return };
    let mut c = server_cmd("tcp-server", &["--once", "--raw"]);
    c.stdin(Stdio::null()).stdout(full);
    let mut srv = Process::serve(c, false);
    let s = connect(srv.addr());
    // The server stops reading at its first failed write and closes with our
    // bytes unread, so this send may well be reset: that is the point.
    let _ = (&s).write_all(&noise(4 << 20, 12));
    assert!(read_until_closed(&s).is_empty());
    let status = srv.wait();
    let log = srv.err().rest().join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("tcp-server: cannot write to stdout: No space left on device"),
        "{log}"
    );
    assert!(
        log.contains("disconnected: cannot write to stdout"),
        "{log}"
    );
}

#[test]
fn closed_stdout_pipe_stops_the_server_with_one_line_and_exit_0() {
    let mut srv = Process::server_raw_stdout("tcp-server", &[]);
    drop(srv.child.stdout.take());
    let s = connect(srv.addr());
    send_all(&s, b"anyone there?\n");
    // Not shown, so not echoed either: the client is closed.
    assert!(read_until_closed(&s).is_empty());
    let status = srv.wait();
    let log = srv.err().rest();
    assert!(status.success(), "{status:?} {log:?}");
    let said: Vec<_> = log
        .iter()
        .filter(|l| l.contains("stdout was closed"))
        .collect();
    assert_eq!(said.len(), 1, "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("tcp-server:")), "{log:?}");
}

#[test]
fn low_descriptor_limit_lowers_max_clients_and_the_rest_hear_server_busy() {
    // Reading the descriptor limit (sys::raise_fd_limit) is the unix fast
    // path's: the portable build cannot, so it leaves --max-clients as given.
    if cfg!(feature = "portable") {
        eprintln!("note: --features portable reads no descriptor limit; skipping this test");
        return;
    }
    // `ulimit -n` in sh sets the soft and the hard limit: the server cannot raise it.
    let script = format!(
        "ulimit -n 64 && exec '{}' 0 --bind 127.0.0.1",
        bin("tcp-server").display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut srv = Process::serve(c, false);
    // 64 descriptors, 16 kept aside, 2 per client (its socket, Ctrl-C's copy).
    let warning = srv.err().next().unwrap_or_default();
    assert!(
        warning.contains("--max-clients lowered from 1024 to 24"),
        "{warning}"
    );
    let clients: Vec<_> = (0..40).map(|_| connect(srv.addr())).collect();
    let (mut served, mut busy) = (0, 0);
    for (i, c) in clients.iter().enumerate() {
        // A refused client is already closed: this may be reset, and is not read.
        let _ = (&*c).write_all(b"x");
        let got = echo_or_refusal(c);
        if got == b"x" {
            served += 1;
        } else {
            let text = text(&got);
            assert!(text.starts_with("server busy"), "client {i}: {text:?}");
            busy += 1;
        }
    }
    assert_eq!((served, busy), (24, 16));
    srv.stop("INT");
    let log = srv.err().rest();
    let fd_warnings = count(&log, "too many open files");
    assert_eq!(fd_warnings, 0, "{log:?}");
    assert_eq!(count(&log, "refused"), 16);
}

/// What an echo server answers to our `x`: the `x` back if it serves us, or
/// what it told us before closing if it refused us.
fn echo_or_refusal(mut s: &std::net::TcpStream) -> Vec<u8> {
    let mut first = [0u8; 1];
    match s.read(&mut first) {
        Ok(1) if first == *b"x" => b"x".to_vec(),
        Ok(k) => [&first[..k], &read_until_closed(s)].concat(),
        Err(e) => panic!("no answer: {e}"),
    }
}

#[test]
fn idle_clients_are_told_and_closed_after_idle_timeout_then_others_are_served() {
    // A thousand clients need the descriptor limit raised (sys::raise_fd_limit),
    // which only the unix fast path does.
    if cfg!(feature = "portable") {
        eprintln!("note: --features portable raises no descriptor limit; skipping this test");
        return;
    }
    // A thousand sockets need more than the usual soft limit of 1024.
    let limit = socktools::sys::raise_fd_limit().expect("descriptor limit");
    // The server (same hard limit) needs two descriptors per client, and the
    // other tests of this file run alongside with sockets of their own.
    let n = 1100.min(limit.saturating_sub(64) as usize / 2);
    if n < 1100 {
        eprintln!("note: descriptor limit {limit}: {n} idle clients instead of 1100");
    }
    // The default --max-clients (1024): the idle clients take every place, the
    // ones beyond are told the server is busy, and the idle timeout is what
    // makes room again.
    let mut srv = Process::server("tcp-server", &["--idle-timeout", "2"]);
    let first_connected = Instant::now();
    let clients: Vec<_> = (0..n).map(|_| connect(srv.addr())).collect();
    let told = "closing: idle for 2 s (--idle-timeout)\n";
    let (mut idle, mut busy) = (0, Vec::new());
    for (i, c) in clients.iter().enumerate() {
        let answer = text(&read_until_closed(c));
        if i == 0 {
            assert_eq!(answer, told);
            let waited = first_connected.elapsed();
            assert!(waited >= Duration::from_millis(1900), "{waited:?}");
        }
        if answer == told {
            idle += 1;
        } else {
            assert!(
                answer.starts_with("server busy: "),
                "client {i}: {answer:?}"
            );
            busy.push(answer);
        }
    }
    // Exactly --max-clients (1024, or fewer if the descriptors cannot hold
    // them) were served; if there were more clients, all the others were busy.
    let max = 1024.min(limit.saturating_sub(16) as usize / 2);
    assert_eq!(idle, n.min(max));
    if n > max {
        assert_eq!(busy.len(), n - max);
        let said = format!("server busy: {max} clients connected, try again later\n");
        assert!(busy.iter().all(|b| *b == said), "{:?}", busy[0]);
    }
    let fresh = connect(srv.addr());
    echoes(&fresh, b"still there?");
    srv.stop("INT");
    let log = srv.err().rest();
    let closed = count(&log, "disconnected: idle for 2 s (--idle-timeout)");
    assert_eq!(closed, idle);
}

#[test]
fn max_per_client_refuses_a_third_connection_from_one_address() {
    let mut srv = Process::server("tcp-server", &["--max-per-client", "2"]);
    let a = connect(srv.addr());
    let b = connect(srv.addr());
    for s in [&a, &b] {
        (&*s).write_all(b"hi").unwrap();
        assert_eq!(read_n(s, 2), b"hi");
    }
    let third = connect(srv.addr());
    let answer = text(&read_until_closed(&third));
    assert!(
        answer.starts_with("server busy: 2 connections from your address already"),
        "{answer:?}"
    );
    let logged = srv.err().expect("refused");
    assert!(logged.contains("(--max-per-client)"), "{logged}");
    drop(a);
    srv.err().expect("disconnected");
    let again = connect(srv.addr());
    echoes(&again, b"ok");
}

/// Waits until the server's `-v` log shows `bytes` received from `name`: only
/// then does it hold them.
fn wait_received(srv: &mut Process, name: &str, bytes: usize) {
    let mut got = 0;
    while got < bytes {
        let line = srv.err().expect(&format!("{name}: received "));
        got += line
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{line}"));
    }
}

/// A len frame of `len` pseudo-random bytes.
fn len_frame(len: u32, seed: u64) -> Vec<u8> {
    [&len.to_be_bytes()[..], &noise(len as usize, seed)].concat()
}

/// Reads the notice a `--framing len` client gets before it is closed.
fn len_notice(s: &std::net::TcpStream) -> String {
    let told = read_until_closed(s);
    assert!(told.len() >= 4, "{told:?}");
    let (len, body) = told.split_at(4);
    assert_eq!(
        u32::from_be_bytes(len.try_into().unwrap()) as usize,
        body.len()
    );
    text(body)
}

/// `tcp-server --framing len -v` with `--max-buffered max`.
fn len_server(max: &str) -> Process {
    Process::server(
        "tcp-server",
        &["--framing", "len", "--max-buffered", max, "-v"],
    )
}

/// A new client sends a len frame of `size` bytes that would take the
/// server past `--max-buffered max`: it hears why in its own framing (a len
/// frame), is closed, and the log says so.
fn over_the_limit(srv: &mut Process, size: u32, max: usize) {
    let hog = connect(srv.addr());
    let name = hog.local_addr().unwrap().to_string();
    let _ = (&hog).write_all(&len_frame(size, 4));
    let told = len_notice(&hog);
    let why = format!(
        "closing: the server holds too many unfinished messages (--max-buffered {max} bytes)"
    );
    assert!(told.starts_with(&why), "{told}");
    let logged = srv.err().expect(&format!("{name} disconnected"));
    assert!(
        logged.contains(&format!("--max-buffered {max} bytes")),
        "{logged}"
    );
}

#[test]
fn max_buffered_disconnects_the_client_that_would_pass_it_and_serves_the_rest() {
    let mut srv = len_server("64K");
    // Each of the (up to 1024) clients has a few bytes of its own; the shared
    // half, 32 KiB and a little, is what the two frames compete for.
    let a = connect(srv.addr());
    let a_name = a.local_addr().unwrap().to_string();
    let a_wire = len_frame(28_000, 3);
    send_all(&a, &a_wire[..24_004]);
    wait_received(&mut srv, &a_name, 24_004);
    // 24 004 + 16 004 bytes, less two small shares, is over 33 000: this one
    // passes the limit.
    over_the_limit(&mut srv, 16_000, 65536);
    // The others go on: the first client finishes its frame and gets it back.
    send_all(&a, &a_wire[24_004..]);
    assert!(read_n(&a, a_wire.len()) == a_wire, "echo differs");
}

#[test]
fn max_buffered_never_cuts_off_a_client_with_small_messages_while_hogs_fill_it() {
    let mut srv = len_server("4M");
    let small = connect(srv.addr());
    let mut n = 0u64;
    let mut ask = || {
        n += 1;
        let wire = len_frame(10, n);
        send_all(&small, &wire);
        assert_eq!(read_n(&small, wire.len()), wire, "message {n}");
    };
    ask();
    // Two hogs each hold all but the last byte of a 1 MiB frame: with their
    // own shares (a few KiB each) that takes the shared half, 2 MiB, but for
    // a few KiB.
    let mut hogs = Vec::new();
    for seed in 1..=2 {
        let hog = connect(srv.addr());
        let name = hog.local_addr().unwrap().to_string();
        let wire = len_frame(1024 * 1024, seed);
        send_all(&hog, &wire[..wire.len() - 1]);
        wait_received(&mut srv, &name, wire.len() - 1);
        hogs.push((hog, wire));
        ask();
    }
    // A third hog is the one that would overfill it, so it is the one closed.
    over_the_limit(&mut srv, 1024 * 1024, 4_194_304);
    // The pool is still full, and small messages are still answered.
    for _ in 0..20 {
        ask();
    }
    for (hog, wire) in &hogs {
        (&*hog).write_all(&wire[wire.len() - 1..]).unwrap();
        assert!(read_n(hog, wire.len()) == *wire, "echo differs");
    }
    ask();
}

#[test]
fn lesson_02_against_the_notes_gbk_server_that_crashes_says_so_and_exits_1() {
    // 003 §3's server decodes with GBK; "我是客户端" in UTF-8 is not valid GBK,
    // so the server dies on it without a reply.
    let Some(mut py) = python_server("lesson03_gbk_server.py", &[]) else {
        return;
    };
    let addr = py.addr();
    let out = client(&["127.0.0.1", &addr.port().to_string(), "我是客户端"]);
    failed_saying(
        &out,
        1,
        "tcp-client: the server closed the connection without replying\n",
    );
    assert!(out.stdout.is_empty(), "{:?}", text(&out.stdout));
    py.err().expect("UnicodeDecodeError");
    py.wait();
}

#[test]
fn a_server_that_closes_or_resets_without_replying_fails_with_exit_1() {
    // Closes after reading: the client sees end of stream.
    let (out, _) = dial(|s| read_n(&s, 5), &["hello"], b"");
    failed_saying(
        &out,
        1,
        "tcp-client: the server closed the connection without replying\n",
    );

    // Closes with the message unread: its kernel resets the connection.
    let unread = |s: TcpStream| s.peek(&mut [0u8; 1]).unwrap();
    let (out, _) = dial(unread, &["hello", "again"], b"");
    failed_saying(
        &out,
        1,
        "tcp-client: the server closed the connection without replying to message 1 (it reset the connection); 1 of 2 messages not sent\n",
    );
}

#[test]
fn no_reply_within_wait_exits_1_as_udp_echo_send_does() {
    // Read, never answer, and stay until the client closes.
    let (out, got) = dial(|s| read_all(&s), &["hello", "--wait", "0.3"], b"");
    assert_eq!(got, b"hello");
    // One failure, one line.
    failed_saying(
        &out,
        1,
        "tcp-client: no reply to 1 of 1 message within 0.3 s\n",
    );
    // Several: which ones, then how many.
    let (port, peer) = one_peer(|s| read_all(&s));
    let out = client(&["127.0.0.1", &port, "a", "b", "--wait", "0.3"]);
    assert_eq!(peer.join().unwrap(), b"ab");
    failed_saying(
        &out,
        1,
        &format!(
            "warning: no reply to message 1 from 127.0.0.1:{port} within 0.3 s\n\
             warning: no reply to message 2 from 127.0.0.1:{port} within 0.3 s\n\
             tcp-client: no reply to 2 of 2 messages within 0.3 s\n"
        ),
    );
    // --wait 0 asks for no reply: sent is success.
    let echo = Process::server("tcp-server", &["--sink"]);
    let out = client(&[&echo.addr().to_string(), "hello", "--wait", "0"]);
    succeeded(&out);
}

#[test]
fn three_messages_to_an_echo_server_do_not_wait_2_s_each() {
    let echo = Process::server("tcp-server", &[]);
    let port = echo.addr().port().to_string();
    let start = Instant::now();
    let out = client(&["127.0.0.1", &port, "a", "b", "c"]);
    let took = start.elapsed();
    succeeded(&out);
    assert_eq!(text(&out.stdout), "a\nb\nc\n");
    // Each reply ends after a 100 ms quiet gap, not 2 s of silence (that was
    // 6 s); the margin is for a loaded machine.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[test]
fn wait_is_for_the_reply_to_start_and_settle_ends_it() {
    let thinker = |s: TcpStream| {
        read_n(&s, 2);
        // A server that thinks for half a second, then answers in two pieces.
        thread::sleep(Duration::from_millis(500));
        send_all(&s, b"thought ");
        thread::sleep(Duration::from_millis(50));
        send_all(&s, b"about it");
        read_all(&s)
    };
    let (out, _) = dial(thinker, &["hi", "--settle", "1"], b"");
    succeeded(&out);
    // One reply (--settle waited for its second piece), shown as the two
    // reads it came in: one read, one record (lesson 13).
    assert_eq!(text(&out.stdout), "thought \nabout it\n");
}

#[test]
fn lesson_03_server_answers_one_message_then_the_rest_are_not_sent() {
    let Some(mut py) = python_server("lesson03_server.py", &[]) else {
        return;
    };
    let addr = py.addr();
    let result = client(&["127.0.0.1", &addr.port().to_string(), "你好", "再见"]);
    assert!(
        text(&result.stdout).starts_with("我是服务器,你好客户端:('127.0.0.1', "),
        "{}",
        text(&result.stdout)
    );
    failed_saying(
        &result,
        1,
        "tcp-client: the server closed the connection after message 1; 1 of 2 messages not sent\n",
    );
    py.out().expect("接收到客户端消息: 你好");
}

/// `tcp-server PORT --bind 127.0.0.1`'s error line and exit status.
fn bind_refused(port: u16) -> (String, Option<i32>) {
    let out = run(
        cmd("tcp-server", &[&port.to_string(), "--bind", "127.0.0.1"]),
        b"",
    );
    (text(&out.stderr), out.status.code())
}

#[test]
fn after_the_notes_lesson_03_server_tcp_server_explains_time_wait() {
    // The learner's sequence: the notes' server (no SO_REUSEADDR) answers one
    // client and exits; then our server is started on the same port.
    let Some(mut py) = python_server("lesson03_server.py", &[]) else {
        return;
    };
    let addr = py.addr();
    let port = addr.port();
    let result = client(&["127.0.0.1", &port.to_string(), "你好"]);
    succeeded(&result);
    assert!(py.wait().success());
    let (err, code) = bind_refused(port);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "tcp-server: cannot listen on 127.0.0.1:{port}: address already in use (nothing listens on port {port}, but 1 connection of a program that just closed is in TIME-WAIT there; it frees in about "
        )),
        "{err}"
    );
    assert!(
        err.contains("This is what SO_REUSEADDR (lesson 04) is for"),
        "{err}"
    );
}

#[test]
fn a_port_in_time_wait_or_with_a_listener_is_explained_by_tcp_server() {
    use socket2::{Domain, Socket, Type};
    // A listener without SO_REUSEADDR (std's TcpListener::bind would set it)
    // whose side of a connection closes first.
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(1).unwrap();
    let l: TcpListener = l.into();
    let port = l.local_addr().unwrap().port();
    let c = connect(l.local_addr().unwrap());
    drop(accept(&l));
    assert!(read_all(&c).is_empty());
    // While it still listens, the listener is what is named.
    let (err, code) = bind_refused(port);
    assert_eq!(code, Some(1));
    assert!(
        err.ends_with(&format!(
            "is listening on port {port}; stop it or pick another port)\n"
        )),
        "{err}"
    );
    drop(l);
    drop(c);
    let (err, code) = bind_refused(port);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("is in TIME-WAIT there; it frees in about"),
        "{err}"
    );
}
