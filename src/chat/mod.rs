//! Chat: two people over TCP (lesson 11) or UDP (lesson 10), full duplex, and a multi-user room.
//!
//! - [`session`]: one peer, either side may type at any time; compatible with
//!   the notes' turn-taking scripts.
//! - [`editor`]: keeps the line being typed intact on a terminal while
//!   messages arrive.

pub mod editor;
pub mod session;
