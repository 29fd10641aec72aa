//! The line being typed, kept intact while the peer's messages arrive (chat on a terminal).
//!
//! The notes' chat programs take turns: `input()` blocks, so nothing can arrive
//! while you type. A full-duplex chat prints the peer's message *whenever* it
//! comes, and in the terminal's normal ("cooked") mode that lands in the middle
//! of your half-typed line: the kernel echoes what you type, we print the
//! message, and the two are mixed on screen.
//!
//! The cure every chat program uses: switch the terminal out of canonical mode
//! and turn its echo off ([`RawMode`]), keep the typed line ourselves
//! ([`Editor`]), and whenever a message arrives, erase the line, print the
//! message, and draw the line again ([`Screen`]). Ctrl-C still works (signals
//! stay on), and the terminal is put back as it was when the guard is dropped.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::message::push_visible;

/// Erase the current screen line and go back to its start.
const CLEAR_LINE: &[u8] = b"\r\x1b[K";

/// What a key press did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The line changed: draw it again.
    Changed,
    /// Enter: here is the finished line.
    Line(String),
    /// Ctrl-D on an empty line: the user is done (end of input).
    End,
}

/// A one-line editor fed byte by byte: printable text, Backspace, Ctrl-U
/// (erase the line), Ctrl-W (erase a word), Enter, and Ctrl-D on an empty line.
/// Escape sequences (arrow keys and the like) are swallowed whole, so they
/// never end up in a message.
#[derive(Debug, Default)]
pub struct Editor {
    prompt: String,
    line: String,
    /// The first bytes of a UTF-8 character still being typed.
    pending: Vec<u8>,
    escape: Escape,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [ …` or `ESC O …`, until the final byte.
    Sequence,
}

impl Editor {
    /// An empty line shown after `prompt`.
    pub fn new(prompt: impl Into<String>) -> Self {
        Editor {
            prompt: prompt.into(),
            ..Editor::default()
        }
    }

    /// What has been typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Feed one byte read from the terminal.
    pub fn feed(&mut self, byte: u8) -> Option<Edit> {
        match self.escape {
            Escape::Start => {
                self.escape = if matches!(byte, b'[' | b'O') {
                    Escape::Sequence
                } else {
                    Escape::None
                };
                return None;
            }
            Escape::Sequence => {
                // Parameters are 0x20–0x3f; the final byte ends the sequence.
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return None;
            }
            Escape::None => {}
        }
        match byte {
            b'\r' | b'\n' => {
                self.pending.clear();
                Some(Edit::Line(std::mem::take(&mut self.line)))
            }
            0x7f | 0x08 => {
                self.pending.clear();
                self.line.pop().map(|_| Edit::Changed)
            }
            0x15 => {
                self.line.clear();
                Some(Edit::Changed)
            }
            0x17 => {
                let kept = self.line.trim_end().rfind(' ').map_or(0, |i| i + 1);
                self.line.truncate(kept);
                Some(Edit::Changed)
            }
            0x04 if self.line.is_empty() => Some(Edit::End),
            0x0c => Some(Edit::Changed),
            0x1b => {
                self.escape = Escape::Start;
                None
            }
            b'\t' => {
                self.line.push('\t');
                Some(Edit::Changed)
            }
            0x00..=0x1f => None,
            _ => self.utf8(byte),
        }
    }

    /// Collect the bytes of one UTF-8 character; a byte that cannot continue
    /// it starts over, so a stray byte never blocks the keyboard.
    fn utf8(&mut self, byte: u8) -> Option<Edit> {
        let continuation = (0x80..0xc0).contains(&byte);
        if continuation && self.pending.is_empty() {
            return None;
        }
        if !continuation {
            self.pending.clear();
        }
        self.pending.push(byte);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                self.line.push_str(s);
                self.pending.clear();
                Some(Edit::Changed)
            }
            Err(e) if e.error_len().is_none() && self.pending.len() < 4 => None,
            Err(_) => {
                self.pending.clear();
                None
            }
        }
    }

    /// Erase the screen line and draw prompt and line again.
    pub fn render(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(CLEAR_LINE);
        out.extend_from_slice(self.prompt.as_bytes());
        push_visible(&self.line, out);
    }
}

/// The terminal's settings, restored on drop.
pub struct RawMode<F: AsFd> {
    fd: F,
    saved: nix::sys::termios::Termios,
}

impl<F: AsFd> RawMode<F> {
    /// Turn off line buffering and echo on the terminal `fd` (signals such as
    /// Ctrl-C stay on). Fails when `fd` is not a terminal.
    pub fn enable(fd: F) -> io::Result<Self> {
        use nix::sys::termios::{
            LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr,
        };
        let saved = tcgetattr(fd.as_fd())?;
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::IEXTEN);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        tcsetattr(fd.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl<F: AsFd> Drop for RawMode<F> {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            self.fd.as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

/// Where a chat writes what it shows, shared by the thread that reads the
/// keyboard and the one that reads the socket. With an [`Editor`] (a terminal)
/// every message is printed above the line being typed; without one (a pipe)
/// messages are simply written out.
#[derive(Clone)]
pub struct Screen {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    out: Box<dyn Write + Send>,
    editor: Option<Editor>,
}

impl Screen {
    /// A plain output: messages only, no line editing.
    pub fn plain(out: impl Write + Send + 'static) -> Self {
        Self::with(out, None)
    }

    /// A terminal: messages above the line being typed after `prompt`.
    pub fn terminal(out: impl Write + Send + 'static, prompt: &str) -> Self {
        Self::with(out, Some(Editor::new(prompt)))
    }

    fn with(out: impl Write + Send + 'static, editor: Option<Editor>) -> Self {
        Screen {
            inner: Arc::new(Mutex::new(Inner {
                out: Box::new(out),
                editor,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Does this screen edit a line (is it a terminal)?
    pub fn is_terminal(&self) -> bool {
        self.lock().editor.is_some()
    }

    /// Show `text` (whole lines, each ending in `\n`) above the line being typed.
    pub fn show(&self, text: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        let Inner { out, editor } = &mut *inner;
        match editor {
            None => out.write_all(text)?,
            Some(ed) => {
                let mut buf = Vec::with_capacity(text.len() + 64);
                buf.extend_from_slice(CLEAR_LINE);
                buf.extend_from_slice(text);
                ed.render(&mut buf);
                out.write_all(&buf)?;
            }
        }
        out.flush()
    }

    /// Feed keyboard bytes to the editor and redraw. A finished line stays on
    /// screen (as `prompt text`) and the returned edits carry it.
    pub fn keys(&self, bytes: &[u8]) -> io::Result<Vec<Edit>> {
        let mut inner = self.lock();
        let Inner { out, editor } = &mut *inner;
        let Some(ed) = editor else {
            return Ok(Vec::new());
        };
        let mut edits = Vec::new();
        let mut buf = Vec::new();
        for &b in bytes {
            match ed.feed(b) {
                None => {}
                Some(Edit::Line(line)) => {
                    buf.extend_from_slice(CLEAR_LINE);
                    buf.extend_from_slice(ed.prompt.as_bytes());
                    push_visible(&line, &mut buf);
                    buf.extend_from_slice(b"\n");
                    edits.push(Edit::Line(line));
                }
                Some(Edit::End) => {
                    edits.push(Edit::End);
                    break;
                }
                Some(Edit::Changed) => {}
            }
        }
        ed.render(&mut buf);
        out.write_all(&buf)?;
        out.flush()?;
        Ok(edits)
    }

    /// Leave the terminal tidy: erase the unfinished line.
    pub fn close(&self) {
        let mut inner = self.lock();
        if inner.editor.is_some() {
            let _ = inner.out.write_all(CLEAR_LINE);
            let _ = inner.out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SharedBuf;

    fn feed(ed: &mut Editor, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().filter_map(|&b| ed.feed(b)).collect()
    }

    #[test]
    fn typing_and_enter() {
        let mut ed = Editor::new("me> ");
        let edits = feed(&mut ed, "你好 ok\r".as_bytes());
        assert_eq!(edits.last(), Some(&Edit::Line("你好 ok".into())));
        assert_eq!(ed.line(), "");
    }

    #[test]
    fn backspace_removes_a_whole_character() {
        let mut ed = Editor::new("");
        feed(&mut ed, "ab你".as_bytes());
        feed(&mut ed, &[0x7f]);
        assert_eq!(ed.line(), "ab");
        feed(&mut ed, &[0x08, 0x7f, 0x7f]);
        assert_eq!(ed.line(), "");
    }

    #[test]
    fn ctrl_u_and_ctrl_w() {
        let mut ed = Editor::new("");
        feed(&mut ed, b"hello big world");
        feed(&mut ed, &[0x17]);
        assert_eq!(ed.line(), "hello big ");
        feed(&mut ed, &[0x17]);
        assert_eq!(ed.line(), "hello ");
        feed(&mut ed, &[0x15]);
        assert_eq!(ed.line(), "");
    }

    #[test]
    fn ctrl_d_ends_only_an_empty_line() {
        let mut ed = Editor::new("");
        assert_eq!(feed(&mut ed, b"x\x04"), vec![Edit::Changed]);
        assert_eq!(ed.line(), "x");
        assert_eq!(feed(&mut ed, b"\x7f\x04").last(), Some(&Edit::End));
    }

    #[test]
    fn escape_sequences_are_swallowed() {
        let mut ed = Editor::new("");
        feed(&mut ed, b"a\x1b[A\x1b[1;5Cb\x1bOPc\x1bxd");
        assert_eq!(ed.line(), "abcd");
    }

    #[test]
    fn broken_utf8_never_blocks_typing() {
        let mut ed = Editor::new("");
        feed(&mut ed, b"\xe4\xbd"); // half of 你
        feed(&mut ed, b"a\xff\x80b");
        assert_eq!(ed.line(), "ab");
    }

    #[test]
    fn messages_are_printed_above_the_typed_line() {
        let buf = SharedBuf::default();
        let screen = Screen::terminal(buf.clone(), "me> ");
        assert!(screen.keys(b"hel").unwrap().is_empty());
        screen.show(b"peer> hi\n").unwrap();
        let shown = buf.text();
        assert!(
            shown.ends_with("\r\x1b[Kpeer> hi\n\r\x1b[Kme> hel"),
            "{shown:?}"
        );
        let edits = screen.keys(b"lo\r").unwrap();
        assert_eq!(edits, vec![Edit::Line("hello".into())]);
        assert!(buf.text().ends_with("\r\x1b[Kme> hello\n\r\x1b[Kme> "));
    }

    #[test]
    fn a_plain_screen_only_prints_messages() {
        let buf = SharedBuf::default();
        let screen = Screen::plain(buf.clone());
        screen.show(b"peer> hi\n").unwrap();
        assert!(screen.keys(b"typed\r").unwrap().is_empty());
        screen.close();
        assert_eq!(buf.text(), "peer> hi\n");
    }
}
