//! The platform layer stays one layer: no `std::os`, `nix` or `libc` in `src/` outside `src/sys/`.
//!
//! Everything beyond std goes through `src/sys/` (`unix.rs` for the fast
//! paths, `portable.rs` for std alone), so that a Windows build is one module
//! away. This test reads every `.rs` file under `src/` (the binaries too,
//! comments too: a doc comment naming `std::os::unix::…` is where the next
//! import comes from) and names each line that slipped.

use std::path::{Path, PathBuf};

/// What this line names of the platform, if anything.
fn platform_word(line: &str) -> Option<&'static str> {
    // `std::os` in any spelling of a path: `std::os::fd`, `use std::{os::unix, …}`.
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("std::os") || compact.contains("core::os") {
        return Some("std::os");
    }
    for os in ["os::unix", "os::fd", "os::raw", "os::windows", "os::linux"] {
        if contains_path(&compact, os) {
            return Some("std::os");
        }
    }
    ["nix", "libc"]
        .into_iter()
        .find(|word| has_word(line, word))
}

/// `path` at the start of `text` or after a character that cannot end a
/// name (so `os::fd` in `{io, os::fd}` counts, `my_os::fd` does not).
fn contains_path(text: &str, path: &str) -> bool {
    text.match_indices(path).any(|(i, _)| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// `word` standing alone: not inside `Unix`, `phoenix` or `libcurl`.
fn has_word(line: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        before.is_none_or(|c| !is_name(c)) && after.is_none_or(|c| !is_name(c))
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_checker_tells_platform_names_from_words_that_contain_them() {
    for line in [
        "use std::os::fd::AsFd;",
        "use std::{io, os::unix::fs::symlink};",
        "    std :: os :: unix",
        "use nix::poll::ppoll;",
        "let e = nix::errno::Errno::EINTR;",
        "Some(n) if n == libc::EMFILE",
        "/// [`std::os::unix::ffi::OsStrExt`] turns bytes into names",
        "// nix wraps it without unsafe",
    ] {
        assert!(platform_word(line).is_some(), "missed: {line}");
    }
    for line in [
        "//! Exit codes follow the usual Unix tools",
        "let phoenix = 1; // libcurl, unixtime",
        "use crate::sys::os_str_from_bytes;",
        "let my_os::fd = 1;",
    ] {
        assert_eq!(platform_word(line), None, "flagged: {line}");
    }
}

#[test]
fn no_platform_calls_outside_src_sys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sys = root.join("src").join("sys");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.retain(|f| !f.starts_with(&sys));
    assert!(
        files.iter().any(|f| f.ends_with("src/bin/chat.rs")),
        "the walk found no binaries: {files:?}"
    );
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some(word) = platform_word(line) {
                let rel = file.strip_prefix(root).unwrap_or(file);
                found.push(format!(
                    "{}:{}: {word}: {}",
                    rel.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "platform calls belong in src/sys/ (unix.rs, or portable.rs with std alone); found:\n{}",
        found.join("\n")
    );
}
