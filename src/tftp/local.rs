//! Where `tftp-get` writes on this machine: a new or regular file is replaced whole, and only once complete; a device or fifo is written in place.
//!
//! A download that fails halfway must not leave half a file under the real
//! name, nor destroy the file it was replacing, so a regular destination is
//! written through an [`AtomicFile`] (a hidden, uniquely named temporary
//! file beside it, renamed over it at the end). But renaming only makes sense
//! for a regular file: `-o /dev/null` (timing a download), a fifo feeding
//! another program, or a tape device must be written *into*, as curl and
//! tftp-hpa do. Renaming a file over them would replace the device node
//! itself: as root, `-o /dev/null` would leave every other program on the
//! machine writing into a regular file. So the type of what is there decides.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::fs::{AtomicFile, BUFFER_SIZE};
use crate::addr::describe_io;

/// Why the local destination cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The destination is a directory.
    #[error("{} is a directory; give a file name, such as -o {}/NAME", .0.display(), .0.display())]
    Directory(PathBuf),
    /// The destination is a Unix socket, which no file can be written to.
    #[error("{} is a socket; give a file, a device or a fifo", .0.display())]
    Socket(PathBuf),
    /// The destination is a symlink to nothing.
    #[error(
        "{} is a symlink to {}, which does not exist; remove the link or choose another -o",
        .link.display(),
        .target.display()
    )]
    Dangling {
        /// The link.
        link: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
    /// Opening or creating failed.
    #[error("cannot write {}: {}", .path.display(), describe_io(.source))]
    Io {
        /// The file that could not be written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The local file is checked after the flags parsed: a directory or a dangling link is a runtime failure, as in tftp-hpa.
impl crate::error::Blame for LocalError {
    fn is_usage(&self) -> bool {
        false
    }
}

/// An open download destination.
#[derive(Debug)]
pub enum LocalFile {
    /// A new or regular file: written under a temporary name, renamed over
    /// the destination by [`LocalFile::commit`].
    Replace(AtomicFile),
    /// A device, fifo or other special file, written as it is.
    InPlace {
        /// The open file.
        file: BufWriter<File>,
        /// Its path, for messages.
        path: PathBuf,
    },
}

impl LocalFile {
    /// Opens `path` for a download. `fsync`: flush a replaced file to disk
    /// before renaming it into place.
    ///
    /// A symlink to a regular file has its target replaced, so the link
    /// survives (the same rule as `tftp-serve` uploads). Opening a fifo
    /// waits, as any writer of a fifo does, until something reads it.
    pub fn create(path: &Path, fsync: bool) -> Result<LocalFile, LocalError> {
        let io_error = |source| LocalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut dest = path.to_path_buf();
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
            Ok(meta) => {
                if meta.file_type().is_symlink() {
                    dest = fs::canonicalize(path).map_err(|e| {
                        if e.kind() == io::ErrorKind::NotFound {
                            LocalError::Dangling {
                                link: path.to_path_buf(),
                                target: fs::read_link(path).unwrap_or_default(),
                            }
                        } else {
                            io_error(e)
                        }
                    })?;
                }
                let meta = fs::metadata(&dest).map_err(io_error)?;
                if meta.is_dir() {
                    return Err(LocalError::Directory(path.to_path_buf()));
                }
                if crate::sys::is_socket(&meta.file_type()) {
                    return Err(LocalError::Socket(path.to_path_buf()));
                }
                if !meta.is_file() {
                    // No create, no truncate: the node is used, never made.
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&dest)
                        .map_err(io_error)?;
                    return Ok(LocalFile::InPlace {
                        file: BufWriter::with_capacity(BUFFER_SIZE, file),
                        path: path.to_path_buf(),
                    });
                }
            }
        }
        let file = AtomicFile::beside(&dest).map_err(|source| LocalError::Io {
            path: dest.clone(),
            source,
        })?;
        Ok(LocalFile::Replace(file.sync_on_commit(fsync)))
    }

    /// The temporary file, for a destination that is replaced.
    pub fn temp_path(&self) -> Option<PathBuf> {
        match self {
            LocalFile::Replace(file) => Some(file.temp_path()),
            LocalFile::InPlace { .. } => None,
        }
    }

    /// Is the destination written in place (a device or fifo)?
    pub fn in_place(&self) -> bool {
        matches!(self, LocalFile::InPlace { .. })
    }

    /// Makes the download final: renames a replaced file into place, or
    /// flushes what is left for a device. Until this returns `Ok`, the
    /// download is not safe and must not be acknowledged.
    pub fn commit(self) -> Result<(), LocalError> {
        match self {
            LocalFile::Replace(file) => {
                let dest = file.dest_path();
                file.commit(true)
                    .map_err(|source| LocalError::Io { path: dest, source })
            }
            LocalFile::InPlace { mut file, path } => file
                .flush()
                .map_err(|source| LocalError::Io { path, source }),
        }
    }
}

impl Write for LocalFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LocalFile::Replace(f) => f.write(buf),
            LocalFile::InPlace { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LocalFile::Replace(f) => f.flush(),
            LocalFile::InPlace { file, .. } => file.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testing::{is_fifo, mkfifo, symlink, unix_socket};
    use std::io::Read;
    use tempfile::TempDir;

    /// What `dir` holds, in order: a left-over temporary file shows here.
    fn names_in(dir: &Path) -> Vec<String> {
        let names: std::collections::BTreeSet<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.into_iter().collect()
    }

    /// Is `path` still a symlink (not replaced by a file of its own)?
    fn is_link(path: &Path) -> bool {
        fs::symlink_metadata(path).unwrap().file_type().is_symlink()
    }

    #[test]
    fn new_and_regular_files_are_replaced_only_when_complete() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("dl.bin");
        let mut local = LocalFile::create(&path, false).unwrap();
        assert!(!local.in_place());
        local.write_all(b"first").unwrap();
        local.flush().unwrap();
        assert!(!path.exists(), "visible before the commit");
        local.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");

        let mut local = LocalFile::create(&path, false).unwrap();
        local.write_all(b"second, abandoned").unwrap();
        drop(local);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(names_in(dir.path()), ["dl.bin"]);
    }

    #[test]
    fn a_symlink_keeps_pointing_at_the_new_file() {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join("real.bin"), b"old").unwrap();
        let link = dir.path().join("link.bin");
        symlink("real.bin", &link).unwrap();
        let mut local = LocalFile::create(&link, false).unwrap();
        local.write_all(b"new").unwrap();
        local.commit().unwrap();
        assert!(is_link(&link));
        assert_eq!(fs::read(dir.path().join("real.bin")).unwrap(), b"new");
    }

    #[test]
    fn directories_and_dangling_links_are_refused_with_a_hint() {
        let dir = TempDir::new().unwrap();
        let err = LocalFile::create(dir.path(), false).unwrap_err();
        assert!(
            err.to_string().contains("is a directory; give a file name"),
            "{err}"
        );
        let link = dir.path().join("gone");
        symlink("nowhere", &link).unwrap();
        let err = LocalFile::create(&link, false).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "is a symlink to nowhere, which does not exist; remove the link or choose another -o"
            ),
            "{err}"
        );
        let err = LocalFile::create(&dir.path().join("no/such/dir/f"), false).unwrap_err();
        assert!(err.to_string().starts_with("cannot write "), "{err}");
        let socket = dir.path().join("sock");
        let _listener = unix_socket(&socket).unwrap();
        let err = LocalFile::create(&socket, false).unwrap_err();
        if crate::sys::PORTABLE {
            // std cannot tell a socket (sys::is_socket): opening it says why not.
            assert!(
                err.to_string().ends_with("sock: no such device or address"),
                "{err}"
            );
        } else {
            assert!(
                err.to_string()
                    .ends_with("sock is a socket; give a file, a device or a fifo"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_fifo_is_written_into_not_replaced() {
        let dir = TempDir::new().unwrap();
        let fifo = dir.path().join("pipe");
        mkfifo(&fifo);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                File::open(fifo).unwrap().read_to_end(&mut got).unwrap();
                got
            })
        };
        let mut local = LocalFile::create(&fifo, false).unwrap();
        assert!(local.in_place());
        local.write_all(&data).unwrap();
        local.commit().unwrap();
        assert_eq!(reader.join().unwrap(), data);
        assert!(is_fifo(&fifo));
        assert_eq!(names_in(dir.path()), ["pipe"]);
    }

    #[test]
    fn a_device_is_written_into_and_its_errors_are_reported() {
        // Through symlinks, so that a bug here replaces a link in a scratch
        // directory, never the system's device nodes.
        let dir = TempDir::new().unwrap();
        let null = dir.path().join("null");
        symlink("/dev/null", &null).unwrap();
        let mut local = LocalFile::create(&null, false).unwrap();
        assert!(local.in_place());
        local.write_all(&[7; 100_000]).unwrap();
        local.commit().unwrap();
        assert!(is_link(&null));

        let full = dir.path().join("full");
        symlink("/dev/full", &full).unwrap();
        let mut local = LocalFile::create(&full, false).unwrap();
        // The buffer takes a little; a write that reaches the device fails.
        let err = local.write_all(&[7; 100_000]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
        assert!(is_link(&full));
        assert_eq!(names_in(dir.path()), ["full", "null"]);
    }
}
