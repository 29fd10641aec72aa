//! Chat: two people over TCP (lesson 11) or UDP (lesson 10), full duplex, and a multi-user room.
//!
//! - [`session`]: one peer, either side may type at any time; compatible with
//!   the notes' turn-taking scripts with no flags (lines end as the peer's do),
//!   and recognises another chat by a hello sent as TCP urgent data.
//! - [`editor`]: a line editor (rustyline) that keeps the line being typed
//!   intact on a terminal while messages arrive.
//! - [`room`]: many members, whole lines relayed as `name> text`, an encoding
//!   per member, a bounded queue per member (lessons 04, 06 and 13 together).
//!   `chat connect` recognises a room by its greeting and shows its lines as
//!   they come.
//! - [`protocol`]: what both speak: the room's greeting, its commands and the
//!   rules for names, so that the client does not depend on the server.

pub mod editor;
pub mod protocol;
pub mod room;
pub mod session;
