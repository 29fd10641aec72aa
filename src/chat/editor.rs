//! The line being typed, kept intact while the peer's messages arrive (chat on a terminal).
//!
//! The notes' chat programs take turns: `input()` blocks, so nothing can arrive
//! while you type. A full-duplex chat prints the peer's message *whenever* it
//! comes, and in the terminal's normal ("cooked") mode that lands in the middle
//! of your half-typed line: the kernel echoes what you type, we print the
//! message, and the two are mixed on screen.
//!
//! The cure every chat program uses: take the terminal out of cooked mode, keep
//! the typed line in the program, and whenever a message arrives, erase the
//! line, print the message, and draw the line again. Doing that right is a
//! whole library's work: a line wider than the terminal wraps onto several
//! rows (all of them must be erased, not only the last), Chinese characters
//! take two columns, and people expect Left, Right, Home, End and Up (the
//! previous line) to work. [rustyline] does all of it; its *external printer*
//! prints a message above the line being edited. [`LineEditor`] reads lines
//! with it, and [`Screen`] hands it what the peer said.
//!
//! One thing rustyline cannot do is stop reading when the chat ends for
//! another reason (the peer left): its `readline()` only returns for a key.
//! [`Keyboard::stop`] makes it return the way Ctrl-C does (a SIGINT to the
//! thread that reads), so the terminal is put back and the cursor is on a
//! fresh line before the closing message is printed.
//!
//! [rustyline]: https://docs.rs/rustyline

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, ExternalPrinter, Helper};

use crate::sys::{SavedTerminal, quiet_terminal, restore_terminal};

/// How long [`Keyboard::stop`] and [`Screen::close`] wait for the editor.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// What one `readline` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Enter: a finished line (it stays on screen after the prompt).
    Line(String),
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D on an empty line: the user is done.
    End,
}

/// Keeps an eye on the line being edited: rustyline asks its helper for a
/// hint after every change, which tells us whether the line is empty.
#[derive(Default)]
struct Watcher {
    empty: Arc<AtomicBool>,
}

impl Helper for Watcher {}
impl Completer for Watcher {
    type Candidate = String;
}
impl Highlighter for Watcher {}
impl Validator for Watcher {}
impl Hinter for Watcher {
    type Hint = String;

    fn hint(&self, line: &str, _: usize, _: &rustyline::Context<'_>) -> Option<String> {
        self.empty.store(line.is_empty(), Ordering::SeqCst);
        None
    }
}

/// Lines typed on a terminal, with editing and history.
pub struct LineEditor {
    editor: Editor<Watcher, DefaultHistory>,
    /// The line being edited is empty (see [`Watcher`]).
    empty: Arc<AtomicBool>,
    prompt: String,
    /// The terminal's settings before we touched them: put back when the
    /// editor is dropped, or by [`Keyboard::stop`] should rustyline not return.
    saved: Option<SavedTerminal>,
}

impl Drop for LineEditor {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            restore_terminal(saved);
        }
    }
}

impl LineEditor {
    /// An editor on this process's terminal (stdin and stdout) showing
    /// `prompt`, and the [`Screen`] that prints above it. None when the
    /// terminal cannot edit lines (not a terminal, or `TERM=dumb`): then read
    /// stdin line by line.
    pub fn open(prompt: &str) -> Option<(LineEditor, Screen)> {
        let config = Config::builder()
            // A pasted block is several lines, each sent as its own message,
            // as when they are typed.
            .bracketed_paste(false)
            .auto_add_history(true)
            .build();
        let mut editor = Editor::with_config(config).ok()?;
        let watcher = Watcher::default();
        let empty = watcher.empty.clone();
        editor.set_helper(Some(watcher));
        let printer = editor.create_external_printer().ok()?;
        // Between two lines rustyline puts the terminal back as it found it.
        // Were that the usual cooked mode, keys typed in that instant (the next
        // line, typed ahead) would be echoed by the terminal itself, `^[[A` for
        // Up, on the screen rustyline draws. So it finds the terminal already
        // quiet: no echo, no line buffering, no CR-to-NL; Ctrl-C still a signal.
        let saved = quiet_terminal();
        let screen = Screen::terminal(printer, io::stdout(), io::stderr());
        Some((
            LineEditor {
                editor,
                empty,
                prompt: prompt.to_string(),
                saved,
            },
            screen,
        ))
    }

    /// Wait for the next line.
    pub fn read(&mut self) -> io::Result<Typed> {
        self.empty.store(true, Ordering::SeqCst);
        match self.editor.readline(&self.prompt) {
            Ok(line) => Ok(Typed::Line(line)),
            Err(ReadlineError::Interrupted) => Ok(Typed::Interrupted),
            Err(ReadlineError::Eof) => Ok(Typed::End),
            Err(ReadlineError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// The thread that reads the keyboard, stoppable from another thread.
pub struct Keyboard {
    thread: Option<thread::JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    done: std::sync::mpsc::Receiver<()>,
    saved: Option<SavedTerminal>,
}

impl Keyboard {
    /// Read lines with `editor` on a thread of their own, handing each to
    /// `typed`, until it returns false, input ends, or [`Keyboard::stop`].
    pub fn spawn(
        mut editor: LineEditor,
        screen: Screen,
        mut typed: impl FnMut(io::Result<Typed>) -> bool + Send + 'static,
    ) -> io::Result<Keyboard> {
        let stopping = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = channel();
        let saved = editor.saved.clone();
        let stop = stopping.clone();
        let thread = thread::Builder::new()
            .name("chat-keyboard".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    screen.reading(true);
                    let got = editor.read();
                    screen.reading(false);
                    let stopped = stop.load(Ordering::SeqCst);
                    let last = stopped || !matches!(got, Ok(Typed::Line(_)));
                    if last && editor.empty.load(Ordering::SeqCst) {
                        // Nothing was typed: take back the empty prompt left above the cursor.
                        screen.erase_prompt_row();
                    }
                    // Our own stop returns from readline as Ctrl-C does: not the user's.
                    if stopped || !typed(got) || last {
                        break;
                    }
                }
                let _ = done_tx.send(());
            })?;
        Ok(Keyboard {
            thread: Some(thread),
            stopping,
            done,
            saved,
        })
    }

    /// Make the keyboard thread's `readline` return, and wait until it has
    /// put the terminal back (the unfinished line stays on screen, and the
    /// cursor goes to the next line).
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            // Sent again until the thread is out: a SIGINT that lands just
            // before readline installs its handler goes to our Ctrl-C handler
            // instead, and the chat is ending anyway.
            if self.done.try_recv().is_ok() || thread.is_finished() {
                let _ = thread.join();
                return;
            }
            if Instant::now() >= deadline {
                break;
            }
            crate::sys::interrupt_thread(&thread);
            match self.done.recv_timeout(Duration::from_millis(50)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = thread.join();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        // Still inside readline: leave it there, but give the terminal back.
        if let Some(saved) = &self.saved {
            restore_terminal(saved);
        }
        let _ = io::stdout().write_all(b"\n");
        let _ = io::stdout().flush();
    }
}

impl Drop for Keyboard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which stream a piece of text belongs to.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Out,
    Err,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A line editor is on screen: text goes to it through the printer thread.
    Editing,
    /// The editor is being stopped: text waits.
    Holding,
    /// No editor (any more): text goes straight to stdout or stderr.
    Closed,
}

struct State {
    mode: Mode,
    queue: VecDeque<(Stream, String)>,
    /// The printer thread is handing a message to the editor.
    printing: bool,
    /// The keyboard thread is inside `readline`, which takes printed
    /// messages; between two lines they wait, so that nothing is printed
    /// where the editor does not expect it.
    reading: bool,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
    err: Mutex<Box<dyn Write + Send>>,
}

/// Where a chat shows what the peer says (stdout) and its log (stderr),
/// shared by every thread. On a terminal with a [`LineEditor`], both are
/// printed above the line being typed; otherwise they are simply written out.
#[derive(Clone)]
pub struct Screen {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Screen {
    /// A plain output: messages to `out`, log lines to `err`.
    pub fn plain(out: impl Write + Send + 'static, err: impl Write + Send + 'static) -> Self {
        Self::with(Mode::Closed, out, err)
    }

    fn with(
        mode: Mode,
        out: impl Write + Send + 'static,
        err: impl Write + Send + 'static,
    ) -> Self {
        Screen {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    mode,
                    queue: VecDeque::new(),
                    printing: false,
                    reading: false,
                }),
                changed: Condvar::new(),
                out: Mutex::new(Box::new(out)),
                err: Mutex::new(Box::new(err)),
            }),
        }
    }

    /// A terminal: text goes to `printer`, on a thread of its own. The
    /// printer may block (rustyline hands each message to `readline`, which
    /// takes it between keys), and a peer's message must never wait on that.
    fn terminal(
        mut printer: impl ExternalPrinter + Send + 'static,
        out: impl Write + Send + 'static,
        err: impl Write + Send + 'static,
    ) -> Self {
        let screen = Self::with(Mode::Editing, out, err);
        let inner = screen.inner.clone();
        let _ = thread::Builder::new()
            .name("chat-screen".into())
            .spawn(move || {
                loop {
                    let text = {
                        let mut st = lock(&inner.state);
                        loop {
                            if st.mode == Mode::Closed {
                                return;
                            }
                            if st.mode == Mode::Editing
                                && st.reading
                                && let Some((_, text)) = st.queue.pop_front()
                            {
                                st.printing = true;
                                break text;
                            }
                            st = inner.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    let _ = printer.print(text);
                    lock(&inner.state).printing = false;
                    inner.changed.notify_all();
                }
            });
        screen
    }

    fn say(&self, stream: Stream, text: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.inner.state);
        if st.mode != Mode::Closed {
            st.queue
                .push_back((stream, String::from_utf8_lossy(text).into_owned()));
            self.inner.changed.notify_all();
            return Ok(());
        }
        // Written under the state lock, so lines keep their order.
        let mut w = match stream {
            Stream::Out => lock(&self.inner.out),
            Stream::Err => lock(&self.inner.err),
        };
        w.write_all(text)?;
        w.flush()
    }

    fn reading(&self, on: bool) {
        lock(&self.inner.state).reading = on;
        self.inner.changed.notify_all();
    }

    /// After the last `readline`: the cursor is under the prompt row it left;
    /// if that row holds nothing but the prompt, erase it. Not if a message
    /// may have been printed under it meanwhile.
    fn erase_prompt_row(&self) {
        let st = lock(&self.inner.state);
        if st.printing || st.mode == Mode::Closed {
            return;
        }
        let mut out = lock(&self.inner.out);
        let _ = out.write_all(b"\x1b[A\r\x1b[K");
        let _ = out.flush();
    }

    /// Show `text` (whole lines, each ending in `\n`) on stdout, above the
    /// line being typed.
    pub fn show(&self, text: &[u8]) -> io::Result<()> {
        self.say(Stream::Out, text)
    }

    /// A writer for a [`crate::output::Log`]: each flushed line goes to
    /// stderr, above the line being typed.
    pub fn log_writer(&self) -> impl Write + Send + 'static {
        LogWriter {
            screen: self.clone(),
            line: Vec::new(),
        }
    }

    /// The editor is about to stop: hand it nothing more (what comes now
    /// waits for [`Screen::close`]), and let it finish drawing what it has.
    pub fn hold(&self) {
        let mut st = lock(&self.inner.state);
        if st.mode != Mode::Editing {
            return;
        }
        st.mode = Mode::Holding;
        let deadline = Instant::now() + STOP_WAIT;
        while st.printing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .inner
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The editor is gone (see [`Keyboard::stop`]): write what is still
    /// waiting, and everything from now on, straight out.
    pub fn close(&self) {
        self.hold();
        let mut st = lock(&self.inner.state);
        if st.mode == Mode::Closed {
            return;
        }
        st.mode = Mode::Closed;
        self.inner.changed.notify_all();
        for (stream, text) in std::mem::take(&mut st.queue) {
            let mut w = match stream {
                Stream::Out => lock(&self.inner.out),
                Stream::Err => lock(&self.inner.err),
            };
            let _ = w.write_all(text.as_bytes());
            let _ = w.flush();
        }
    }
}

struct LogWriter {
    screen: Screen,
    line: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        self.screen.say(Stream::Err, &line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::SharedBuf;

    /// Stands in for rustyline's printer: records what it is handed.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl ExternalPrinter for Recorder {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            lock(&self.0).push(msg);
            Ok(())
        }
    }

    fn printed(r: &Recorder, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = lock(&r.0).clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            thread::yield_now();
        }
    }

    #[test]
    fn a_plain_screen_writes_messages_and_log_apart() {
        let (out, err) = (SharedBuf::default(), SharedBuf::default());
        let screen = Screen::plain(out.clone(), err.clone());
        screen.show(b"peer> hi\n").unwrap();
        let mut log = screen.log_writer();
        write!(log, "the peer closed").unwrap();
        writeln!(log, " the connection").unwrap();
        assert_eq!(err.text(), "", "a log line is written whole, at flush");
        log.flush().unwrap();
        screen.close();
        assert_eq!(out.text(), "peer> hi\n");
        assert_eq!(err.text(), "the peer closed the connection\n");
    }

    #[test]
    fn on_a_terminal_messages_and_log_lines_go_to_the_editor_in_order() {
        let rec = Recorder::default();
        let (out, err) = (SharedBuf::default(), SharedBuf::default());
        let screen = Screen::terminal(rec.clone(), out.clone(), err.clone());
        screen.reading(true);
        screen.show(b"peer> one\n").unwrap();
        let mut log = screen.log_writer();
        writeln!(log, "peer is now known as bob").unwrap();
        log.flush().unwrap();
        screen.show(b"bob> two\n").unwrap();
        assert_eq!(
            printed(&rec, 3),
            ["peer> one\n", "peer is now known as bob\n", "bob> two\n"]
        );
        assert_eq!(out.text() + &err.text(), "");
        // Closed: straight out, to the right stream.
        screen.close();
        screen.show(b"bob> three\n").unwrap();
        writeln!(log, "the peer closed the connection").unwrap();
        log.flush().unwrap();
        assert_eq!(out.text(), "bob> three\n");
        assert_eq!(err.text(), "the peer closed the connection\n");
    }

    /// Between two lines (no `readline` running), the editor would print a
    /// message where it does not expect one: it waits for the next prompt.
    #[test]
    fn messages_wait_while_no_line_is_being_read() {
        let rec = Recorder::default();
        let screen = Screen::terminal(rec.clone(), SharedBuf::default(), SharedBuf::default());
        screen.show(b"peer> early\n").unwrap();
        thread::sleep(Duration::from_millis(50));
        assert!(lock(&rec.0).is_empty());
        screen.reading(true);
        assert_eq!(printed(&rec, 1), ["peer> early\n"]);
    }

    /// A printer that never returns (rustyline's, when its `readline` ended
    /// without taking the message) blocks neither the peer nor the end.
    #[test]
    fn a_stuck_printer_delays_nobody_and_close_writes_what_waits() {
        struct Stuck;
        impl ExternalPrinter for Stuck {
            fn print(&mut self, _: String) -> rustyline::Result<()> {
                thread::park();
                Ok(())
            }
        }
        let out = SharedBuf::default();
        let screen = Screen::terminal(Stuck, out.clone(), SharedBuf::default());
        screen.reading(true);
        screen.show(b"lost in the editor\n").unwrap();
        // Wait until the printer thread holds the first message.
        while !lock(&screen.inner.state).printing {
            thread::yield_now();
        }
        screen.show(b"second\n").unwrap();
        let started = Instant::now();
        screen.close();
        assert!(started.elapsed() < STOP_WAIT * 3);
        assert_eq!(out.text(), "second\n");
    }
}
