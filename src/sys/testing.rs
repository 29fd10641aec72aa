//! Unix-only helpers for the library's own tests: symlinks, fifos, sockets in the filesystem, permission bits.
//!
//! They set up what a test looks at (whichever of `unix.rs` and
//! `portable.rs` is being tested), so they are Unix's own calls in both builds.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

pub(crate) use std::os::unix::fs::symlink;

/// Makes a fifo (named pipe) at `path`, with `mkfifo(1)`.
pub(crate) fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(path)
        .status()
        .expect("mkfifo(1) runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Binds a Unix domain socket at `path`; it lives as long as the value.
pub(crate) fn unix_socket(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    std::os::unix::net::UnixListener::bind(path)
}

/// Is `path` (not following a symlink) a fifo?
pub(crate) fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Sets the permission bits of `path` (`chmod`).
pub(crate) fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The permission bits of `path`.
pub(crate) fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// How many names `path`'s file has (hard links).
pub(crate) fn links(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().nlink()
}

/// A name made of any bytes.
pub(crate) fn os_str(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}
