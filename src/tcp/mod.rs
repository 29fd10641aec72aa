//! TCP: the client of lesson 02, the servers of lessons 03 and 04.

pub mod client;
pub mod server;
