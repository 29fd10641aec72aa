//! End-to-end tests of what a learner sees (lessons 06 and 13): one read is one record, `--timestamps`, the echo rule for two encodings, the invalid-bytes hint, code page labels.

mod util;

use std::net::TcpListener;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use util::*;

/// `NAME 0 --bind 127.0.0.1 ARGS…` (`udp-echo serve 0 …` for udp-echo), in
/// China's time zone, so that `--timestamps` can be checked.
fn server(name: &str, args: &[&str]) -> Process {
    let tool = if name == "udp-echo" {
        "udp-echo serve"
    } else {
        name
    };
    let mut c = server_cmd(tool, args);
    c.env("TZ", "CST-8");
    Process::serving(c)
}

/// What a record's continuation and size lines start with under `head`.
fn indent(head: &str) -> String {
    " ".repeat(head.chars().count() - 2)
}

/// The rest of a record whose first line began with `head`: its other
/// lines `more`, then its size line `└ size`.
fn rest_of_record(srv: &mut Process, head: &str, more: &[&str], size: &str) {
    let pad = indent(head);
    for line in more {
        let want = format!("{pad}│ {line}");
        assert_eq!(srv.out().next().as_deref(), Some(want.trim_end()));
    }
    assert_eq!(srv.out().next(), Some(format!("{pad}└ {size}")));
}

/// Seconds since midnight in China (UTC+8) now.
fn china_seconds_now() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (unix + 8 * 3600).rem_euclid(86_400)
}

/// `HH:MM:SS.mmm ` at the start of `line`: the seconds since midnight, and the rest.
fn timestamp(line: &str) -> (i64, &str) {
    let (stamp, rest) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
    let bytes = stamp.as_bytes();
    assert!(
        bytes.len() == 12
            && bytes[2] == b':'
            && bytes[5] == b':'
            && bytes[8] == b'.'
            && stamp.chars().filter(char::is_ascii_digit).count() == 9,
        "not HH:MM:SS.mmm: {line:?}"
    );
    let num = |r: std::ops::Range<usize>| stamp[r].parse::<i64>().unwrap();
    (num(0..2) * 3600 + num(3..5) * 60 + num(6..8), rest)
}

/// `stamp` (seconds since midnight) is within a few seconds of `before`..`after`.
fn assert_about(stamp: i64, before: i64, after: i64) {
    let near = |t: i64| {
        (stamp - t)
            .rem_euclid(86_400)
            .min((t - stamp).rem_euclid(86_400))
            <= 2
    };
    assert!(
        near(before) || near(after) || (before <= stamp && stamp <= after),
        "{stamp} is not between {before} and {after}"
    );
}

#[test]
fn lesson_13_three_sends_in_one_read_are_one_record_of_14_bytes() {
    let mut srv = server("tcp-server", &["-v"]);
    let s = connect(srv.addr());
    // What the notes' send(b'one\n'); send(b'two\n'); send(b'three\n') does when
    // the three arrive together; one write makes that certain.
    echoes(&s, b"one\ntwo\nthree\n");
    let me = s.local_addr().unwrap();
    let head = format!("[{me}] ");
    srv.err().expect(&format!("{me}: received 14 bytes"));
    assert_eq!(srv.out().next().unwrap(), format!("{head}one"));
    rest_of_record(&mut srv, &head, &["two", "three"], "14 bytes in one read");
    // A read of one line is that line alone.
    echoes(&s, b"four\n");
    assert_eq!(srv.out().next().unwrap(), format!("{head}four"));
}

#[test]
fn lesson_13_with_framing_line_the_same_bytes_are_three_records() {
    let mut srv = server("tcp-server", &["--framing", "line"]);
    let s = connect(srv.addr());
    echoes(&s, b"one\ntwo\nthree\n");
    let me = s.local_addr().unwrap();
    for m in ["one", "two", "three"] {
        assert_eq!(srv.out().next().unwrap(), format!("[{me}] {m}"));
    }
}

#[test]
fn timestamps_put_the_local_time_before_each_record() {
    let mut srv = server("tcp-server", &["--timestamps"]);
    let s = connect(srv.addr());
    let me = s.local_addr().unwrap();
    let before = china_seconds_now();
    ask(&s, b"one\ntwo\n", 8);
    ask(&s, b"three\n", 6);
    let after = china_seconds_now();
    let first = srv.out().next().unwrap();
    let (t, rest) = timestamp(&first);
    assert_about(t, before, after);
    assert_eq!(rest, format!("[{me}] one"));
    rest_of_record(
        &mut srv,
        &format!("12:34:56.789 [{me}] "),
        &["two"],
        "8 bytes in one read",
    );
    let line = srv.out().next().unwrap();
    let (t, rest) = timestamp(&line);
    assert_about(t, before, after);
    assert_eq!(rest, format!("[{me}] three"));
}

#[test]
fn timestamps_on_udp_echo_serve_and_send() {
    let mut srv = server("udp-echo", &["--timestamps"]);
    let s = udp_socket();
    let before = china_seconds_now();
    assert_eq!(ask_udp(&s, srv.addr(), b"a\nb").len(), 3);
    let me = s.local_addr().unwrap();
    let line = srv.out().next().unwrap();
    let (t, rest) = timestamp(&line);
    assert_about(t, before, china_seconds_now());
    assert_eq!(rest, format!("[{me}] a"));
    // One datagram, one record.
    rest_of_record(
        &mut srv,
        &format!("12:34:56.789 [{me}] "),
        &["b"],
        "3 bytes in one datagram",
    );

    // The client's reply, with its time.
    let mut c = cmd(
        "udp-echo",
        &["send", &srv.addr().to_string(), "hi", "--timestamps"],
    );
    c.env("TZ", "CST-8");
    let before = china_seconds_now();
    let out = run(c, b"");
    succeeded(&out);
    let printed = text(&out.stdout);
    let (t, rest) = timestamp(printed.trim_end());
    assert_about(t, before, china_seconds_now());
    assert_eq!(rest, "hi");
}

#[test]
fn tcp_client_shows_each_read_of_a_reply_as_a_record_and_pipes_the_stream() {
    // A peer that answers with two lines in one write, then closes.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let peer = || {
        let l = l.try_clone().unwrap();
        thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            read_n(&s, 2);
            send_all(&s, b"one\ntwo\n");
        })
    };
    // Duplex mode (nc's job): the bytes as they came, for a pipe or a file.
    let p = peer();
    let out = run(cmd("tcp-client", &["127.0.0.1", &port]), b"hi");
    p.join().unwrap();
    succeeded(&out);
    assert_eq!(out.stdout, b"one\ntwo\n");
    // A MESSAGE's reply is for reading: one read, one record (lesson 13).
    let p = peer();
    let out = run(
        cmd("tcp-client", &["127.0.0.1", &port, "hi", "--wait", "5"]),
        b"",
    );
    p.join().unwrap();
    succeeded(&out);
    assert_eq!(text(&out.stdout), "one\n│ two\n└ 8 bytes in one read\n");
    // With --timestamps: the record's time in front.
    let p = peer();
    let mut c = cmd(
        "tcp-client",
        &["127.0.0.1", &port, "hi", "--wait", "5", "--timestamps"],
    );
    c.env("TZ", "CST-8");
    let before = china_seconds_now();
    let out = run(c, b"");
    p.join().unwrap();
    succeeded(&out);
    let printed = text(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    let (t, rest) = timestamp(lines[0]);
    assert_about(t, before, china_seconds_now());
    assert_eq!(rest, "one");
    assert_eq!(lines[1], "           │ two");
    assert_eq!(lines[2], "           └ 8 bytes in one read");
}

#[test]
fn netassist_setup_echoes_gbk_text_as_utf8_on_tcp_server() {
    // NetAssist on Windows sends GBK and shows what it receives as UTF-8.
    let mut srv = server(
        "tcp-server",
        &["--recv-encoding", "gbk", "--send-encoding", "utf-8", "-v"],
    );
    let s = connect(srv.addr());
    let me = s.local_addr().unwrap();
    assert_eq!(ask(&s, b"\xc4\xe3\xba\xc3", 6), "你好".as_bytes()); // 你好 in GBK
    assert_eq!(srv.out().next().unwrap(), format!("[{me}] 你好"));
    // 好 split across two reads: the server has read the first byte before the
    // second is sent, and still echoes the whole character.
    send_all(&s, b"\xba");
    srv.err().expect(&format!("{me}: received 1 bytes"));
    assert_eq!(ask(&s, b"\xc3", 3), "好".as_bytes());
    // One encoding both ways: the bytes as they came, even invalid ones.
    let srv = server("tcp-server", &["--encoding", "gbk"]);
    let s = connect(srv.addr());
    echoes(&s, b"\xc4\xe3\xff");
    // --recv-encoding alone: we send UTF-8 (the default), so the text goes back as
    // UTF-8, framed as it came: a line with its own ending, a len frame with its
    // new length.
    let srv = server(
        "tcp-server",
        &["--recv-encoding", "gbk", "--framing", "line"],
    );
    let s = connect(srv.addr());
    assert_eq!(ask(&s, b"\xc4\xe3\r\n", 5), "你\r\n".as_bytes());
    let srv = server(
        "tcp-server",
        &["--recv-encoding", "gbk", "--framing", "len"],
    );
    let s = connect(srv.addr());
    assert_eq!(
        ask(&s, b"\0\0\0\x04\xc4\xe3\xba\xc3", 10),
        "\0\0\0\x06你好".as_bytes()
    );
}

#[test]
fn netassist_setup_echoes_gbk_text_as_utf8_on_udp_echo_serve() {
    let mut srv = server(
        "udp-echo",
        &["--recv-encoding", "gbk", "--send-encoding", "utf-8"],
    );
    let s = udp_socket();
    assert_eq!(
        ask_udp(&s, srv.addr(), b"\xc4\xe3\xba\xc3"),
        "你好".as_bytes()
    );
    assert!(srv.out().next().unwrap().ends_with("] 你好"));
    // The older name of --send-encoding still works; two different values do not.
    let out = run(
        cmd(
            "udp-echo",
            &[
                "serve",
                "0",
                "--reply-encoding",
                "utf-8",
                "--send-encoding",
                "gbk",
            ],
        ),
        b"",
    );
    failed(
        &out,
        2,
        "--reply-encoding is another name for --send-encoding",
    );
}

#[test]
fn a_gbk_read_at_a_utf8_server_is_one_record_and_the_hint_names_gbk() {
    let mut srv = server("tcp-server", &[]);
    let s = connect(srv.addr());
    let me = s.local_addr().unwrap();
    ask(&s, b"\xc4\xe3\xba\xc3", 4);
    drop(s);
    srv.err().expect("disconnected");
    let warning = srv
        .err()
        .seen
        .iter()
        .find(|l| l.starts_with("warning:"))
        .cloned()
        .unwrap_or_else(|| panic!("no warning in {:?}", srv.err().seen));
    assert_eq!(
        warning,
        format!(
            "warning: {me}: received bytes that are not valid UTF-8, shown as \u{FFFD}; they are valid GBK (\"你好\"): try --recv-encoding gbk, or --hex to see the bytes"
        )
    );
    // One read, one record: nothing more when the client leaves.
    srv.interrupt();
    srv.wait();
    assert_eq!(
        srv.out().rest(),
        [format!("[{me}] \u{FFFD}\u{FFFD}\u{FFFD}")]
    );
}

#[test]
fn the_hint_names_utf8_when_gbk_is_set_and_utf8_arrives_never_gbk() {
    let mut srv = server("tcp-server", &["--recv-encoding", "gbk"]);
    let s = connect(srv.addr());
    send_all(&s, "我爱你\n".as_bytes());
    srv.out().next().unwrap();
    let warning = srv.err().expect("warning:");
    assert!(warning.contains("not valid GBK"), "{warning}");
    assert!(
        warning.contains("valid UTF-8 (\"我爱你\"): try --recv-encoding utf-8"),
        "{warning}"
    );
    assert!(!warning.contains("--recv-encoding gbk"), "{warning}");

    // The same at a tcp-client, and bytes nothing likely decodes.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let peer = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        read_n(&s, 2);
        send_all(&s, b"\xff\xff");
    });
    let out = client_out(&["127.0.0.1", &port, "hi", "--recv-encoding", "gbk"]);
    peer.join().unwrap();
    assert!(
        text(&out.stderr).contains(
            "not valid GBK, shown as \u{FFFD}, and not valid UTF-8 or Big5 either; try --hex to see the bytes"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// The first `warning:` line `srv` printed, once it has said `until`.
fn first_warning(srv: &mut Process, until: &str) -> String {
    srv.err().expect(until);
    srv.err()
        .seen
        .iter()
        .find(|l| l.starts_with("warning:"))
        .cloned()
        .unwrap_or_else(|| panic!("no warning in {:?}", srv.err().seen))
}

/// The first warning of a tcp-server with `flags` whose client sends `bytes`
/// and closes.
fn warning_at_the_end_of(flags: &[&str], bytes: &[u8]) -> String {
    let mut srv = server("tcp-server", flags);
    let c = connect(srv.addr());
    send_all(&c, bytes);
    c.shutdown(std::net::Shutdown::Write).unwrap();
    read_all(&c);
    first_warning(&mut srv, "disconnected")
}

#[test]
fn the_hint_never_names_an_encoding_for_a_lone_lead_byte() {
    // One datagram of one GBK lead byte: whole, and valid nowhere.
    let mut srv = server("udp-echo", &["--recv-encoding", "gbk"]);
    let s = udp_socket();
    ask_udp(&s, srv.addr(), b"\xc4");
    let warning = srv.err().expect("warning:");
    assert!(
        warning.ends_with(
            "not valid GBK, shown as \u{FFFD}, and not valid UTF-8 or Big5 either; try --hex to see the bytes"
        ),
        "{warning}"
    );

    // A stream that ends inside a character: the hint is about that character.
    let warning = warning_at_the_end_of(&["--recv-encoding", "gbk"], b"ok\xc4");
    assert!(
        warning.ends_with(
            "not valid GBK, shown as \u{FFFD}, and not valid UTF-8 or Big5 either; try --hex to see the bytes"
        ),
        "{warning}"
    );
    // …and when that character's bytes are whole in another encoding, it is named.
    let warning = warning_at_the_end_of(&[], b"ok\xe4\xbd");
    assert!(
        warning.ends_with(
            "not valid UTF-8, shown as \u{FFFD}; they are valid GBK (\"浣\"): try --recv-encoding gbk, or --hex to see the bytes"
        ),
        "{warning}"
    );
}

fn client_out(args: &[&str]) -> std::process::Output {
    run(cmd("tcp-client", args), b"")
}

#[test]
fn cp936_and_936_are_gbk_and_unknown_labels_list_common_ones() {
    for label in ["cp936", "936"] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let peer = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            read_all(&s)
        });
        let out = client_out(&[
            "127.0.0.1",
            &port,
            "你好",
            "--send-encoding",
            label,
            "--wait",
            "0",
        ]);
        assert!(out.status.success(), "{label}: {}", text(&out.stderr));
        assert_eq!(peer.join().unwrap(), b"\xc4\xe3\xba\xc3", "{label}");
    }
    let out = client_out(&["127.0.0.1", "9", "x", "--encoding", "cp9360"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "unknown encoding \"cp9360\"; try one of: utf-8, gbk (also cp936, 936), gb18030, big5"
        ),
        "{err}"
    );
}

/// The lesson-13 client of the notes, when python3 is here: its three sends,
/// however they arrive, are shown as one record per read, every line once.
#[test]
fn notes_style_python_client_three_sends() {
    if !have_peer("python3") {
        return;
    }
    let mut srv = server("tcp-server", &["--once", "--reply", "", "-v"]);
    let port = srv.addr().port().to_string();
    let py = "import socket,sys\n\
              s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n\
              s.send(b'one\\n'); s.send(b'two\\n'); s.send(b'three\\n')\n\
              s.close()\n";
    let mut c = peer_cmd("python3");
    c.args(["-c", py, &port]);
    let out = run(c, b"");
    succeeded(&out);
    assert!(srv.wait().success());
    let shown = srv.out().rest();
    // However the bytes were cut into reads, each line of data is shown once,
    // and a record of several lines ends with its size.
    let data: Vec<String> = shown
        .iter()
        .filter(|l| !l.trim_start().starts_with('└'))
        .map(|l| {
            l.split_once("] ")
                .map(|(_, t)| t.to_string())
                .unwrap_or_else(|| l.trim_start().trim_start_matches('│').trim().to_string())
        })
        .collect();
    assert_eq!(data, ["one", "two", "three"], "{shown:?}");
    // One record per read, as many as the server's -v log counts.
    let reads = srv
        .err()
        .rest()
        .iter()
        .filter(|l| l.contains(": received "))
        .count();
    let records = shown.iter().filter(|l| l.starts_with('[')).count();
    assert_eq!(records, reads, "{shown:?} {:?}", srv.err().seen);
}

fn chat(args: &[&str]) -> Process {
    let mut c = cmd("chat", args);
    c.env("TZ", "CST-8");
    Process::listening(c)
}

/// The notes' programs and nc are not chats: what one read brings is one
/// record, as in the other tools (lesson 13), with its time.
#[test]
fn chat_shows_one_read_from_a_program_as_one_record_with_its_time() {
    let mut srv = chat(&["listen", "0", "--bind", "127.0.0.1", "--timestamps"]);
    let s = connect(srv.addr());
    let before = china_seconds_now();
    send_all(&s, b"one\ntwo\n");
    let first = srv.out().next().unwrap();
    let (t, rest) = timestamp(&first);
    assert_about(t, before, china_seconds_now());
    assert_eq!(rest, "peer> one");
    rest_of_record(
        &mut srv,
        "12:34:56.789 peer> ",
        &["two"],
        "8 bytes in one read",
    );
    send_all(&s, b"three\n");
    let line = srv.out().next().unwrap();
    assert_eq!(timestamp(&line).1, "peer> three");
}

#[test]
fn chat_room_timestamps_each_transcript_line() {
    let mut srv = chat(&["room", "0", "--bind", "127.0.0.1", "--timestamps"]);
    let a = connect(srv.addr());
    srv.err().expect("user-1 (");
    let _b = connect(srv.addr());
    srv.err().expect("user-2 (");
    let before = china_seconds_now();
    send_all(&a, "你好\n".as_bytes());
    let line = srv.out().next().unwrap();
    let (t, rest) = timestamp(&line);
    assert_about(t, before, china_seconds_now());
    assert_eq!(rest, "user-1> 你好");
}

/// Lesson 06 in chat: NetAssist's GBK `你好` at a UTF-8 chat is one read, so
/// one record (not `��` now and `�` with the next message), and the warning
/// names GBK; `-v` logs the read.
#[test]
fn chat_shows_a_gbk_read_as_one_record_and_names_gbk() {
    let mut srv = chat(&["listen", "0", "--bind", "127.0.0.1", "-v"]);
    let s = connect(srv.addr());
    send_all(&s, b"\xc4\xe3\xba\xc3");
    assert_eq!(srv.out().next().unwrap(), "peer> \u{FFFD}\u{FFFD}\u{FFFD}");
    srv.err().expect("received 4 bytes");
    let warning = srv.err().expect("not valid UTF-8");
    assert!(
        warning.contains("they are valid GBK (\"你好\"): try --recv-encoding gbk"),
        "{warning}"
    );
    send_all(&s, b"ok");
    assert_eq!(srv.out().next().unwrap(), "peer> ok");
    // A blank line inside one read is part of it.
    send_all(&s, b"a\n\nb\n");
    assert_eq!(srv.out().next().unwrap(), "peer> a");
    rest_of_record(&mut srv, "peer> ", &["", "b"], "5 bytes in one read");
}
