//! The command line every binary shares: `--generate` man pages and shell completions, nc's flags answered with the socktools way, `-vv`, and `--version` on subcommands.

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::process::Output;

use tempfile::TempDir;
use util::*;

const BINARIES: [&str; 7] = [
    "tcp-client",
    "tcp-server",
    "udp-echo",
    "chat",
    "tftp-get",
    "tftp-put",
    "tftp-serve",
];

const SHELLS: [&str; 4] = ["bash", "zsh", "fish", "powershell"];

fn tool(name: &str, args: &[&str]) -> Output {
    run(cmd(name, args), b"")
}

/// Exit 2 with exactly one line on stderr, which contains every needle.
fn refused(name: &str, args: &[&str], needles: &[&str]) -> String {
    let out = tool(name, args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{name} {args:?}: one line: {err}");
    assert!(err.starts_with(&format!("{name}: ")), "{err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{name} {args:?}: no {needle:?} in {err}"
        );
    }
    assert!(!err.contains("tip:"), "{err}");
    err
}

/// The subcommands a binary lists in `--help` (none for most).
fn subcommands(name: &str) -> Vec<String> {
    let help = text(&tool(name, &["--help"]).stdout);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// Each `--help` page of `name`, its subcommands' included: the page's name
/// (`udp-echo serve`) and its text.
fn help_pages(name: &str) -> Vec<(String, String)> {
    let mut pages = vec![vec![]];
    pages.extend(subcommands(name).into_iter().map(|s| vec![s]));
    pages
        .into_iter()
        .map(|page| {
            let mut args: Vec<&str> = page.iter().map(String::as_str).collect();
            args.push("--help");
            let out = tool(name, &args);
            assert!(out.status.success(), "{name} {args:?}");
            let title = [name].into_iter().chain(page.iter().map(String::as_str));
            (title.collect::<Vec<_>>().join(" "), text(&out.stdout))
        })
        .collect()
}

/// Every long flag (`recv-encoding`, without dashes) and short letter the
/// binary's `--help` pages show, its subcommands' included.
fn flags(name: &str) -> (BTreeSet<String>, BTreeSet<char>) {
    let (mut long, mut short) = (BTreeSet::new(), BTreeSet::new());
    for (_, help) in help_pages(name) {
        for line in help.lines() {
            // Option lines: "  -x, --hex", "      --send-hex", "  -4".
            let Some(rest) = line.strip_prefix("  ") else {
                continue;
            };
            let mut words = rest
                .trim_start()
                .split([' ', ','])
                .filter(|w| !w.is_empty());
            let mut word = words.next().unwrap_or("");
            if let Some(c) = word.strip_prefix('-').filter(|w| w.len() == 1) {
                short.insert(c.chars().next().unwrap());
                word = words.next().unwrap_or("");
            }
            if let Some(l) = word.strip_prefix("--") {
                let l = l.trim_end_matches("...");
                if !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    long.insert(l.to_owned());
                }
            }
        }
    }
    assert!(
        long.contains("help") && long.contains("generate"),
        "{name}: {long:?}"
    );
    (long, short)
}

#[test]
fn every_man_page_renders_and_documents_every_flag() {
    let pages = TempDir::new().unwrap();
    let have_man = have_peer("man");
    for name in BINARIES {
        // No HOST or PORT: --generate needs none of the required arguments.
        let out = tool(name, &["--generate", "man"]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{name}: {}", text(&out.stderr));
        let roff = text(&out.stdout);
        // clap_mangen's quote-character definition (.ie/.el) comes first.
        let first = roff
            .lines()
            .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "));
        assert!(
            first.is_some_and(|l| l.starts_with(&format!(".TH {name} 1"))),
            "{name}: {first:?}"
        );
        let (long, short) = flags(name);
        for flag in &long {
            let escaped = format!("\\-\\-{}", flag.replace('-', "\\-"));
            assert!(roff.contains(&escaped), "{name}: man page lacks --{flag}");
        }
        for letter in &short {
            assert!(
                roff.contains(&format!("\\fB\\-{letter}")),
                "{name}: man page lacks -{letter}"
            );
        }
        for sub in subcommands(name) {
            let heading = format!(".SH \"{} {}\"", name.to_uppercase(), sub.to_uppercase());
            assert!(roff.contains(&heading), "{name}: no {heading}");
        }
        assert!(roff.contains(".SH EXAMPLES\n.nf\n"), "{name}: examples");
        if !have_man {
            continue;
        }
        let file = pages.path().join(format!("{name}.1"));
        fs::write(&file, &roff).unwrap();
        let mut man = peer_cmd("man");
        man.args(["--warnings", "-l"])
            .arg(&file)
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat");
        let shown = run(man, b"");
        let screen = text(&shown.stdout);
        assert!(
            shown.status.success(),
            "man -l {name}.1: {}",
            text(&shown.stderr)
        );
        assert!(
            shown.stderr.is_empty(),
            "man -l {name}.1 warns: {}",
            text(&shown.stderr)
        );
        assert!(
            screen.contains("SYNOPSIS") && screen.contains("OPTIONS"),
            "{screen}"
        );
        for flag in &long {
            assert!(
                screen.contains(&format!("--{flag}")),
                "{name}: --{flag} not shown:\n{screen}"
            );
        }
        assert!(
            !screen.contains("\\-"),
            "{name}: an escape shows on screen:\n{screen}"
        );
    }
}

#[test]
fn every_completion_script_knows_every_flag() {
    for name in BINARIES {
        let (long, _) = flags(name);
        for shell in SHELLS {
            let out = tool(name, &[&format!("--generate=complete-{shell}")]);
            assert!(
                out.status.success(),
                "{name} {shell}: {}",
                text(&out.stderr)
            );
            let script = text(&out.stdout);
            assert!(
                script.contains(name),
                "{name} {shell}: the script never names {name}"
            );
            for flag in &long {
                // fish spells them `-l recv-encoding`, the others `--recv-encoding`.
                let spelled = match shell {
                    "fish" => format!("-l {flag}"),
                    _ => format!("--{flag}"),
                };
                assert!(script.contains(&spelled), "{name} {shell}: no {spelled}");
            }
            for sub in subcommands(name) {
                assert!(script.contains(&sub), "{name} {shell}: no subcommand {sub}");
            }
        }
    }
}

#[test]
fn bash_loads_the_completion_and_completes_a_flag() {
    if !have_peer("bash") {
        return;
    }
    let script = text(&tool("tcp-server", &["--generate", "complete-bash"]).stdout);
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("tcp-server.bash");
    fs::write(&file, script).unwrap();
    // What bash does on `tcp-server --recv<Tab>`.
    let probe = format!(
        "source '{}' && f=$(complete -p tcp-server | sed -E 's/.*-F ([^ ]+).*/\\1/') && \
         COMP_WORDS=(tcp-server --recv) COMP_CWORD=1 COMP_LINE='tcp-server --recv' COMP_POINT=17 && \
         \"$f\" tcp-server --recv tcp-server && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let mut bash = peer_cmd("bash");
    bash.args(["--norc", "-c", &probe]);
    let out = run(bash, b"");
    succeeded(&out);
    assert_eq!(text(&out.stdout).trim(), "--recv-encoding");
}

#[test]
fn generate_is_listed_and_checks_its_kind() {
    let help = text(&tool("tftp-get", &["--help"]).stdout);
    assert!(help.contains("--generate <KIND>"), "{help}");
    refused(
        "tcp-client",
        &["--generate", "manpage"],
        &[
            "--generate needs one of: man, complete-bash, complete-zsh, complete-fish, complete-powershell",
        ],
    );
    refused("udp-echo", &["--generate"], &["--generate needs one of"]);
    // After `--`, it is a message like any other word.
    let out = tool("tcp-client", &["127.0.0.1", "0", "--", "--generate"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn nc_flags_get_the_socktools_way_instead_of_clap_tips() {
    for (name, args, needles) in [
        (
            "tcp-client",
            &["-l", "8080"][..],
            &["-l is nc's listen flag", "tcp-server PORT"][..],
        ),
        ("tcp-client", &["-lvp", "8080"], &["-l is nc's listen flag"]),
        (
            "tcp-client",
            &["--listen", "8080"],
            &["--listen is nc's listen flag"],
        ),
        (
            "tcp-server",
            &["-l", "8080"],
            &["tcp-server listens already: tcp-server PORT"],
        ),
        (
            "tcp-server",
            &["-p", "8080"],
            &["the port is the first argument: tcp-server PORT"],
        ),
        (
            "tcp-client",
            &["-p", "9", "host", "80"],
            &["tcp-client HOST PORT"],
        ),
        (
            "tcp-client",
            &["-u", "host", "9000"],
            &["-u is nc's UDP flag", "udp-echo"],
        ),
        (
            "udp-echo",
            &["serve", "-u", "9000"],
            &["udp-echo is UDP already"],
        ),
        (
            "udp-echo",
            &["serve", "-l", "9000"],
            &["udp-echo serve PORT"],
        ),
        ("chat", &["-l", "8000"], &["chat listen PORT"]),
        ("chat", &["connect", "-u", "h", "8000"], &["chat --udp"]),
        (
            "tcp-server",
            &["8080", "-k"],
            &["tcp-server keeps accepting connections already"],
        ),
        (
            "tcp-client",
            &["-N", "host", "80"],
            &["tcp-client shuts down its write side at stdin EOF already"],
        ),
        (
            "tcp-client",
            &["-zv", "host", "80"],
            &["-z is nc's port-scan flag", "tcp-client HOST PORT"],
        ),
        (
            "tcp-client",
            &["-c", "sh", "host", "80"],
            &["does not run programs"],
        ),
        (
            "tftp-get",
            &["-e", "x", "host", "f"],
            &["does not run programs"],
        ),
        ("tftp-get", &["-u", "host", "f"], &["TFTP is always UDP"]),
        ("tftp-serve", &["-l"], &["tftp-serve listens already"]),
        ("tcp-client", &["-C", "host", "80"], &["use --crlf"]),
    ] {
        refused(name, args, needles);
    }
    // Where the letter is a real flag it keeps its meaning: tftp-get's -p is the port.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let out = tool("tftp-get", &["127.0.0.1", "f", "-p", &port, "-o", "-"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Other unknown flags keep clap's own error.
    let out = tool("tcp-client", &["--bogus"]);
    failed(&out, 2, "unexpected argument '--bogus'");
}

#[test]
fn vv_is_refused_where_it_shows_nothing_more() {
    for (name, args) in [
        ("tcp-client", &["-vv", "127.0.0.1", "1"][..]),
        ("tcp-server", &["0", "-v", "-v"]),
        ("udp-echo", &["serve", "-vv", "0"]),
        ("udp-echo", &["send", "-vv", "127.0.0.1", "1", "x"]),
        ("chat", &["connect", "--verbose", "-v", "127.0.0.1", "1"]),
        ("chat", &["room", "-vv", "0"]),
        ("chat", &["listen", "-vv", "0"]),
    ] {
        refused(
            name,
            args,
            &["-vv: -v already shows every read and write with its size"],
        );
    }
    // In the TFTP tools -vv is --trace: one line per datagram.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let out = tool("tftp-get", &["-vv", &addr, "f", "-o", "-"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("→ ") && err.contains("RRQ \"f\""), "{err}");
}

#[test]
fn subcommands_answer_version() {
    for args in [
        &["udp-echo", "serve"][..],
        &["udp-echo", "send"],
        &["chat", "room"],
        &["chat", "listen"],
    ] {
        let out = tool(args[0], &[args[1], "--version"]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let said = text(&out.stdout);
        assert!(said.contains(env!("CARGO_PKG_VERSION")), "{args:?}: {said}");
    }
}

/// README promises it: every tool, and each of its subcommands, ends its
/// `--help` with examples to copy, each a command of that tool.
#[test]
fn every_help_page_has_examples() {
    for name in BINARIES {
        for (page, help) in help_pages(name) {
            let examples: Vec<&str> = help
                .lines()
                .skip_while(|l| l.trim() != "Examples:")
                .skip(1)
                .take_while(|l| l.starts_with("  "))
                .collect();
            assert!(
                examples
                    .iter()
                    .any(|l| l.trim_start().starts_with(&format!("{name} "))),
                "{page} --help: no Examples section with a {name} command:\n{help}"
            );
        }
    }
}

#[test]
fn the_echo_rule_is_told_by_the_servers_that_echo_and_only_there() {
    const RULE: &str = "Echo and encodings: when --recv-encoding and --send-encoding are the same";
    for (name, args, echoes) in [
        ("tcp-server", &["--help"][..], true),
        ("udp-echo", &["serve", "--help"][..], true),
        ("tcp-client", &["--help"][..], false),
        ("udp-echo", &["send", "--help"][..], false),
        ("chat", &["listen", "--help"][..], false),
        ("chat", &["connect", "--help"][..], false),
    ] {
        let help = text(&tool(name, args).stdout);
        // (Help text is wrapped to the terminal: compare it unwrapped.)
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(flat.contains(RULE), echoes, "{name} {args:?}:\n{help}");
        assert_eq!(
            flat.contains("re-encoded"),
            echoes,
            "{name} {args:?}:\n{help}"
        );
        assert!(
            flat.contains(
                "--send-encoding <LABEL> Encoding of the text we send (overrides --encoding)"
            ),
            "{name} {args:?}:\n{help}"
        );
    }
}

/// README.md as text.
fn readme() -> String {
    fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// README's commands of our tools: inline `code` spans and the `$ ` lines of
/// its console blocks that start with one of [`BINARIES`].
fn readme_commands(readme: &str) -> Vec<&str> {
    readme
        .lines()
        .flat_map(|line| match line.strip_prefix("$ ") {
            Some(cmd) => vec![cmd],
            None => line.split('`').skip(1).step_by(2).collect(),
        })
        .filter(|span| {
            span.split_whitespace()
                .next()
                .is_some_and(|w| BINARIES.contains(&w))
        })
        .collect()
}

/// README's commands, in prose, the lesson map and the Chinese section as
/// well as in transcripts (which tests/readme.rs runs), use only flags the
/// tool has: a renamed flag cannot linger in the text.
#[test]
fn readme_commands_use_only_real_flags() {
    let readme = readme();
    let known: Vec<(&str, BTreeSet<String>)> = BINARIES.iter().map(|&b| (b, flags(b).0)).collect();
    let mut checked = 0;
    let mut unknown = Vec::new();
    for span in readme_commands(&readme) {
        let mut words = span.split_whitespace();
        let Some((tool, long)) = words
            .next()
            .and_then(|w| known.iter().find(|(b, _)| *b == w))
        else {
            continue;
        };
        for word in words.take_while(|w| !matches!(*w, "|" | ">" | "<" | "#" | "&&")) {
            let Some(flag) = word.strip_prefix("--") else {
                continue;
            };
            let flag = flag.split('=').next().unwrap();
            if flag.is_empty() || !flag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                continue;
            }
            checked += 1;
            if !long.contains(flag) {
                unknown.push(format!("{tool} --{flag}: {span}"));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} flags found: is the scan broken?"
    );
    assert!(
        unknown.is_empty(),
        "flags README uses that the tools lack:\n{}",
        unknown.join("\n")
    );
}

/// A flag given to a subcommand that does not take it, or before the
/// subcommand, is answered with where it goes, not clap's tip to pass it as
/// a value.
#[test]
fn a_flag_in_the_wrong_place_says_where_it_goes() {
    refused(
        "chat",
        &["room", "--name", "x"],
        &["--name is a flag of chat listen and chat connect, not of chat room"],
    );
    refused(
        "chat",
        &["listen", "--max-users", "3"],
        &["--max-users is a flag of chat room, not of chat listen"],
    );
    refused(
        "chat",
        &["-v", "listen"],
        &["-v goes after the subcommand: chat listen -v"],
    );
    refused(
        "udp-echo",
        &["--raw", "send", "127.0.0.1", "1"],
        &["--raw goes after the subcommand: udp-echo send --raw"],
    );
}

/// README's commands are written in the order the tools' help examples write
/// them: a command with the same words as an example, in another order
/// (`tftp-serve . --port 6969` for the help's `tftp-serve --port 6969 .`), is
/// one more thing for a learner to wonder about.
#[test]
fn readme_commands_follow_the_help_examples_order() {
    let readme = readme();
    let mut examples: Vec<Vec<String>> = Vec::new();
    for name in BINARIES {
        for (_, help) in help_pages(name) {
            for line in help.lines() {
                let Some(cmd) = line.strip_prefix("  ") else {
                    continue;
                };
                if !cmd.starts_with(&format!("{name} ")) {
                    continue;
                }
                // The command ends where the description starts: two spaces.
                let cmd = cmd.split("  ").next().unwrap();
                examples.push(cmd.split_whitespace().map(str::to_owned).collect());
            }
        }
    }
    assert!(
        examples.len() > 30,
        "only {} examples found",
        examples.len()
    );
    let sorted = |w: &[String]| {
        let mut w = w.to_vec();
        w.sort();
        w
    };
    let mut misordered = Vec::new();
    for span in readme_commands(&readme) {
        let words: Vec<String> = span.split_whitespace().map(str::to_owned).collect();
        if words.len() < 3 {
            continue;
        }
        if let Some(example) = examples
            .iter()
            .find(|e| **e != words && sorted(e) == sorted(&words))
        {
            misordered.push(format!("{span}  (help: {})", example.join(" ")));
        }
    }
    assert!(
        misordered.is_empty(),
        "README writes these in another order than the help examples:\n{}",
        misordered.join("\n")
    );
}

/// The lesson map's row for lesson 13 (黏包) tells what the tools show for it:
/// one read is one record, `--timestamps`, and a datagram is one record.
#[test]
fn lesson_map_row_13_says_one_read_is_one_record() {
    let readme = readme();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| 13 |"))
        .expect("lesson 13's row in the lesson map");
    for needle in [
        "one read is one record",
        "`--timestamps`",
        "one datagram as one record",
        "--framing line",
    ] {
        assert!(row.contains(needle), "no {needle:?} in {row}");
    }
}
