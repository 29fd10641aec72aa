//! What `chat connect` and `chat room` both speak: the room's greeting, its commands and the rules for names.
//!
//! The room ([`crate::chat::room`]) speaks by these rules and the client
//! ([`crate::chat::session`]) reads by them: `chat connect` recognises a room
//! by its [`GREETING`], and takes a peer's `/nick NAME` only when the room
//! would ([`check_name`], [`looks_alike`]). Both import them from here, so the
//! client does not depend on the server.
//!
//! # The protocol
//!
//! Lines end with `\n` (a `\r` before it is dropped); everything the room sends is
//! a line. A new member's first line starts with [`GREETING`]; then comes a
//! line listing who is here. Room notices start with `* `, relayed messages are
//! `name> text`. Commands: `/nick NAME`, `/who`, `/enc LABEL`, `/quit`, `/help`;
//! a line starting with `//` is a message starting with `/`. See [`parse_input`].

use crate::message::{escape, is_invisible};

/// The start of the first line the room sends to a new member. `chat connect`
/// recognises a room by it (and nc users read it as a welcome).
pub const GREETING: &str = "* welcome to the chat room";

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// What a line a member typed asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// An empty line: nothing to relay.
    Empty,
    /// A message for everyone else (a `//` line arrives here with one `/` removed).
    Message(&'a str),
    /// A `/command`.
    Command(Command<'a>),
}

/// The room's commands. Their names are matched ignoring ASCII case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/nick NAME`: take another name (empty: show the usage).
    Nick(&'a str),
    /// `/who`: list the members.
    Who,
    /// `/enc LABEL`: declare one's encoding (empty: show the current one).
    Enc(&'a str),
    /// `/quit`: leave.
    Quit,
    /// `/help`: list the commands.
    Help,
    /// Any other `/word` (the word, without its `/`).
    Unknown(&'a str),
}

/// Classify one line of text.
///
/// ```
/// use socktools::chat::protocol::{Command, Input, parse_input};
/// assert_eq!(parse_input("hello"), Input::Message("hello"));
/// assert_eq!(parse_input("/nick  小明 "), Input::Command(Command::Nick("小明")));
/// assert_eq!(parse_input("//etc is a folder"), Input::Message("/etc is a folder"));
/// assert_eq!(parse_input(""), Input::Empty);
/// ```
pub fn parse_input(line: &str) -> Input<'_> {
    if line.is_empty() {
        return Input::Empty;
    }
    if line.starts_with("//") {
        return Input::Message(&line[1..]);
    }
    let Some(cmd) = line.strip_prefix('/') else {
        return Input::Message(line);
    };
    let (word, arg) = match cmd.find(char::is_whitespace) {
        Some(i) => (&cmd[..i], cmd[i..].trim()),
        None => (cmd, ""),
    };
    Input::Command(match word.to_ascii_lowercase().as_str() {
        "nick" => Command::Nick(arg),
        "who" => Command::Who,
        "enc" => Command::Enc(arg),
        "quit" => Command::Quit,
        "help" => Command::Help,
        _ => Command::Unknown(word),
    })
}

/// Why a name cannot be taken. The texts are what the member reads, after
/// `cannot rename to "NAME": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty, or more than [`MAX_NAME_CHARS`] characters.
    #[error("a name has 1 to 32 characters")]
    Length,
    /// Contains a space, tab or other whitespace.
    #[error("a name cannot contain spaces")]
    Whitespace,
    /// Contains a control character.
    #[error("a name cannot contain control characters")]
    Control,
    /// Contains a character that does not show, or that changes the layout of
    /// the line (shown here made visible, as `\u{200b}`).
    #[error(
        "a name cannot contain invisible or formatting characters such as {0}; choose one without them"
    )]
    Invisible(String),
    /// Starts with `*` or a look-alike, as the room's notices do.
    #[error(
        "a name cannot start with \"*\" or a look-alike: the room's notices start with \"* \"; choose another"
    )]
    Notice,
    /// Contains `>` or a look-alike, which ends the name in `name> text`.
    #[error(
        "a name cannot contain \">\" or a look-alike: messages are shown as \"name> text\"; choose another"
    )]
    Arrow,
    /// The room (or the `chat` client) uses this name, or one that looks like it.
    #[error("\"{0}\" is reserved: the room and chat clients use it; choose another name")]
    Reserved(&'static str),
    /// Another member has it (names are compared ignoring case).
    #[error("that name is taken")]
    Taken,
    /// Looks like the name of a member who is here ([`looks_alike`]).
    #[error("it looks like \"{0}\", who is already here; choose another name")]
    LooksLike(String),
}

/// Check a name's form (not whether it is taken or reserved): 1–32
/// characters; no whitespace (so a name is one word after `/who`); nothing
/// that does not show as itself (control characters, [`is_invisible`] ones,
/// variation selectors, the blank U+2800), so that what readers see is the
/// whole name; and neither `>` nor a leading `*`, nor look-alikes of them
/// (`＞`, `›`, `∗`), so that a name cannot make `name> text` look like a
/// notice or like someone else's message.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    if name.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if let Some(c) = name.chars().find(|&c| hidden_in_name(c)) {
        return Err(NameError::Invisible(escape(c)));
    }
    let skeleton: String = unicode_security::skeleton(name).collect();
    // Some single characters show as several words (U+FDFA, an Arabic ligature).
    if skeleton.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.starts_with('*') || skeleton.starts_with('*') {
        return Err(NameError::Notice);
    }
    if name.contains('>') || skeleton.contains('>') {
        return Err(NameError::Arrow);
    }
    Ok(())
}

/// Shows nothing of itself: more than messages escape, since a name has no
/// reason to hold a variation selector (an emoji drawn as text or picture is
/// still the same name to the reader, so two such names could not be told apart).
fn hidden_in_name(c: char) -> bool {
    // The variation selectors (Mongolian, standard, ideographic), and the
    // braille blank, a "letter" that shows as a space.
    is_invisible(c)
        || matches!(
            c,
            '\u{180b}'..='\u{180d}'
                | '\u{180f}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{e0100}'..='\u{e01ef}'
                | '\u{2800}'
        )
}

/// Could a reader mistake one name for the other? Names are compared ignoring
/// case and by their UTS #39 skeletons, which map look-alikes to one
/// prototype (Cyrillic `а` to Latin `a`, `0` to `O`, `rn` and `m` alike) and
/// drop default-ignorable characters. Case is folded both before and after
/// the mapping, since look-alikes and case interact: `user-10` and `user-1O`
/// are the same skeleton, `user-1o` and `user-1O` the same name ignoring case.
pub fn looks_alike(a: &str, b: &str) -> bool {
    same_name(a, b) || {
        let [a1, a2] = fold(a);
        let [b1, b2] = fold(b);
        a1 == b1 || a2 == b2
    }
}

/// The two keys [`looks_alike`] compares: the skeleton of the lowercased name,
/// and that of its skeleton lowercased.
fn fold(name: &str) -> [String; 2] {
    use unicode_security::skeleton;
    let lower: String = skeleton(&name.to_lowercase()).collect();
    let skel: String = skeleton(name).collect();
    [lower, skeleton(&skel.to_lowercase()).collect()]
}

/// Are these the same name? `Alice` and `alice` are, or people could not tell
/// who is talking.
pub(super) fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        use Command::*;
        let cmd = |s| match parse_input(s) {
            Input::Command(c) => c,
            other => panic!("{s:?} gave {other:?}"),
        };
        assert_eq!(cmd("/nick alice"), Nick("alice"));
        assert_eq!(cmd("/NICK\talice  "), Nick("alice"));
        assert_eq!(cmd("/nick a b"), Nick("a b"));
        assert_eq!(cmd("/nick"), Nick(""));
        assert_eq!(cmd("/who"), Who);
        assert_eq!(cmd("/who cares"), Who);
        assert_eq!(cmd("/enc gbk"), Enc("gbk"));
        assert_eq!(cmd("/enc"), Enc(""));
        assert_eq!(cmd("/quit"), Quit);
        assert_eq!(cmd("/Help"), Help);
        assert_eq!(cmd("/frobnicate now"), Unknown("frobnicate"));
        assert_eq!(cmd("/"), Unknown(""));
        assert_eq!(parse_input("//"), Input::Message("/"));
        assert_eq!(parse_input("//nick x"), Input::Message("/nick x"));
        assert_eq!(parse_input(" /nick x"), Input::Message(" /nick x"));
        assert_eq!(parse_input("  "), Input::Message("  "));
        assert_eq!(parse_input(""), Input::Empty);
    }

    #[test]
    fn names() {
        assert_eq!(check_name("alice"), Ok(()));
        assert_eq!(check_name("小明"), Ok(()));
        assert_eq!(check_name(&"名".repeat(32)), Ok(()));
        assert_eq!(check_name(&"名".repeat(33)), Err(NameError::Length));
        assert_eq!(check_name(""), Err(NameError::Length));
        assert_eq!(check_name("a b"), Err(NameError::Whitespace));
        assert_eq!(check_name("a\u{3000}b"), Err(NameError::Whitespace));
        assert_eq!(check_name("a\x1bb"), Err(NameError::Control));
        assert!(same_name("Alice", "alice"));
        assert!(!same_name("alice", "alice2"));
    }

    #[test]
    fn names_that_hide_or_forge_are_refused() {
        use NameError::*;
        assert_eq!(check_name("Zoë"), Ok(()));
        assert_eq!(check_name("Zoe\u{308}"), Ok(()));
        assert_eq!(check_name("user-12"), Ok(()));
        assert_eq!(check_name("😀"), Ok(()));
        assert_eq!(check_name("a*b"), Ok(()));
        let invisible = |s: &str| Err(Invisible(s.to_string()));
        assert_eq!(check_name("b\u{200b}ob"), invisible("\\u{200b}"));
        assert_eq!(check_name("\u{115f}"), invisible("\\u{115f}"));
        assert_eq!(check_name("\u{1160}x"), invisible("\\u{1160}"));
        assert_eq!(check_name("\u{3164}"), invisible("\\u{3164}"));
        assert_eq!(check_name("\u{ffa0}"), invisible("\\u{ffa0}"));
        assert_eq!(check_name("eve\u{202e}"), invisible("\\u{202e}"));
        assert_eq!(check_name("a\u{ad}b"), invisible("\\xad"));
        assert_eq!(check_name("❤\u{fe0f}"), invisible("\\u{fe0f}"));
        assert_eq!(check_name("\u{2800}"), invisible("\\u{2800}"));
        assert_eq!(check_name("a\u{2028}b"), Err(Whitespace));
        assert_eq!(check_name("a\u{1680}b"), Err(Whitespace));
        assert_eq!(check_name("\u{fdfa}"), Err(Whitespace));
        assert_eq!(check_name("*"), Err(Notice));
        assert_eq!(check_name("*alice"), Err(Notice));
        assert_eq!(check_name("\u{2217}"), Err(Notice), "asterisk operator");
        assert_eq!(check_name("\u{ff0a}x"), Err(Notice), "fullwidth asterisk");
        assert_eq!(check_name("alice>"), Err(Arrow));
        assert_eq!(check_name("a>b"), Err(Arrow));
        assert_eq!(check_name("alice\u{ff1e}"), Err(Arrow), "fullwidth >");
        assert_eq!(
            check_name("alice\u{203a}"),
            Err(Arrow),
            "single angle quote"
        );
    }

    #[test]
    fn look_alike_names() {
        assert!(looks_alike("alice", "\u{430}lice"), "Cyrillic a");
        assert!(looks_alike("alice", "\u{430}LICE"));
        assert!(looks_alike("alice", "\u{ff41}lice"), "fullwidth a");
        assert!(looks_alike("mary", "rnary"));
        assert!(looks_alike("bob", "b\u{200b}ob"));
        assert!(looks_alike("server", "\u{455}erver"), "Cyrillic dze");
        assert!(looks_alike("user-10", "user-1O"));
        assert!(looks_alike("user-10", "user-1o"));
        assert!(looks_alike("Zoë", "zoe\u{308}"));
        assert!(!looks_alike("alice", "alice2"));
        assert!(!looks_alike("小明", "小红"));
        assert!(!looks_alike("user-1", "user-2"));
        assert!(!looks_alike("user-1", "user-11"));
        // The names the room gives never look like one another.
        let names: Vec<String> = (1..=300).map(|n| format!("user-{n}")).collect();
        for (i, a) in names.iter().enumerate() {
            assert_eq!(check_name(a), Ok(()));
            for b in &names[i + 1..] {
                assert!(!looks_alike(a, b), "{a} {b}");
            }
        }
    }
}
