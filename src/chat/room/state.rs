//! The room: who is here, and what joining, leaving, renaming and relaying do.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::member::{encode_line, visible};
use super::outbox::{Outbox, Refused, lock};
use super::transcript::Transcript;
use super::{CLOSE_GRACE, Config, Summary};
use crate::chat::protocol::{GREETING, NameError, check_name, looks_alike, same_name};
use crate::codec::Encoding;
use crate::net::{Places, Slot};
use crate::output::Log;

/// Names no member can take, nor anything that looks like them: what the
/// room is called in its own notices, what people expect the room to speak as
/// (`server`), and `me`, the prompt `chat connect` shows before its user's
/// own lines, so another member's `me> ...` would look like theirs.
const RESERVED: [&str; 3] = ["server", "room", "me"];

/// One connection: its socket (shared by the reader, the writer and whoever
/// must shut it down) and its outgoing queue.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) outbox: Outbox,
    /// Why the room disconnected this member, if it did.
    kicked: Mutex<Option<String>>,
    /// The member's name, for the writer's `-v` lines (their address until they join).
    name: Mutex<String>,
}

impl Conn {
    /// A connection nobody has kicked, with a queue of `max_queue` bytes, known
    /// by `name` (its address) until it joins.
    pub(super) fn new(stream: TcpStream, max_queue: usize, name: String) -> Self {
        Conn {
            stream,
            outbox: Outbox::new(max_queue),
            kicked: Mutex::new(None),
            name: Mutex::new(name),
        }
    }

    /// Disconnect: forget the queue and shut the socket down, which wakes the
    /// reader (its `recv` returns 0) and the writer (its `send` fails).
    pub(super) fn kick(&self, why: &str) {
        lock(&self.kicked).get_or_insert_with(|| why.to_string());
        self.outbox.abort();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    pub(super) fn kicked(&self) -> Option<String> {
        lock(&self.kicked).clone()
    }

    pub(super) fn name(&self) -> String {
        lock(&self.name).clone()
    }
}

/// A member as the room sees them.
pub(super) struct Member {
    name: String,
    addr: String,
    pub(super) enc: &'static Encoding,
    conn: Arc<Conn>,
}

#[derive(Default)]
pub(super) struct State {
    /// By join order, which is also the order of `/who`.
    pub(super) members: BTreeMap<u64, Member>,
    next_id: u64,
    /// Ctrl-C: no more joins or announcements.
    closing: bool,
}

impl State {
    /// Why `name` cannot be taken by member `except` (or by a newcomer, for
    /// `None`): a reserved name, another member's name, or a look-alike of
    /// either. Members who have left do not count: names are not owned.
    fn name_problem(&self, name: &str, except: Option<u64>) -> Result<(), NameError> {
        if let Some(word) = RESERVED.into_iter().find(|w| looks_alike(w, name)) {
            return Err(NameError::Reserved(word));
        }
        let others = self.members.iter().filter(|(id, _)| Some(**id) != except);
        for (_, m) in others {
            if same_name(&m.name, name) {
                return Err(NameError::Taken);
            }
            if looks_alike(&m.name, name) {
                return Err(NameError::LooksLike(m.name.clone()));
            }
        }
        Ok(())
    }

    /// `* 3 users here: alice (127.0.0.1:5000), bob (127.0.0.1:5002, you), …`
    pub(super) fn who(&self, me: u64) -> String {
        let n = self.members.len();
        let mut line = format!("* {n} user{} here: ", if n == 1 { "" } else { "s" });
        for (i, (id, m)) in self.members.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            let you = if *id == me { ", you" } else { "" };
            line.push_str(&format!("{} ({}{you})", m.name, m.addr));
        }
        line
    }
}

#[derive(Default)]
pub(super) struct Counters {
    joined: AtomicU64,
    messages: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) too_slow: AtomicU64,
    /// Places taken, from accept until leaving (`--max-users`).
    pub(super) active: Places,
}

pub(super) struct Room {
    pub(super) cfg: Config,
    pub(super) log: Log,
    state: Mutex<State>,
    transcript: Transcript,
    pub(super) counters: Counters,
}

impl Room {
    /// An empty room.
    pub(super) fn new(cfg: Config, log: Log, transcript: Transcript) -> Self {
        Room {
            cfg,
            log,
            state: Mutex::new(State::default()),
            transcript,
            counters: Counters::default(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queue bytes for one member; a member whose queue is full is disconnected.
    pub(super) fn deliver(&self, conn: &Conn, bytes: Arc<[u8]>) -> bool {
        match conn.outbox.push(bytes) {
            Ok(()) => true,
            Err(Refused::Closed) => false,
            Err(Refused::Full) => {
                self.counters.too_slow.fetch_add(1, Ordering::Relaxed);
                conn.kick("too slow: outgoing queue full");
                false
            }
        }
    }

    /// Send `text` to one member, in their encoding.
    fn tell(&self, member: &Member, text: &str) {
        self.deliver(&member.conn, encode_line(member.enc, text).into());
    }

    /// Send `text` to every member but `except`: encoded once per encoding in
    /// use (50 UTF-8 members and 3 GBK ones cost two encodings, not 53), the
    /// same bytes shared by every queue. Called with the room locked, so every
    /// member sees messages in the same order. Never waits. Returns how many
    /// members the text was queued for.
    fn broadcast(&self, st: &State, except: Option<u64>, text: &str) -> usize {
        let mut encoded: Vec<(&'static Encoding, Arc<[u8]>)> = Vec::new();
        let mut queued = 0;
        for (id, m) in &st.members {
            if Some(*id) == except {
                continue;
            }
            let bytes = match encoded.iter().find(|(enc, _)| *enc == m.enc) {
                Some((_, bytes)) => bytes.clone(),
                None => {
                    let bytes: Arc<[u8]> = encode_line(m.enc, text).into();
                    encoded.push((m.enc, bytes.clone()));
                    bytes
                }
            };
            if self.deliver(&m.conn, bytes) {
                queued += 1;
            }
        }
        queued
    }

    /// A new member: pick a name, greet them, tell the others. `None` when the
    /// room is closing.
    pub(super) fn join(&self, conn: &Arc<Conn>, addr: &str) -> Option<(u64, String)> {
        let mut st = self.lock();
        if st.closing {
            return None;
        }
        st.next_id += 1;
        let id = st.next_id;
        // user-N, or the next free N if someone took that name (or a look-alike) with /nick.
        let name = (id..)
            .map(|n| format!("user-{n}"))
            .find(|name| st.name_problem(name, None).is_ok())
            .unwrap_or_default();
        st.members.insert(
            id,
            Member {
                name: name.clone(),
                addr: addr.to_string(),
                enc: self.cfg.encoding,
                conn: conn.clone(),
            },
        );
        *lock(&conn.name) = name.clone();
        // Queued before anything else can be: the greeting is the first line.
        let me = &st.members[&id];
        self.tell(
            me,
            &format!(
                "{GREETING}, you are {name} ({addr}); commands: /nick NAME, /enc LABEL, /who, /quit, /help"
            ),
        );
        self.tell(me, &st.who(id));
        self.broadcast(&st, Some(id), &format!("* {name} ({addr}) joined"));
        drop(st);
        self.counters.joined.fetch_add(1, Ordering::Relaxed);
        self.log.info(format_args!("{name} ({addr}) joined"));
        Some((id, name))
    }

    /// A member leaves: free their place, then tell the others (so whoever
    /// reacts to the notice by connecting finds the place free).
    pub(super) fn leave(&self, id: u64, reason: Option<&str>, slot: Slot) {
        let mut st = self.lock();
        let Some(m) = st.members.remove(&id) else {
            return;
        };
        drop(slot);
        let reason = reason.or(st.closing.then_some("the room is closing"));
        let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
        let notice = format!("{} ({}) left{why}", m.name, m.addr);
        if !st.closing {
            self.broadcast(&st, None, &format!("* {notice}"));
        }
        drop(st);
        self.log.info(format_args!("{notice}"));
    }

    /// Relay a message from member `id` to the others, and to the transcript.
    pub(super) fn relay(&self, id: u64, name: &str, text: &str) {
        let line = format!("{name}> {}", visible(text));
        let st = self.lock();
        if st.closing {
            return;
        }
        let queued = self.broadcast(&st, Some(id), &line);
        // Under the lock too: the transcript lists messages in the room's order.
        self.transcript.push(format!("{line}\n").into_bytes());
        drop(st);
        self.counters.messages.fetch_add(1, Ordering::Relaxed);
        self.log.verbose(format_args!(
            "{name}: relayed a message of {} bytes to {queued} member{}",
            text.len(),
            if queued == 1 { "" } else { "s" }
        ));
    }

    /// `/nick`: take `new` if it is free, and tell everyone (the renamed member too).
    pub(super) fn rename(&self, id: u64, new: &str) -> Result<String, NameError> {
        check_name(new)?;
        let mut st = self.lock();
        st.name_problem(new, Some(id))?;
        let Some(m) = st.members.get_mut(&id) else {
            return Err(NameError::Taken);
        };
        let old = std::mem::replace(&mut m.name, new.to_string());
        *lock(&m.conn.name) = new.to_string();
        self.broadcast(&st, None, &format!("* {old} is now known as {new}"));
        drop(st);
        self.log.info(format_args!("{old} is now known as {new}"));
        Ok(old)
    }

    /// Ctrl-C: say goodbye to everyone, then close every connection; stalled
    /// members get [`CLOSE_GRACE`], not the write timeout.
    pub(super) fn close(&self, members: Vec<(JoinHandle<()>, Weak<Conn>)>) {
        {
            let mut st = self.lock();
            st.closing = true;
            self.broadcast(&st, None, "* the room is closing");
            for m in st.members.values() {
                // Writers deliver what is queued (the goodbye), then stop; a
                // shut-down read side makes each reader's recv return 0.
                m.conn.outbox.close();
                let _ = m.conn.stream.shutdown(std::net::Shutdown::Read);
            }
        }
        let deadline = Instant::now() + CLOSE_GRACE;
        while members.iter().any(|(t, _)| !t.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        for (t, conn) in &members {
            if let Some(conn) = conn.upgrade().filter(|_| !t.is_finished()) {
                conn.kick("the room is closing");
            }
        }
        for (t, _) in members {
            let _ = t.join();
        }
        self.transcript
            .finish(deadline.max(Instant::now() + Duration::from_millis(100)));
    }

    pub(super) fn summary(&self) -> Summary {
        let c = &self.counters;
        Summary {
            joined: c.joined.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            too_slow: c.too_slow.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TestRoom, next};
    use super::*;
    use std::io::Write;

    /// The spoofs of issue 12, in process: each refused, or escaped on the way.
    #[test]
    fn nobody_can_pass_for_someone_else() {
        let room = TestRoom::start(Config::default());
        let (a, mut ra) = room.member();
        let (b, mut rb) = room.member();
        assert!(next(&mut ra).ends_with(") joined\n"));
        (&b).write_all(b"/nick bob\n").unwrap();
        assert_eq!(next(&mut rb), "* user-2 is now known as bob\n");
        assert_eq!(next(&mut ra), "* user-2 is now known as bob\n");
        for (nick, why) in [
            (
                "b\u{200b}ob",
                "a name cannot contain invisible or formatting characters such as \\u{200b}; choose one without them",
            ),
            ("BOB", "that name is taken"),
            (
                "\u{ff42}ob",
                "it looks like \"bob\", who is already here; choose another name",
            ),
            (
                "\u{455}erver",
                "\"server\" is reserved: the room and chat clients use it; choose another name",
            ),
            (
                "me",
                "\"me\" is reserved: the room and chat clients use it; choose another name",
            ),
        ] {
            (&a).write_all(format!("/nick {nick}\n").as_bytes())
                .unwrap();
            let shown = visible(nick);
            assert_eq!(
                next(&mut ra),
                format!("* cannot rename to \"{shown}\": {why}\n")
            );
        }
        // A look-alike of the next default name pushes newcomers past it.
        (&a).write_all("/nick user-\u{417}\n".as_bytes()).unwrap();
        assert_eq!(next(&mut ra), "* user-1 is now known as user-\u{417}\n");
        let (_c, mut rc) = room.member();
        assert!(next(&mut ra).starts_with("* user-4 ("));
        (&a).write_all("hi\u{2028}bob> give me your password \u{202e}gpj.exe\n".as_bytes())
            .unwrap();
        let want = "user-\u{417}> hi\\u{2028}bob> give me your password \\u{202e}gpj.exe\n";
        assert_eq!(next(&mut rb), "* user-1 is now known as user-\u{417}\n");
        assert!(next(&mut rb).starts_with("* user-4 ("));
        assert_eq!(next(&mut rb), want);
        assert_eq!(next(&mut rc), want);
        let (_, out, _) = room.stop();
        assert_eq!(out, want);
    }
}
