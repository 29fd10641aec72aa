//! End-to-end tests of `chat room`: the real binary, with plain TCP sockets (and nc) as members.

mod util;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use util::*;

const GREETING: &str = "* welcome to the chat room";

/// A room on loopback, any free port, with these extra flags.
fn room(extra: &[&str]) -> Process {
    Process::server("chat room", extra)
}

/// A room with `flags`, and two members; the first has seen the second join.
fn two_members(flags: &[&str]) -> (Process, Member, Member) {
    let srv = room(flags);
    let mut a = Member::join(&srv);
    let b = Member::join(&srv);
    a.expect("joined");
    (srv, a, b)
}

/// A member: a plain socket (with timeouts), read line by line.
struct Member {
    s: TcpStream,
    r: BufReader<TcpStream>,
    name: String,
    addr: String,
}

impl Member {
    /// Connect and read the greeting and the who-is-here line. Once the greeting
    /// has arrived the room has counted us in: no sleeping needed.
    fn join(srv: &Process) -> Member {
        let s = connect(srv.addr());
        let r = BufReader::new(s.try_clone().unwrap());
        let mut m = Member {
            s,
            r,
            name: String::new(),
            addr: String::new(),
        };
        let greeting = m.line();
        assert!(greeting.starts_with(GREETING), "{greeting:?}");
        let who = greeting.split("you are ").nth(1).unwrap();
        let (name, rest) = who.split_once(" (").unwrap();
        m.name = name.to_string();
        m.addr = rest.split_once(')').unwrap().0.to_string();
        assert_eq!(m.addr, m.s.local_addr().unwrap().to_string());
        let here = m.line();
        assert!(here.contains(" here: "), "{here:?}");
        assert!(
            here.contains(&format!("{name} ({}, you)", m.addr)),
            "{here}"
        );
        m
    }

    /// The next line's bytes, without its `\n`; panics at the end of the stream or on timeout.
    fn line_bytes(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        match self.r.read_until(b'\n', &mut v) {
            Ok(_) if v.ends_with(b"\n") => {
                v.pop();
                v
            }
            Ok(_) => panic!("{}: stream ended; partial line {:?}", self.name, text(&v)),
            Err(e) => panic!("{}: no line ({e}); partial line {:?}", self.name, text(&v)),
        }
    }

    fn line(&mut self) -> String {
        String::from_utf8(self.line_bytes()).expect("UTF-8 line")
    }

    /// Skip lines until one contains `needle`.
    fn expect(&mut self, needle: &str) -> String {
        loop {
            let line = self.line();
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Every line until the room closes the connection.
    fn rest(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        self.r.read_to_end(&mut v).expect("read to the end");
        text(&v).lines().map(str::to_string).collect()
    }

    fn send(&self, bytes: impl AsRef<[u8]>) {
        send_all(&self.s, bytes.as_ref());
    }

    /// Send `bytes`; the next line the room sends back.
    fn ask(&mut self, bytes: impl AsRef<[u8]>) -> String {
        self.send(bytes);
        self.line()
    }

    /// `name (addr)`, as joins and leaves show a member.
    fn who(&self) -> String {
        format!("{} ({})", self.name, self.addr)
    }
}

#[test]
fn sixty_members_each_read_every_other_line_exactly_once() {
    const N: usize = 60;
    const LINES: usize = 3;
    let mut srv = room(&[]);
    let members: Vec<Member> = (0..N).map(|_| Member::join(&srv)).collect();
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            let (names, barrier) = (names.clone(), barrier.clone());
            thread::spawn(move || {
                // The lines in three writes that cut them anywhere: the room must
                // put the pieces back together (lesson 13).
                let mut mine = String::new();
                for k in 0..LINES {
                    mine.push_str(&format!("line {k} from {i} 你好\n"));
                }
                mine.push_str("end\n");
                let bytes = mine.as_bytes();
                let (a, b) = (7 + i % 5, bytes.len() / 2 + i % 3);
                m.send(&bytes[..a]);
                m.send(&bytes[a..b]);
                m.send(&bytes[b..]);
                // Read until every other member's `end`.
                let mut got = Vec::new();
                let mut ends = 0;
                while ends < N - 1 {
                    let line = m.line();
                    if line.starts_with("* ") {
                        continue;
                    }
                    if line.ends_with("> end") {
                        ends += 1;
                    }
                    got.push(line);
                }
                // Everyone has everything: leave, and nothing but notices may follow.
                barrier.wait();
                m.send("/quit\n");
                let after = m.rest();
                assert!(
                    after.iter().all(|l| l.starts_with("* ")),
                    "{}: {after:?}",
                    m.name
                );
                assert!(after.contains(&"* bye".to_string()), "{after:?}");
                let mut want = Vec::new();
                for (j, name) in names.iter().enumerate().filter(|(j, _)| *j != i) {
                    for k in 0..LINES {
                        want.push(format!("{name}> line {k} from {j} 你好"));
                    }
                    want.push(format!("{name}> end"));
                }
                let mut sorted = got.clone();
                sorted.sort();
                want.sort();
                assert_eq!(sorted, want, "{} got a wrong set of lines", m.name);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The transcript has every message once.
    let mut transcript = HashSet::new();
    for _ in 0..N * (LINES + 1) {
        let line = srv.out().next().expect("a transcript line per message");
        assert!(transcript.insert(line.clone()), "twice: {line}");
    }
    assert!(transcript.contains(&format!("{}> line 2 from 59 你好", names[59])));
}

#[test]
fn leaving_mid_line_or_by_reset_keeps_lines_whole() {
    let srv = room(&[]);
    let mut a = Member::join(&srv);
    let b = Member::join(&srv);
    let mut d = Member::join(&srv);
    let mut c = Member::join(&srv);
    a.expect(&format!("* {} joined", c.who()));

    // Half of a's line, then a whole line from b, then the rest of a's line.
    a.send("interleaved: one");
    b.send("b says hi\n");
    assert_eq!(c.line(), format!("{}> b says hi", b.name));
    a.send(" two\n");
    assert_eq!(c.line(), format!("{}> interleaved: one two", a.name));

    // A clean close after half a line: that half is a line.
    a.send("bye without newline");
    a.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.line(), format!("{}> bye without newline", a.name));
    assert_eq!(c.line(), format!("* {} left", a.who()));
    // a reads what was said while it was here, then the end: no notice of its own leaving.
    assert_eq!(a.rest(), vec![format!("{}> b says hi", b.name)]);

    // A reset after half a line: the half is dropped, the reason given. (d reads
    // everything first, so the room has nothing left to write to it: the reason
    // comes from the reader, not from a write that failed.)
    d.expect(&format!("* {} left", a.who()));
    d.send("lost half");
    socket2::SockRef::from(&d.s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    let d_who = d.who();
    drop(d);
    assert_eq!(
        c.line(),
        format!("* {d_who} left (connection reset by peer)")
    );

    b.send("still here\n");
    assert_eq!(c.line(), format!("{}> still here", b.name));
}

/// Length of each line the flood tests send, newline included.
const FLOOD_LINE: usize = 1000;

fn flood_line(i: usize) -> String {
    let head = format!("flood {i:05} ");
    format!("{head}{}\n", "x".repeat(FLOOD_LINE - head.len() - 1))
}

#[test]
fn stalled_member_is_dropped_and_never_delays_the_others() {
    // a sends bursts that b reads in full before the next: b keeps up, the stalled
    // member falls further behind with every burst until its queue overflows.
    const BURST: usize = 32;
    const MAX_LINES: usize = 20_000;
    let mut srv = room(&["--max-queue", "64K"]);
    let mut a = Member::join(&srv);
    let mut b = Member::join(&srv);
    // Connects and never reads a byte.
    let stalled = connect(srv.addr());
    let s_addr = stalled.local_addr().unwrap().to_string();
    a.expect(&format!("({s_addr}) joined"));
    b.expect(&format!("({s_addr}) joined"));

    let start = Instant::now();
    let mut longest_wait = Duration::ZERO;
    let (mut sent, mut notice) = (0, None);
    while notice.is_none() {
        assert!(sent < MAX_LINES, "the stalled member was never dropped");
        let burst: String = (sent..sent + BURST).map(flood_line).collect();
        a.send(burst);
        let mut got = 0;
        while got < BURST {
            let waited = Instant::now();
            let line = b.line();
            longest_wait = longest_wait.max(waited.elapsed());
            if line.starts_with("* ") {
                notice = Some(line);
                continue;
            }
            assert_eq!(
                format!("{line}\n"),
                format!("{}> {}", a.name, flood_line(sent + got))
            );
            got += 1;
        }
        sent += BURST;
    }
    let notice = notice.unwrap();
    assert_eq!(
        notice,
        format!("* user-3 ({s_addr}) left (too slow: outgoing queue full)")
    );
    assert_eq!(a.line(), notice);
    eprintln!(
        "stalled member dropped after {sent} lines, {:?}; longest wait for a line {longest_wait:?}",
        start.elapsed()
    );
    assert!(longest_wait < Duration::from_secs(5), "{longest_wait:?}");

    // The room goes on.
    b.send("after the flood\n");
    assert_eq!(a.line(), format!("{}> after the flood", b.name));
    // The stalled member's connection was closed: it ends, after what the kernel held.
    let mut sink = Vec::new();
    match (&stalled).read_to_end(&mut sink) {
        Ok(_) => assert!(text(&sink).starts_with(GREETING)),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(sink.len() < sent * FLOOD_LINE);
    srv.err().expect("left (too slow: outgoing queue full)");
}

#[test]
fn gbk_and_utf8_members_read_each_other() {
    let (_srv, mut g, mut u) = two_members(&[]);

    // GBK bytes in a UTF-8 room: shown as U+FFFD, and the sender is told how to fix it.
    g.send(b"\xc4\xe3\xba\xc3\n");
    assert_eq!(u.line(), format!("{}> \u{FFFD}\u{FFFD}\u{FFFD}", g.name));
    let hint = g.line();
    assert!(
        hint.starts_with("* your text is not valid UTF-8")
            && hint.contains("it is valid GBK: if you type GBK, send /enc gbk utf-8 (you read UTF-8, as NetAssist does), or /enc gbk if you read GBK too"),
        "{hint}"
    );

    assert_eq!(g.ask("/enc gbk\n"), "* your encoding is now GBK");
    g.send(b"\xc4\xe3\xba\xc3\xa3\xac\xca\xc0\xbd\xe7\n"); // 你好，世界
    assert_eq!(u.line(), format!("{}> 你好，世界", g.name));
    u.send("你好 😀\n");
    let want = [format!("{}> ", u.name).as_bytes(), b"\xc4\xe3\xba\xc3 ?"].concat();
    assert_eq!(g.line_bytes(), want, "GBK, with ? for the emoji GBK lacks");
    g.send(b"/nick \xd0\xa1\xc3\xf7\n"); // 小明
    assert_eq!(u.line(), format!("* {} is now known as 小明", g.name));
    let want = [
        format!("* {} is now known as ", g.name).as_bytes(),
        b"\xd0\xa1\xc3\xf7",
    ]
    .concat();
    assert_eq!(g.line_bytes(), want);

    // A room whose members speak GBK unless they say otherwise.
    let (_srv, mut n, mut v) = two_members(&["--encoding", "gbk"]);
    assert_eq!(v.ask("/enc utf-8\n"), "* your encoding is now UTF-8");
    n.send(b"\xc4\xe3\xba\xc3\n");
    assert_eq!(v.line(), format!("{}> 你好", n.name));
    v.send("世界\n");
    let want = [format!("{}> ", v.name).as_bytes(), b"\xca\xc0\xbd\xe7"].concat();
    assert_eq!(n.line_bytes(), want);
}

/// NetAssist types GBK and shows what it receives as UTF-8: `/enc gbk utf-8`.
#[test]
fn a_netassist_member_types_gbk_and_reads_utf8() {
    let (mut srv, mut n, mut u) = two_members(&[]);
    assert_eq!(n.ask("/enc gbk utf-8\n"), "* you type GBK and read UTF-8");
    assert!(
        n.ask("/enc\n")
            .starts_with("* you type GBK and read UTF-8;")
    );
    n.send(b"\xc4\xe3\xba\xc3\n"); // 你好 in GBK
    assert_eq!(u.line(), format!("{}> 你好", n.name));
    u.send("世界\n");
    assert_eq!(n.line(), format!("{}> 世界", u.name), "UTF-8 bytes");
    assert!(
        n.ask("/enc gbk utf-8 big5\n")
            .starts_with("* usage: /enc LABEL, or /enc TYPED READ")
    );
    assert!(
        n.ask("/enc gbk klingon\n")
            .starts_with("* unknown encoding \"klingon\"")
    );
    srv.err().expect("types GBK, reads UTF-8");
}

#[test]
fn commands_nick_who_enc_quit_help() {
    let (_srv, mut a, mut b) = two_members(&[]);

    assert_eq!(
        b.ask("/nick alice\n"),
        format!("* {} is now known as alice", b.name)
    );
    assert_eq!(a.line(), format!("* {} is now known as alice", b.name));
    b.name = "alice".into();
    assert_eq!(
        a.ask("/nick Alice\n"),
        "* cannot rename to \"Alice\": that name is taken"
    );
    assert_eq!(
        a.ask("/nick two words\n"),
        "* cannot rename to \"two words\": a name cannot contain spaces"
    );
    assert_eq!(
        a.ask(format!("/nick {}\n", "x".repeat(33))),
        format!(
            "* cannot rename to \"{}\": a name has 1 to 32 characters",
            "x".repeat(33)
        )
    );
    assert_eq!(
        a.ask("/nick bell\x07\n"),
        "* cannot rename to \"bell\\x07\": a name cannot contain control characters"
    );
    assert_eq!(a.ask("/nick\n"), "* usage: /nick NAME");
    // Refusals went to a only: b's next line is a's message.
    let old = std::mem::replace(&mut a.name, "bob".into());
    assert_eq!(a.ask("/nick bob\n"), format!("* {old} is now known as bob"));
    assert_eq!(
        a.ask("/who\n"),
        format!("* 2 users here: bob ({}, you), alice ({})", a.addr, b.addr)
    );
    a.send("/enc klingon\n");
    let refused = a.line();
    assert!(
        refused.starts_with("* unknown encoding \"klingon\""),
        "{refused}"
    );
    assert!(
        a.ask("/enc utf-16le\n")
            .starts_with("* UTF-16LE cannot be used in the room")
    );
    assert!(a.ask("/enc\n").starts_with("* your encoding is UTF-8;"));
    assert_eq!(
        a.ask("/frobnicate now\n"),
        "* unknown command \"/frobnicate\"; /help lists the commands"
    );
    assert!(a.ask("/help\n").starts_with("* commands: /nick NAME"));
    a.send("//etc is a folder\n\n");
    // b saw only the rename and the message: no refusals, no empty line.
    assert_eq!(b.line(), format!("* {old} is now known as bob"));
    assert_eq!(b.line(), "bob> /etc is a folder");

    a.send("/quit\nnot sent\n");
    assert_eq!(a.rest(), vec!["* bye".to_string()]);
    assert_eq!(b.line(), format!("* bob ({}) left", a.addr));
    assert_eq!(
        b.ask("/who\n"),
        format!("* 1 user here: alice ({}, you)", b.addr)
    );
}

#[test]
fn full_room_refuses_politely_and_frees_places() {
    let (mut srv, mut a, b) = two_members(&["--max-users", "2"]);
    let extra = connect(srv.addr());
    assert_eq!(
        text(&read_all(&extra)),
        "* the room is full (2 users); try again later\n"
    );
    srv.err().expect("refused: the room is full");
    b.send("/quit\n");
    a.expect("left");
    // The place is free as soon as the notice is out.
    let mut c = Member::join(&srv);
    assert!(c.ask("/who\n").starts_with("* 2 users here: "));
}

#[test]
fn long_lines_are_cut_with_a_notice() {
    let (_srv, mut a, mut b) = two_members(&["--max-line", "16"]);
    b.send("0123456789abcdefGHIJ\nnext line\n");
    assert_eq!(a.line(), format!("{}> 0123456789abcdef", b.name));
    assert_eq!(a.line(), format!("{}> next line", b.name));
    assert_eq!(
        b.line(),
        "* line too long: only its first 16 bytes were kept (--max-line 16)"
    );
    // Cut on a character boundary: 18 bytes of Chinese keep 15.
    b.send("你好你好你好\n");
    assert_eq!(a.line(), format!("{}> 你好你好你", b.name));
    b.line();
    // A megabyte without a newline is not buffered: cut, skipped, and the next line is intact.
    b.send(vec![b'z'; 1 << 20]);
    b.send("\nafter\n");
    assert_eq!(a.line(), format!("{}> {}", b.name, "z".repeat(16)));
    assert_eq!(a.line(), format!("{}> after", b.name));
}

#[test]
fn control_characters_are_escaped_chinese_is_not() {
    let (mut srv, mut a, b) = two_members(&[]);
    b.send("\x1b[2J\x07ring 你好\tok\r\n");
    let want = format!("{}> \\x1b[2J\\x07ring 你好\tok", b.name);
    assert_eq!(a.line(), want);
    assert_eq!(srv.out().next().unwrap(), want);
}

/// SIGTERM (systemd, `docker stop`) closes the room just as Ctrl-C does.
#[test]
fn ctrl_c_or_sigterm_with_a_stalled_member_exits_promptly() {
    const LINES: usize = 8000;
    for sig in ["INT", "TERM"] {
        // A queue big enough that the stalled member is never dropped: its writer stays stuck.
        let mut srv = room(&["--max-queue", "64M"]);
        let mut a = Member::join(&srv);
        let mut b = Member::join(&srv);
        let stalled = connect(srv.addr());
        b.expect(&format!("({}) joined", stalled.local_addr().unwrap()));
        a.expect("joined");
        let mut all = String::new();
        for i in 0..LINES {
            all.push_str(&flood_line(i));
        }
        let sender = {
            let s = a.s.try_clone().unwrap();
            thread::spawn(move || (&s).write_all(all.as_bytes()).unwrap())
        };
        for i in 0..LINES {
            assert_eq!(
                format!("{}\n", b.line()),
                format!("{}> {}", a.name, flood_line(i))
            );
        }
        sender.join().unwrap();
        let took = srv.stop(sig);
        assert!(took < Duration::from_secs(2), "SIG{sig} took {took:?}");
        let closing = "* the room is closing".to_string();
        assert_eq!(b.rest(), vec![closing.clone()], "SIG{sig}");
        assert!(a.rest().contains(&closing), "SIG{sig}");
        // The stalled member never got everything: the room did not wait for it.
        let mut sink = Vec::new();
        let _ = (&stalled).read_to_end(&mut sink);
        assert!(
            sink.len() < LINES * FLOOD_LINE,
            "SIG{sig}: stalled member read {} bytes",
            sink.len()
        );
        srv.err().rest_with("room closed: 3 members joined");
        eprintln!("SIG{sig} took {took:?}");
    }
}

#[test]
fn nc_is_a_room_member() {
    if !have_peer("nc") {
        return;
    }
    let srv = room(&[]);
    let mut m = Member::join(&srv);
    let mut nc = peer_cmd("nc");
    nc.args(["127.0.0.1", &srv.addr().port().to_string()]);
    let mut nc = Process::spawn(nc);
    let greeting = nc.out().next().expect("greeting");
    assert!(greeting.starts_with(GREETING), "{greeting}");
    let joined = m.expect("joined");
    let nc_name = joined
        .strip_prefix("* ")
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    nc.say("hello from nc 你好");
    assert_eq!(m.line(), format!("{nc_name}> hello from nc 你好"));
    m.send("hi nc\n");
    nc.out().expect(&format!("{}> hi nc", m.name));
    nc.say("/quit");
    nc.close_stdin();
    nc.out().expect("* bye");
    assert!(m.line().starts_with(&format!("* {nc_name} (")));
    nc.wait();
}

#[test]
fn bad_command_lines_are_one_line_errors() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["room", "70000"], 2, "invalid port"),
        (
            &["room", "0", "-e", "utf-16le"],
            2,
            "cannot be used in the room",
        ),
        (&["room", "0", "-e", "klingon"], 2, "unknown encoding"),
        // Flags of a chat with one peer are not the room's: they are refused,
        // saying where they belong.
        (
            &["room", "0", "--hex"],
            2,
            "--hex is a flag of chat listen and chat connect, not of chat room",
        ),
        (&["room", "0", "--max-users", "0"], 2, "--max-users"),
        (&["room", "0", "--max-line", "0"], 2, "invalid size"),
    ];
    for (args, code, needle) in cases {
        let out = run(cmd("chat", args), b"");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    // A port in use is a runtime failure, exit 1, in one line.
    let srv = room(&[]);
    let port = srv.addr().port().to_string();
    let out = run(cmd("chat", &["room", &port, "--bind", "127.0.0.1"]), b"");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("chat: cannot listen on"), "{err}");
}

#[test]
fn chat_connect_is_a_room_member() {
    let srv = room(&[]);
    let mut bob = Member::join(&srv);
    let mut alice = Process::spawn(cmd(
        "chat",
        &["connect", &srv.addr().to_string(), "--name", "alice"],
    ));
    // The room's lines are shown as they come, without a second "peer> " prefix.
    assert!(alice.out().next().unwrap().starts_with(GREETING));
    bob.expect("joined");
    bob.expect("is now known as alice");
    bob.send("你好 alice\n");
    assert_eq!(
        alice.out().expect("你好"),
        format!("{}> 你好 alice", bob.name)
    );
    alice.say("hi bob");
    assert_eq!(bob.expect("hi bob"), "alice> hi bob");
    // The room closes our connection on /quit: the chat ends normally.
    alice.say("/quit");
    assert!(alice.wait().success());
    assert!(bob.expect("left").starts_with("* alice ("));
}

/// Issue 12: a member cannot make a line look like another member's, or like
/// the room's, with invisible characters in a message.
#[test]
fn invisible_and_bidi_characters_arrive_escaped() {
    let (mut srv, mut a, mut b) = two_members(&[]);
    b.send("/nick bob\n");
    assert_eq!(a.line(), format!("* {} is now known as bob", b.name));
    b.line();
    b.name = "bob".into();
    // U+2028 starts a new line in some terminals; U+202E reverses what follows.
    a.send("hi\u{2028}bob> give me your password\n");
    a.send("see \u{202e}fdp.exe\u{202c} and b\u{200b}ob\u{feff} \u{2066}x\u{2069}\n");
    let first = format!("{}> hi\\u{{2028}}bob> give me your password", a.name);
    let second = format!(
        "{}> see \\u{{202e}}fdp.exe\\u{{202c}} and b\\u{{200b}}ob\\u{{feff}} \\u{{2066}}x\\u{{2069}}",
        a.name
    );
    assert_eq!(b.line(), first);
    assert_eq!(b.line(), second);
    assert_eq!(srv.out().next().unwrap(), first);
    assert_eq!(srv.out().next().unwrap(), second);
    // Chinese, accents and emoji (joined ones too) are relayed untouched.
    let plain = "大家好，我是小明 Zoë 👩\u{200d}💻 ❤\u{fe0f}";
    a.send(format!("{plain}\n"));
    assert_eq!(b.line(), format!("{}> {plain}", a.name));
}

/// Issue 12: names that hide characters, look like a present member's, or
/// forge the room's notices or the message format are refused, with a
/// one-line reason; ordinary names, Chinese ones included, are not.
#[test]
fn spoofing_names_are_refused() {
    let srv = room(&[]);
    let mut a = Member::join(&srv);
    let mut b = Member::join(&srv);
    let mut c = Member::join(&srv);
    a.expect("joined");
    a.expect("joined");
    b.expect("joined");
    // One rename at a time: two from different members may arrive in
    // either order.
    b.send("/nick bob\n");
    for m in [&mut a, &mut b, &mut c] {
        m.expect("is now known as bob");
    }
    c.send("/nick alice\n");
    for m in [&mut a, &mut b, &mut c] {
        m.expect("is now known as alice");
    }
    let refusals = [
        (
            "b\u{200b}ob",
            "b\\u{200b}ob",
            "a name cannot contain invisible or formatting characters such as \\u{200b}; choose one without them",
        ),
        (
            "\u{430}lice",
            "\u{430}lice",
            "it looks like \"alice\", who is already here; choose another name",
        ),
        (
            "\u{115f}",
            "\\u{115f}",
            "a name cannot contain invisible or formatting characters such as \\u{115f}; choose one without them",
        ),
        (
            "server",
            "server",
            "\"server\" is reserved: the room and chat clients use it; choose another name",
        ),
        (
            "*",
            "*",
            "a name cannot start with \"*\" or a look-alike: the room's notices start with \"* \"; choose another",
        ),
        (
            "alice>",
            "alice>",
            "a name cannot contain \">\" or a look-alike: messages are shown as \"name> text\"; choose another",
        ),
    ];
    for (nick, shown, why) in refusals {
        assert_eq!(
            a.ask(format!("/nick {nick}\n")),
            format!("* cannot rename to \"{shown}\": {why}")
        );
    }
    // Refusals went to a only: the others' next line is a's message.
    a.send("still me\n");
    let mine = format!("{}> still me", a.name);
    assert_eq!(b.line(), mine);
    assert_eq!(c.line(), mine);
    // Only members who are here count: once alice has left, her look-alike is free.
    c.send("/quit\n");
    assert_eq!(c.rest(), vec!["* bye".to_string()]);
    a.expect("alice (");
    assert_eq!(
        a.ask("/nick \u{430}lice\n"),
        format!("* {} is now known as \u{430}lice", a.name)
    );
    assert_eq!(a.ask("/nick 小明\n"), "* \u{430}lice is now known as 小明");
    assert_eq!(a.ask("/nick Zoë\n"), "* 小明 is now known as Zoë");
    a.send("你好，我是 Zoë\n");
    b.expect("is now known as 小明");
    b.expect("is now known as Zoë");
    assert_eq!(b.line(), "Zoë> 你好，我是 Zoë");
}
