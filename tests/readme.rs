//! README's transcripts are real runs: every ```console block is marked `<!-- transcript: NAME -->`, and the scenario of that name below runs the block's exact commands through the real binaries and must show the same screen (after `transcript::normalize`).
//!
//! `UPDATE_README=1 cargo test --test readme` rewrites the blocks that differ
//! from what the runs printed, so README is produced by this test.
//!
//! A scenario is a short script (see `transcript::Step`): servers on port 0
//! standing for README's fixed ports, the block's `$` lines typed in order,
//! and whatever peers the transcript implies (a client sending 你好, typed
//! lines, nc, the course's Python programs). Scenarios run in parallel.

#[path = "util/transcript.rs"]
mod transcript;
mod util;

use std::collections::HashMap;
use std::path::Path;
use std::thread;

use transcript::Content::{Dir, Noise, Text};
use transcript::Step::*;
use transcript::{Block, NEXT, SCENARIO, Scenario, Transcripts, shows};

const MIB: usize = 1 << 20;

/// Every transcript of README, in README's order.
const SCENARIOS: &[Scenario] = &[
    // --- tcp-server ---------------------------------------------------------
    // Lesson 03's server, and the client of lesson 02 that talked to it; the
    // client's second line is against the echo server.
    shows(
        &["tcp-server-lesson03", "tcp-client-lesson02"],
        &[
            Serve("tcp-server-lesson03", 8080, NEXT),
            Run("tcp-client-lesson02", NEXT),
            Exit("tcp-server-lesson03"),
            Serve("echo", 8080, "tcp-server 8080"),
            Runs("tcp-client-lesson02"),
        ],
    ),
    // Lesson 04: two of the notes' clients (send, wait for the answer) at once.
    shows(
        &["tcp-server-lesson04"],
        &[
            Serve("tcp-server-lesson04", 9090, NEXT),
            Ask("client-1", 9090, "utf-8", "第一个问题", "处理中"),
            Ask("client-2", 9090, "utf-8", "问题一", "处理中"),
            Wait("tcp-server-lesson04", "问题一"),
            Hangup("client-2", "tcp-server-lesson04"),
            Hangup("client-1", "tcp-server-lesson04"),
            CtrlC("tcp-server-lesson04"),
        ],
    ),
    // What a server shows of one write: NetAssist sends 你好 in GBK to a UTF-8
    // server; the notes' lesson-13 client's three sends arrive as one read.
    shows(
        &["tcp-server-gbk-client", "tcp-server-one-read"],
        &[
            Serve("tcp-server-gbk-client", 8080, NEXT),
            Ask("netassist", 8080, "gbk", "你好", "你好"),
            Hangup("netassist", "tcp-server-gbk-client"),
            Kill("tcp-server-gbk-client"),
            Serve("tcp-server-one-read", 8092, NEXT),
            Ask("client", 8092, "utf-8", "one\ntwo\nthree\n", "three"),
            Hangup("client", "tcp-server-one-read"),
            Kill("tcp-server-one-read"),
        ],
    ),
    shows(
        &["tcp-server-netassist", "tcp-client-netassist"],
        &[
            Serve("tcp-server-netassist", 8080, NEXT),
            Runs("tcp-client-netassist"),
            Wait("tcp-server-netassist", "disconnected"),
            Kill("tcp-server-netassist"),
        ],
    ),
    shows(
        &["tcp-server-raw-file"],
        &[
            Serve("tcp-server-raw-file", 44363, NEXT),
            Run("client", "tcp-client 127.0.0.1 44363 < big.bin"),
            Exit("tcp-server-raw-file"),
        ],
    )
    .files(&[("big.bin", Noise(1_000_000))]),
    shows(
        &["tcp-server-full-disk"],
        &[
            Serve("tcp-server-full-disk", 40383, NEXT),
            Run(
                "client",
                "head -c 4096 /dev/zero | tcp-client 127.0.0.1 40383",
            ),
            Exit("tcp-server-full-disk"),
            Run("tcp-server-full-disk", NEXT),
        ],
    ),
    // --- tcp-client ---------------------------------------------------------
    shows(
        &["tcp-client-gbk"],
        &[
            Serve("gbk", 8080, "tcp-server 8080 --encoding gbk --reply '收到'"),
            Runs("tcp-client-gbk"),
        ],
    ),
    // Two blocks against one echo server.
    shows(
        &["tcp-client-hex", "tcp-client-unencodable"],
        &[
            Serve("echo", 8080, "tcp-server 8080"),
            Runs("tcp-client-hex"),
            Runs("tcp-client-unencodable"),
        ],
    ),
    // Against a server that answers once the client has sent everything, so
    // that the answer is one read (README says why).
    shows(
        &["tcp-client-duplex"],
        &[EchoAtEnd(8080), Run("tcp-client-duplex", NEXT)],
    ),
    // Whether three quick sends arrive as one read is up to timing; held
    // while the client sends, the server finds all three (README says so).
    shows(
        &["sticky-client", "sticky-server"],
        &[
            Serve("sticky-server", 9000, NEXT),
            Pause("sticky-server"),
            Run("sticky-client", NEXT),
            Resume("sticky-server"),
            Wait("sticky-server", "disconnected"),
            Kill("sticky-server"),
        ],
    ),
    // A parallel scenario's client may take the same port number for a
    // connection of its own, which the message would count too.
    shows(
        &["tcp-server-time-wait"],
        &[TimeWait(8080), Run("tcp-server-time-wait", NEXT)],
    )
    .attempts(3),
    // The notes' GBK server (003 §3) dies on UTF-8 it cannot decode.
    shows(
        &["tcp-client-closed"],
        &[
            Serve("gbk", 8080, "python3 {course}/lesson03_gbk_server.py"),
            Runs("tcp-client-closed"),
        ],
    )
    .needs(&["python3"]),
    shows(
        &["tcp-client-no-reply"],
        &[
            Serve("sink", 8080, "tcp-server 8080 --sink"),
            Run("tcp-client-no-reply", NEXT),
        ],
    ),
    shows(
        &["tcp-client-timestamps"],
        &[
            Serve("echo", 9000, "tcp-server 9000"),
            Run("tcp-client-timestamps", NEXT),
        ],
    ),
    shows(
        &["tcp-client-framing-len"],
        &[
            Serve("len", 9000, "tcp-server 9000 --framing len"),
            Run("tcp-client-framing-len", NEXT),
        ],
    ),
    shows(&["tcp-client-exit-codes"], &[Runs("tcp-client-exit-codes")]),
    // --- udp-echo -----------------------------------------------------------
    shows(
        &["udp-serve-lesson09", "udp-send-lesson09"],
        &[
            Serve("udp-serve-lesson09", 8090, NEXT),
            RunSeen(
                "udp-send-lesson09",
                "udp-serve-lesson09",
                &["我爱你", "exit", "hello"],
            ),
            CtrlC("udp-serve-lesson09"),
        ],
    )
    .needs(&["nc"]),
    // Lesson 08's receiver is a person, who answers after --wait.
    shows(
        &["udp-send-terminal"],
        &[
            Silent(8888),
            OpenTty("udp-send-terminal", NEXT),
            Wait("udp-send-terminal", "still listening"),
            Answer(8888, "我是接收方"),
            Exit("udp-send-terminal"),
        ],
    )
    .needs(&["script"]),
    shows(
        &["udp-serve-raw", "udp-send-raw"],
        &[
            Serve("udp-serve-raw", 9000, NEXT),
            Run("udp-send-raw", NEXT),
            CtrlC("udp-serve-raw"),
        ],
    )
    .files(&[("file.bin", Noise(100_000))]),
    shows(
        &["udp-serve-lesson08"],
        &[
            Serve("udp-serve-lesson08", 8090, NEXT),
            Run("sender", "udp-echo send 127.0.0.1 8090 我爱你 --no-wait"),
            Exit("udp-serve-lesson08"),
        ],
    ),
    shows(
        &["udp-serve-reply", "udp-send-reply"],
        &[
            Serve("udp-serve-reply", 8090, NEXT),
            RunSeen("udp-send-reply", "udp-serve-reply", &["你好"]),
            CtrlC("udp-serve-reply"),
        ],
    ),
    shows(
        &["udp-serve-netassist", "udp-send-netassist"],
        &[
            Serve("udp-serve-netassist", 8090, NEXT),
            RunSeen(
                "udp-send-netassist",
                "udp-serve-netassist",
                &["你好", "你好"],
            ),
            CtrlC("udp-serve-netassist"),
        ],
    ),
    shows(
        &["udp-send-no-reply"],
        &[Silent(8091), Runs("udp-send-no-reply")],
    ),
    // The kernel refuses before anything leaves the machine.
    shows(&["udp-send-broadcast"], &[Runs("udp-send-broadcast")]),
    // --- chat ---------------------------------------------------------------
    // Each side's typing is piped in, a line when the conversation calls for it.
    shows(
        &["chat-alice", "chat-bob"],
        &[
            Serve("chat-alice", 8008, NEXT),
            Open("chat-bob", NEXT),
            Type("chat-bob", "hi alice"),
            Say("chat-bob", "在吗?", "chat-alice"),
            Say("chat-alice", "你好, 我是 alice", "chat-bob"),
            Type("chat-alice", "bye"),
            Exit("chat-alice"),
            Exit("chat-bob"),
        ],
    ),
    shows(
        &["chat-udp-desk", "chat-udp-customer"],
        &[
            Serve("chat-udp-desk", 8888, NEXT),
            Open("chat-udp-customer", NEXT),
            Say("chat-udp-customer", "我的快递到哪了?", "chat-udp-desk"),
            Say(
                "chat-udp-desk",
                "您好, 请问有什么可以帮您?",
                "chat-udp-customer",
            ),
            Type("chat-udp-customer", "bye"),
            Exit("chat-udp-customer"),
            Exit("chat-udp-desk"),
        ],
    ),
    // A UTF-8 member in nc, and NetAssist sending GBK lines ending in \r\n.
    shows(
        &["room", "room-nc", "room-netassist"],
        &[
            Serve("room", 8008, NEXT),
            Connect("room-netassist", 8008, "gbk/utf-8"),
            Wait("room", "user-1 ("),
            Open("room-nc", NEXT),
            Wait("room", "user-2 ("),
            Wait("room-netassist", "user-2 ("),
            Type("room-netassist", "/enc gbk utf-8\r\n"),
            Wait("room", "GBK"),
            Type("room-nc", "/nick 小明"),
            Wait("room", "小明"),
            Wait("room-netassist", "小明"),
            Say("room-nc", "大家好", "room"),
            Wait("room-netassist", "大家好"),
            Type("room-netassist", "你好，我是 NetAssist\r\n"),
            // The room's stdout has a thread of its own: wait for each line.
            Wait("room", "NetAssist"),
            Wait("room-nc", "NetAssist"),
            Type("room-nc", "/who"),
            Wait("room-nc", "you)"),
            Type("room-nc", "/quit"),
            Eof("room-nc"),
            Exit("room-nc"),
            Wait("room", "left"),
            CtrlC("room"),
            Exit("room-netassist"),
        ],
    )
    .needs(&["nc"]),
    shows(
        &["room-limits"],
        &[Serve("room-limits", 41193, NEXT), Kill("room-limits")],
    ),
    shows(
        &["room-exit-codes"],
        &[
            // (Today the room binds before it checks --encoding: on a free port.)
            Free(8008),
            Run("room-exit-codes", NEXT),
            Run("room-exit-codes", NEXT),
            Serve("other-room", 8008, "chat room 8008"),
            Runs("room-exit-codes"),
        ],
    ),
    // --- tftp ---------------------------------------------------------------
    shows(
        &["tftp-serve-log"],
        &[
            Serve("tftp-serve-log", 6969, NEXT),
            Run("client", "tftp-get 127.0.0.1:6969 test.jpg"),
            Wait("tftp-serve-log", "test.jpg"),
            Run("client", "tftp-get 127.0.0.1:6969 notes.txt --no-options"),
            Wait("tftp-serve-log", "notes.txt"),
            Run("client", "tftp-get 127.0.0.1:6969 nothere.jpg"),
            Wait("tftp-serve-log", "nothere.jpg"),
            Run("client", "tftp-get 127.0.0.1:6969 ../../etc/passwd"),
            Wait("tftp-serve-log", "passwd"),
            Run("client", "tftp-put 127.0.0.1:6969 up.jpg"),
            Wait("tftp-serve-log", "up.jpg"),
            Run(
                "client",
                "python3 {course}/lesson12_tftp_client.py 127.0.0.1 6969 test.jpg",
            ),
            Wait("tftp-serve-log", "test.jpg"),
            CtrlC("tftp-serve-log"),
        ],
    )
    .needs(&["python3"])
    .files(&[
        ("test.jpg", Noise(MIB)),
        ("notes.txt", Text("line one\nline two\n")),
        ("client/up.jpg", Noise(3000)),
    ])
    .cwd(&[("client", "client")]),
    shows(
        &["tftp-serve-uploads", "tftp-put"],
        &[
            Serve("tftp-serve-uploads", 6969, NEXT),
            RunSeen(
                "tftp-put",
                "tftp-serve-uploads",
                &["test.jpg", "test.jpg", "big.iso", "date.txt", "report.pdf"],
            ),
            CtrlC("tftp-serve-uploads"),
        ],
    )
    .files(&[
        ("test.jpg", Noise(MIB)),
        ("big.iso", Noise(3_000_000)),
        ("report.pdf", Noise(1000)),
        ("up", Dir),
    ]),
    shows(
        &["tftp-get"],
        &[
            Serve("server", 6969, "tftp-serve . --port 6969"),
            Runs("tftp-get"),
        ],
    )
    .files(&[
        ("test.jpg", Noise(MIB)),
        ("notes.txt", Text("line one\nline two\n")),
        ("client", Dir),
    ])
    .cwd(&[("tftp-get", "client")]),
    // A trace shows every resend: a loaded machine that delays an ACK past
    // the timer adds lines.
    shows(
        &[
            "tftp-get-trace-lockstep",
            "tftp-get-trace-window",
            "tftp-serve-trace",
        ],
        &[
            Serve("tftp-serve-trace", 52999, NEXT),
            Run("tftp-get-trace-lockstep", NEXT),
            Wait("tftp-serve-trace", "hello.bin"),
            Run("tftp-get-trace-window", NEXT),
            Wait("tftp-serve-trace", "test.bin"),
            Kill("tftp-serve-trace"),
        ],
    )
    .files(&[
        ("srv/hello.bin", Noise(3000)),
        ("srv/test.bin", Noise(5000)),
        ("client", Dir),
    ])
    .cwd(&[
        ("tftp-get-trace-lockstep", "client"),
        ("tftp-get-trace-window", "client"),
    ])
    .attempts(3),
    // The notes' server: no options, ERROR 5 "error" for a missing file. The
    // trace's last ACK is sent again if the server's port lingers a moment.
    shows(
        &["tftp-get-course-server"],
        &[
            Serve("course", 46181, "python3 {course}/lesson12_tftp_server.py"),
            Runs("tftp-get-course-server"),
        ],
    )
    .needs(&["python3"])
    .files(&[
        ("srv/test.jpg", Noise(MIB)),
        ("srv/lesson.bin", Noise(1200)),
        ("client", Dir),
    ])
    .cwd(&[("course", "srv"), ("tftp-get-course-server", "client")])
    .attempts(3),
    shows(&["tftp-serve-port-first"], &[Runs("tftp-serve-port-first")]),
    shows(
        &["tftp-get-exit-codes"],
        &[
            Serve("server", 6969, "tftp-serve . --port 6969"),
            Runs("tftp-get-exit-codes"),
        ],
    )
    .files(&[("test.jpg", Noise(1000)), ("client", Dir)])
    .cwd(&[("tftp-get-exit-codes", "client")]),
    shows(
        &["tftp-put-trace"],
        &[
            Serve(
                "server",
                34074,
                "tftp-serve up --port 0 --allow-write --trace",
            ),
            Run("tftp-put-trace", NEXT),
        ],
    )
    .files(&[("srv/hello.bin", Noise(3000)), ("up", Dir), ("client", Dir)])
    .cwd(&[("tftp-put-trace", "client")])
    .attempts(3),
];

const HINT: &str =
    "run UPDATE_README=1 cargo test --test readme to rewrite README's transcripts from real runs";

fn readme_path() -> String {
    format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))
}

/// One scenario's outcome.
enum Outcome {
    Done(Transcripts),
    Skipped(String),
    Failed(String),
}

/// Run a scenario, again (up to its `attempts`) while it differs from README.
fn play(s: Scenario, blocks: &[Block]) -> Outcome {
    let bin = util::bin("tcp-client");
    let bin_dir = bin.parent().unwrap();
    let course = format!("{}/tests/course", env!("CARGO_MANIFEST_DIR"));
    let mut last = None;
    for _ in 0..s.attempts.max(1) {
        let got = transcript::Runner::new(s, blocks, bin_dir, &course).and_then(|r| r.run());
        match got {
            Err(e) => return Outcome::Failed(e),
            Ok(t) => {
                let same = t.iter().all(|(name, text)| {
                    blocks
                        .iter()
                        .find(|b| b.name.as_deref() == Some(name))
                        .is_some_and(|b| {
                            transcript::normalize(&b.text()) == transcript::normalize(text)
                        })
                });
                last = Some(t);
                if same {
                    break;
                }
            }
        }
    }
    Outcome::Done(last.unwrap())
}

#[test]
fn readme_transcripts_are_real_runs() {
    let path = readme_path();
    let readme = std::fs::read_to_string(&path).expect("read README.md");
    let blocks = transcript::parse(&readme);

    let mut problems = transcript::marker_problems(&readme, &blocks);
    let produced: Vec<&str> = SCENARIOS
        .iter()
        .flat_map(|s| s.blocks.iter().copied())
        .collect();
    for b in &blocks {
        if let Some(name) = b.name.as_deref()
            && name != transcript::ILLUSTRATIVE
            && !produced.contains(&name)
        {
            problems.push(format!(
                "README.md:{}: no scenario in tests/readme.rs produces transcript {name:?}",
                b.fence + 1
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Peers are looked up here, on the test's thread: with REQUIRE_PEERS=1 a
    // missing one fails the test.
    let have: HashMap<&str, bool> = SCENARIOS
        .iter()
        .flat_map(|s| s.needs.iter().copied())
        .map(|p| (p, util::have_peer(p)))
        .collect();

    let update = std::env::var("UPDATE_README").as_deref() == Ok("1");
    let one = |s: &Scenario| {
        // README shows the fast path hearing ICMP "port unreachable" at once
        // (sys::report_unreachable); the portable build hears nothing and
        // retries for half a minute instead.
        if cfg!(feature = "portable") && s.blocks == ["tftp-get-exit-codes"] {
            let why = "ICMP errors (read by the unix fast path only; this is --features portable)";
            return (*s, Outcome::Skipped(why.into()));
        }
        let missing: Vec<&str> = s.needs.iter().copied().filter(|p| !have[p]).collect();
        if !missing.is_empty() {
            return (*s, Outcome::Skipped(missing.join(", ")));
        }
        (*s, play(*s, &blocks))
    };
    // Checking runs every scenario at once (most of their time is waiting);
    // rewriting runs them one by one, so that what lands in README was not
    // slowed down by the other scenarios (no resends of a delayed ACK).
    let outcomes: Vec<(Scenario, Outcome)> = if update {
        SCENARIOS.iter().map(one).collect()
    } else {
        thread::scope(|scope| {
            let handles: Vec<_> = SCENARIOS
                .iter()
                .map(|s| scope.spawn(move || one(s)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|p| (SCENARIO, Outcome::Failed(format!("panicked: {p:?}"))))
                })
                .collect()
        })
    };

    let mut failures = Vec::new();
    let mut new_bodies = HashMap::new();
    for (s, outcome) in &outcomes {
        match outcome {
            Outcome::Skipped(missing) => eprintln!(
                "note: transcripts {:?} not checked: {missing} not installed",
                s.blocks
            ),
            Outcome::Failed(e) => failures.push(format!("scenario {:?} failed: {e}", s.blocks)),
            Outcome::Done(got) => {
                let block = |name: &str| {
                    blocks
                        .iter()
                        .find(|b| b.name.as_deref() == Some(name))
                        .unwrap()
                };
                let same = |name: &str| {
                    let actual = got.get(name).cloned().unwrap_or_default();
                    transcript::normalize(&block(name).text()) == transcript::normalize(&actual)
                };
                if update && !s.blocks.iter().all(|n| same(n)) {
                    // All blocks of one run together, so that a client's port
                    // is the same in the server's block and the client's.
                    for name in s.blocks {
                        new_bodies.insert(
                            block(name).fence,
                            got.get(*name).cloned().unwrap_or_default(),
                        );
                    }
                    continue;
                }
                for name in s.blocks {
                    let b = block(name);
                    let actual = got.get(*name).cloned().unwrap_or_default();
                    let expected = b.text();
                    if !same(name) {
                        failures.push(format!(
                            "README.md:{}: transcript {name:?} differs from a real run (- README, + run):\n{}",
                            b.fence + 1,
                            transcript::diff(&expected, &actual)
                        ));
                    }
                }
            }
        }
    }
    if update && !new_bodies.is_empty() {
        let rewritten = transcript::rewrite(&readme, &blocks, &new_bodies);
        std::fs::write(&path, rewritten).expect("write README.md");
        let mut lines: Vec<usize> = new_bodies.keys().map(|f| f + 1).collect();
        lines.sort();
        eprintln!("UPDATE_README=1: rewrote the blocks at README.md lines {lines:?}");
    }
    assert!(failures.is_empty(), "{}\n\n{HINT}", failures.join("\n\n"));
}

// --- the machinery itself -----------------------------------------------------

#[test]
fn a_console_block_without_a_marker_is_named_by_its_line() {
    let md = "intro\n\n```console\n$ tcp-client 127.0.0.1 8080 hi\nhi\n```\n\
              <!-- transcript: x -->\n```console\n$ true\n```\n\
              <!-- transcript: x -->\n```console\n$ true\n```\n\
              ```sh\ncargo test\n```\n";
    let blocks = transcript::parse(md);
    assert_eq!(blocks.len(), 4);
    assert_eq!(blocks[0].commands(), ["tcp-client 127.0.0.1 8080 hi"]);
    let problems = transcript::marker_problems(md, &blocks);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("README.md:3: console block without"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("\"x\" already marks the block at line 8"),
        "{problems:?}"
    );
}

#[test]
fn an_illustrative_block_must_be_called_so() {
    let quiet = "text\n<!-- transcript: illustrative -->\n```console\n$ x\n```\nmore\n";
    let said =
        "text\n<!-- transcript: illustrative -->\n```console\n$ x\n```\n(illustrative: a LAN)\n";
    assert_eq!(
        transcript::marker_problems(quiet, &transcript::parse(quiet)).len(),
        1
    );
    assert!(transcript::marker_problems(said, &transcript::parse(said)).is_empty());
}

#[test]
fn the_normalizer_keeps_everything_but_ports_times_and_rates() {
    let a = "listening on [::]:8080\n127.0.0.1:46718 connected\n[127.0.0.1:46718] hi\n\
             127.0.0.1:40000 connected\n+0.000182 → ACK 0\n\
             sent 1048576 bytes in 0.01 s (74.0 MiB/s), rtt 531.9µs\n";
    let b = "listening on [::]:8080\n127.0.0.1:51000 connected\n[127.0.0.1:51000] hi\n\
             127.0.0.1:33000 connected\n+1.250000 → ACK 0\n\
             sent 1048576 bytes in 12 s (0.1 MiB/s), rtt 2.0ms\n";
    assert_eq!(transcript::normalize(a), transcript::normalize(b));
    assert!(transcript::normalize(a).contains("127.0.0.1:<port 2> connected"));
    // A fixed port, a byte count, another client, or a different word is a difference.
    for changed in [
        a.replace("[::]:8080", "[::]:8081"),
        a.replace("1048576", "1048577"),
        a.replace("[127.0.0.1:46718] hi", "[127.0.0.1:40000] hi"),
        a.replace("ACK 0", "ACK 1"),
    ] {
        assert_ne!(
            transcript::normalize(a),
            transcript::normalize(&changed),
            "{changed}"
        );
    }
    let d = transcript::diff("a\nb\nc\n", "a\nx\nc\n");
    assert_eq!(d, "   a\n - b\n + x\n   c\n");
    let e =
        "received 1048576 bytes in 0.08 s (12.5 MiB/s), options: none, 7 retransmitted, rtt 40.6µs";
    let f = "received 1048576 bytes in 0.01 s (87.9 MiB/s), options: none, rtt 1.0ms";
    assert_eq!(transcript::normalize(e), transcript::normalize(f));
    assert_eq!(
        transcript::normalize("08:07:00.699 one\n"),
        transcript::normalize("23:59:59.000 one\n")
    );
    assert_eq!(
        transcript::normalize("chat (pid 20729) is listening"),
        transcript::normalize("chat (pid 7) is listening")
    );
    assert_ne!(
        transcript::normalize("08:07:00.699 one\n"),
        transcript::normalize("08:07:00.699 two\n")
    );
}

#[test]
fn servers_run_on_loopback_port_0() {
    use transcript::on_loopback;
    assert_eq!(
        on_loopback("tcp-server 8080 --once", 8080),
        ("tcp-server 0 --once --bind 127.0.0.1".into(), true)
    );
    assert_eq!(
        on_loopback("udp-echo serve", 8090),
        ("udp-echo serve 0 --bind 127.0.0.1".into(), true)
    );
    assert_eq!(
        on_loopback("tftp-serve . --port 6969", 6969),
        ("tftp-serve . --port 0 --bind 127.0.0.1".into(), true)
    );
    assert_eq!(
        on_loopback("tcp-server 0 --bind 127.0.0.1 --raw > got.bin", 44363),
        (
            "tcp-server 0 --bind 127.0.0.1 --raw > got.bin".into(),
            false
        )
    );
    assert_eq!(
        transcript::replace_number("127.0.0.1:8080 18080 8080", "8080", "1"),
        "127.0.0.1:1 18080 1"
    );
    // The README says where it runs.
    assert!(Path::new(&readme_path()).exists());
}
