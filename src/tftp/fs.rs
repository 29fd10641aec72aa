//! Files for TFTP: keeping every requested path inside the served directory, and receiving files under a temporary name so that only complete transfers ever appear.
//!
//! A TFTP request carries a file name chosen by whoever sent the packet. A
//! server that simply opened `DIR/NAME` could be asked for
//! `../../etc/passwd`, or could follow a symlink out of `DIR`. [`Root`] holds
//! the served directory open as a [`cap_std::fs::Dir`] and makes every open,
//! create and rename *relative to that handle*: the kernel resolves the name
//! beneath it (`openat2(RESOLVE_BENEATH)` on Linux 5.6 and later, a careful
//! component-by-component walk elsewhere), so a `..` or a symlink that leads
//! out is refused at the moment of the open. There is no check-then-open
//! window for a local user to swap a directory for a symlink in. A refused
//! name becomes a [`PathError`], which the server maps to a TFTP error code.
//!
//! Symlinks inside the served tree are followed while they stay in it;
//! absolute symlinks are refused even when they point back inside, because
//! inside a sandbox `/` means the sandbox (tftpd-hpa's `-s` chroot behaves
//! the same way).
//!
//! UDP transfers fail halfway all the time (a lost client, a timeout, Ctrl-C).
//! A file written straight to its final name would then be left truncated, and
//! an existing file being overwritten would be destroyed. [`AtomicFile`]
//! writes to a new, uniquely named hidden file (`.NAME.RANDOM.part`, created
//! exclusively, so it never reuses or follows anything already there) and
//! renames it into place only in [`AtomicFile::commit`]; if it is dropped
//! without a commit, the temporary file is removed and nothing else has
//! changed. Names of that shape are reserved: a client can neither read nor
//! write them, so an upload in progress is never served and a client's file
//! never collides with one.
//!
//! Names are raw bytes, turned into paths by [`crate::sys::os_str_from_bytes`]:
//! on Unix, GBK or any other non-UTF-8 name reaches the filesystem unchanged.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

/// Why a requested path was refused.
///
/// The server maps these to TFTP error codes: [`PathError::NotFound`] to 1
/// ("file not found"), [`PathError::Exists`] to 6 ("file already exists"),
/// everything else to 2 ("access violation").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The name was empty, or held nothing but separators and `.`.
    #[error("empty file name")]
    Empty,
    /// The name has a `..` component, or leads (through a symlink) outside the
    /// served directory.
    #[error("path leaves the served directory")]
    Escapes,
    /// The file, or a directory on the way to it, does not exist.
    #[error("file not found")]
    NotFound,
    /// The name is a directory, device, fifo, socket or dangling symlink, not a
    /// regular file.
    #[error("not a regular file")]
    NotAFile,
    /// The file exists and overwriting was not allowed.
    #[error("file already exists")]
    Exists,
    /// The name has the shape of an upload in progress (`.NAME.RANDOM.part`).
    #[error("names like .NAME.XXXX.part are reserved for uploads in progress")]
    Reserved,
    /// Any other I/O error (permission denied, ...). Displayed as one short
    /// line such as `permission denied`, fit for a TFTP error packet.
    #[error("{}", describe(.0))]
    Io(#[source] io::Error),
}

/// A name a client asked for: the client's problem, not the server operator's command line.
impl crate::error::Blame for PathError {
    fn is_usage(&self) -> bool {
        false
    }
}

/// One line describing an I/O error, without std's ` (os error N)` suffix:
/// "Permission denied (os error 13)" becomes "permission denied".
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    if err.raw_os_error().is_none() {
        return text;
    }
    let mut text = match text.rfind(" (os error ") {
        Some(end) => text[..end].to_string(),
        None => text,
    };
    // Lower-case "Permission" but leave an initialism such as "I/O" alone.
    let bytes = text.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_uppercase() && !bytes[1].is_ascii_uppercase() {
        text[..1].make_ascii_lowercase();
    }
    text
}

/// Maps an error from looking a path up beneath the root.
///
/// ENOTDIR (`file.txt/x`) is a "not found" too: there is no such directory.
/// cap-std reports a path that would leave the directory as a
/// `PermissionDenied` error of its own, with no OS error number (a real
/// EACCES always has one), and the kernel's `RESOLVE_BENEATH` as EXDEV.
fn lookup_error(err: io::Error) -> PathError {
    const EXDEV: i32 = 18;
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => PathError::NotFound,
        io::ErrorKind::PermissionDenied if err.raw_os_error().is_none() => PathError::Escapes,
        _ if err.raw_os_error() == Some(EXDEV) => PathError::Escapes,
        _ => PathError::Io(err),
    }
}

/// Turns the name from a request into a relative path, without touching the
/// filesystem.
///
/// `\` counts as a separator (Windows clients send `dir\file`), leading `/`
/// means the served directory, empty and `.` components are skipped, and any
/// `..` is refused outright: even a harmless `a/../b` is not worth the risk of
/// getting the lexical reasoning wrong.
fn relative_path(requested: &[u8]) -> Result<PathBuf, PathError> {
    let mut rel = PathBuf::new();
    for part in requested.split(|&b| b == b'/' || b == b'\\') {
        match part {
            b"" | b"." => {}
            b".." => return Err(PathError::Escapes),
            _ => rel.push(crate::sys::os_str_from_bytes(part)),
        }
    }
    if rel.as_os_str().is_empty() {
        Err(PathError::Empty)
    } else if is_temporary_name(rel.file_name().unwrap_or_default()) {
        Err(PathError::Reserved)
    } else {
        Ok(rel)
    }
}

/// Does `name` have the shape of an [`AtomicFile`]'s temporary name?
///
/// The shape is narrow (a leading dot, 16 hex digits, `.part`), so ordinary
/// names such as `.profile.part` or `disk.part` stay usable.
pub fn is_temporary_name(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    let Some(stem) = name
        .strip_prefix(b".")
        .and_then(|n| n.strip_suffix(TEMP_SUFFIX.as_bytes()))
    else {
        return false;
    };
    match stem.len().checked_sub(RANDOM_DIGITS + 1) {
        Some(dot) => stem[dot] == b'.' && stem[dot + 1..].iter().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// The directory a server serves, held open for the server's lifetime.
///
/// Every file it hands out is opened relative to that handle, so renaming or
/// replacing the directory's path later changes nothing.
#[derive(Debug, Clone)]
pub struct Root {
    dir: Arc<Dir>,
    path: PathBuf,
}

impl Root {
    /// Opens `dir`; fails if it does not exist or is not a directory.
    pub fn new(dir: &Path) -> io::Result<Root> {
        // Canonical, for messages: the directory that is really served.
        let path = std::fs::canonicalize(dir)?;
        if !std::fs::metadata(&path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        let dir = Dir::open_ambient_dir(&path, ambient_authority())?;
        Ok(Root {
            dir: Arc::new(dir),
            path,
        })
    }

    /// The served directory, as it was when the server started.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a file to send (RRQ): it must lie inside the root after
    /// following symlinks, be a regular file, and be readable.
    pub fn open(&self, requested: &[u8]) -> Result<File, PathError> {
        let rel = relative_path(requested)?;
        let mut meta = self.dir.symlink_metadata(&rel).map_err(lookup_error)?;
        if meta.file_type().is_symlink() {
            let target = self.link_target(&rel)?;
            meta = self.dir.metadata(&target).map_err(lookup_error)?;
        }
        // The type before the open: opening a device node can already act
        // (a tape rewinds, a watchdog starts).
        if !meta.is_file() {
            return Err(PathError::NotAFile);
        }
        let mut options = OpenOptions::new();
        // And again on the open file, which is what counts: nothing can be
        // swapped in between. O_NONBLOCK keeps a fifo swapped in at the last
        // moment from hanging the open; reads of a regular file ignore it.
        options.read(true);
        crate::sys::open_quietly(&mut options);
        let file = self.dir.open_with(&rel, &options).map_err(lookup_error)?;
        if !file.metadata().map_err(PathError::Io)?.is_file() {
            return Err(PathError::NotAFile);
        }
        Ok(file.into_std())
    }

    /// Where the symlink `rel` leads, inside the root. Never an upload in
    /// progress: through a link, one would be served or replaced after all.
    fn link_target(&self, rel: &Path) -> Result<PathBuf, PathError> {
        let target = self.dir.canonicalize(rel).map_err(lookup_error)?;
        if is_temporary_name(target.file_name().unwrap_or_default()) {
            return Err(PathError::Reserved);
        }
        Ok(target)
    }

    /// Creates the file for an upload (WRQ), under a temporary name.
    ///
    /// Its parent directory must exist inside the root (after following
    /// symlinks). If the file exists it must be a regular file inside the root
    /// (a symlink pointing outside gives [`PathError::Escapes`], a dangling
    /// one [`PathError::NotAFile`]) and `overwrite` must be true, else
    /// [`PathError::Exists`]. For an existing symlink the file it points to is
    /// replaced, so the link survives the upload.
    pub fn create(&self, requested: &[u8], overwrite: bool) -> Result<AtomicFile, PathError> {
        let rel = relative_path(requested)?;
        // `relative_path` never returns a path ending in `..`, `.` or `/`, so
        // there is always a file name.
        let name = rel.file_name().ok_or(PathError::Empty)?;
        let parent = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut dest = self
            .dir
            .canonicalize(parent)
            .map_err(lookup_error)?
            .join(name);
        match self.dir.symlink_metadata(&dest) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(lookup_error(err)),
            Ok(mut meta) => {
                if meta.file_type().is_symlink() {
                    dest = self.link_target(&dest).map_err(|err| match err {
                        PathError::NotFound => PathError::NotAFile,
                        other => other,
                    })?;
                    meta = self.dir.metadata(&dest).map_err(lookup_error)?;
                }
                if !meta.is_file() {
                    return Err(PathError::NotAFile);
                }
                if !overwrite {
                    return Err(PathError::Exists);
                }
            }
        }
        // From here on everything happens in a handle on the destination's
        // directory: whatever is renamed or swapped in the tree meanwhile, the
        // upload lands in the directory it was created in, or nowhere.
        let parent = dest.parent().unwrap_or(Path::new(""));
        let dir = if parent.as_os_str().is_empty() {
            self.dir.try_clone()
        } else {
            self.dir.open_dir(parent)
        }
        .map_err(lookup_error)?;
        let name = dest.file_name().ok_or(PathError::Empty)?;
        AtomicFile::create(dir, self.path.join(parent), name).map_err(lookup_error)
    }
}

/// Makes the random part of temporary names differ between calls and between
/// processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Hex digits of randomness in a temporary name.
const RANDOM_DIGITS: usize = 16;

/// How every temporary name ends.
const TEMP_SUFFIX: &str = ".part";

/// File buffer of a transfer, reading (the server's) or writing ([`AtomicFile`]):
/// TFTP moves 512-byte blocks, which would otherwise be one system call each. A
/// block at least this big (blksize 32768 and up) skips the buffer and goes to or
/// from the file in one call, rather than being copied once more on its way.
pub(crate) const BUFFER_SIZE: usize = 32 * 1024;

/// At most this many bytes of the destination's name go into the temporary
/// name, so that the added `.` + 16 digits + `.part` still fit in the usual
/// 255-byte limit for a file name.
const MAX_NAME_BYTES: usize = 200;

/// A file being received, written under a temporary name and renamed into
/// place by [`AtomicFile::commit`].
///
/// If it is dropped without a commit (an error, a timeout, Ctrl-C, a panic),
/// the temporary file is removed and the destination is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: BufWriter<File>,
    /// The directory both names are in, held open.
    dir: Dir,
    /// That directory's path, for messages and [`AtomicFile::temp_path`].
    base: PathBuf,
    temp: OsString,
    dest: OsString,
    written: u64,
    committed: bool,
    /// fsync before the rename (see [`AtomicFile::sync_on_commit`]).
    sync: bool,
}

impl AtomicFile {
    /// Creates a hidden, unique temporary file beside `dest`:
    /// `.{file name}.{16 hex digits}.part`.
    ///
    /// It lives in the destination's own directory because `rename` is only
    /// atomic within one filesystem, and only the destination's directory is
    /// sure to be on the destination's filesystem (`/tmp` often is not).
    pub fn beside(dest: &Path) -> io::Result<AtomicFile> {
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", dest.display()),
            )
        })?;
        let base = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = Dir::open_ambient_dir(base, ambient_authority())?;
        AtomicFile::create(dir, base.to_path_buf(), name)
    }

    /// Creates the temporary file for `dest`, a file name in `dir`.
    ///
    /// `create_new` (O_CREAT|O_EXCL) never opens anything already there, not
    /// even through a symlink planted under the name we picked, and the name
    /// is random, so concurrent transfers to one destination each get a file
    /// of their own.
    fn create(dir: Dir, base: PathBuf, dest: &OsStr) -> io::Result<AtomicFile> {
        let name = dest.as_encoded_bytes();
        let name = crate::sys::os_str_from_bytes(&name[..name.len().min(MAX_NAME_BYTES)]);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let mut attempts = 0;
        loop {
            let random = RandomState::new().hash_one((
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
            ));
            let mut temp_name = OsString::from(".");
            temp_name.push(&name);
            temp_name.push(format!(
                ".{random:0width$x}{TEMP_SUFFIX}",
                width = RANDOM_DIGITS
            ));
            match dir.open_with(&temp_name, &options) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: BufWriter::with_capacity(BUFFER_SIZE, file.into_std()),
                        dir,
                        base,
                        temp: temp_name,
                        dest: dest.to_os_string(),
                        written: 0,
                        committed: false,
                        sync: true,
                    });
                }
                // Someone has that name (by chance, or planted): draw again.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Whether [`AtomicFile::commit`] first flushes the data to disk (the
    /// default). Without it the rename still never shows a partial file, but a
    /// power cut soon after may leave the new name empty: the trade curl, wget
    /// and tftp-hpa make for a download, whose copy the user can fetch again.
    /// A server that acknowledges an upload keeps it, since the sender may
    /// delete its own copy once told the file is stored.
    pub fn sync_on_commit(mut self, sync: bool) -> AtomicFile {
        self.sync = sync;
        self
    }

    /// Where the data is being written until the commit.
    pub fn temp_path(&self) -> PathBuf {
        self.base.join(&self.temp)
    }

    /// Where the data will be after the commit.
    pub fn dest_path(&self) -> PathBuf {
        self.base.join(&self.dest)
    }

    /// How many bytes have been written so far (including bytes still in the
    /// buffer).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Flushes the data to disk (unless turned off by [`AtomicFile::sync_on_commit`])
    /// and moves the file into place.
    ///
    /// With `overwrite` the file is renamed over any existing destination.
    /// Without it, an existing destination is never replaced and the error
    /// has kind [`io::ErrorKind::AlreadyExists`]. On any error the temporary
    /// file is removed.
    pub fn commit(mut self, overwrite: bool) -> io::Result<()> {
        let result = self.finish(overwrite);
        // On success the temporary name is gone already (renamed or
        // unlinked); on failure `Drop` removes it.
        self.committed = result.is_ok();
        result
    }

    fn finish(&mut self, overwrite: bool) -> io::Result<()> {
        self.file.flush()?;
        // Without fsync, a crash soon after the rename can leave the new name
        // pointing at an empty or partial file (the rename reached the disk,
        // the data did not).
        if self.sync {
            self.file.get_ref().sync_all()?;
        }
        if overwrite {
            // rename(2) replaces the destination atomically: readers see the
            // old file or the new one, never a mix.
            self.dir.rename(&self.temp, &self.dir, &self.dest)
        } else {
            rename_no_clobber(&self.dir, self.temp.as_ref(), self.dest.as_ref())
        }
    }
}

/// Moves `temp` to `dest` (both in `dir`) unless `dest` exists, atomically.
///
/// `rename` would silently replace `dest`, and checking first leaves a gap in
/// which another transfer could create it. `link(2)` instead fails with EEXIST
/// if the new name exists, checking and creating in one step, so after a
/// successful link the file is ours under both names and removing the
/// temporary name completes the "rename".
fn rename_no_clobber(dir: &Dir, temp: &Path, dest: &Path) -> io::Result<()> {
    match dir.hard_link(temp, dir, dest) {
        Ok(()) => {
            // The data is in place under `dest`. Should the unlink fail, the
            // leftover is a second name for the same complete file; not
            // worth failing a finished transfer for.
            let _ = dir.remove_file(temp);
            Ok(())
        }
        // FAT and some network or FUSE filesystems have no hard links
        // (Linux reports EPERM, others EOPNOTSUPP or ENOSYS).
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
            ) && err.raw_os_error().is_some() =>
        {
            rename_if_absent(dir, temp, dest)
        }
        Err(err) => Err(err),
    }
}

/// The fallback for filesystems without hard links: check, then rename. Not
/// atomic (a file created between the two steps is replaced), but the best
/// such a filesystem offers.
fn rename_if_absent(dir: &Dir, temp: &Path, dest: &Path) -> io::Result<()> {
    match dir.symlink_metadata(dest) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => dir.rename(temp, dir, dest),
        Err(err) => Err(err),
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    /// Removes the temporary file unless the commit succeeded. Errors are
    /// ignored: there is nobody to report them to, and the name is hidden and
    /// unique, so a leftover harms nothing.
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.dir.remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testing::{chmod, links, mode, os_str, symlink};
    use std::fs;
    use tempfile::TempDir;

    /// A served directory with `a.txt`, `sub/file` and an empty directory
    /// `emptydir`, and a second directory outside it holding `secret`.
    struct Fixture {
        served: TempDir,
        outside: TempDir,
        root: Root,
    }

    impl Fixture {
        fn new() -> Fixture {
            let served = TempDir::new().unwrap();
            let outside = TempDir::new().unwrap();
            fs::write(served.path().join("a.txt"), b"hello").unwrap();
            fs::create_dir(served.path().join("sub")).unwrap();
            fs::write(served.path().join("sub/file"), b"in sub").unwrap();
            fs::create_dir(served.path().join("emptydir")).unwrap();
            fs::write(outside.path().join("secret"), b"secret").unwrap();
            let root = Root::new(served.path()).unwrap();
            Fixture {
                served,
                outside,
                root,
            }
        }

        /// Asking for `name` gives the served file `file`.
        fn assert_reads(&self, name: &[u8], file: &str) {
            assert_eq!(
                read(&self.root, name).unwrap(),
                fs::read(self.at(file)).unwrap(),
                "{}",
                String::from_utf8_lossy(name)
            );
        }

        /// `name` inside the (canonical) served directory.
        fn at(&self, name: &str) -> PathBuf {
            self.root.path().join(name)
        }

        fn link(&self, name: &str, target: &Path) {
            symlink(target, self.served.path().join(name)).unwrap();
        }
    }

    /// True if permission bits do not stop this process (root, or
    /// CAP_DAC_OVERRIDE): then the permission tests cannot show anything.
    fn permissions_ignored() -> bool {
        let dir = TempDir::new().unwrap();
        let probe = dir.path().join("probe");
        fs::write(&probe, b"x").unwrap();
        chmod(&probe, 0o000);
        File::open(&probe).is_ok()
    }

    fn names_in(dir: &Path) -> Vec<OsString> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    #[track_caller]
    fn assert_refused<T: std::fmt::Debug>(result: Result<T, PathError>, expected: &str) {
        match result {
            Err(err) => assert_eq!(format!("{err:?}"), expected, "{err}"),
            Ok(got) => panic!("expected {expected}, got Ok({got:?})"),
        }
    }

    /// The contents of the file `root.open` gives for `name`.
    fn read(root: &Root, name: &[u8]) -> Result<Vec<u8>, PathError> {
        let mut contents = Vec::new();
        io::Read::read_to_end(&mut root.open(name)?, &mut contents).unwrap();
        Ok(contents)
    }

    /// Where `root.create` would put `name` (its temporary file is dropped
    /// at once, leaving nothing behind).
    fn dest(root: &Root, name: &[u8], overwrite: bool) -> Result<PathBuf, PathError> {
        root.create(name, overwrite).map(|f| f.dest_path())
    }

    #[test]
    fn root_is_canonical_and_must_be_a_directory() {
        let fx = Fixture::new();
        assert_eq!(fx.root.path(), fs::canonicalize(fx.served.path()).unwrap());
        // Given through a symlink, the root is where the link points.
        let elsewhere = TempDir::new().unwrap();
        let link = elsewhere.path().join("served");
        symlink(fx.served.path(), &link).unwrap();
        assert_eq!(Root::new(&link).unwrap().path(), fx.root.path());

        let err = Root::new(&fx.at("a.txt")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        let err = Root::new(&fx.at("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn name_rules() {
        let ok = |name: &[u8], expected: &str| {
            assert_eq!(relative_path(name).unwrap(), Path::new(expected));
        };
        ok(b"a.txt", "a.txt");
        ok(b"/etc/passwd", "etc/passwd");
        ok(b"///a//b/./c/", "a/b/c");
        ok(b"sub\\file", "sub/file");
        ok(b"C:\\x", "C:/x");
        ok(b"...", "...");
        ok(b"..a/a..", "..a/a..");
        for name in [&b"../x"[..], b"a/../b", b"..\\x", b"a\\..", b".."] {
            assert!(matches!(relative_path(name), Err(PathError::Escapes)));
        }
        for name in [&b""[..], b"/", b"./", b".", b"\\", b"//.//./"] {
            assert!(matches!(relative_path(name), Err(PathError::Empty)));
        }
    }

    #[test]
    fn readable_plain_and_nested_files() {
        let fx = Fixture::new();
        fx.assert_reads(b"a.txt", "a.txt");
        fx.assert_reads(b"sub/file", "sub/file");
        fx.assert_reads(b"./sub//./file", "sub/file");
    }

    #[test]
    fn readable_leading_slash_is_inside_root() {
        let fx = Fixture::new();
        fx.assert_reads(b"/a.txt", "a.txt");
        fx.assert_reads(b"//sub/file", "sub/file");
        // ROOT/etc/passwd, which does not exist; not the system's file.
        assert_refused(read(&fx.root, b"/etc/passwd"), "NotFound");
    }

    #[test]
    fn readable_backslash_separator() {
        let fx = Fixture::new();
        fx.assert_reads(b"sub\\file", "sub/file");
        fx.assert_reads(b"\\sub\\file", "sub/file");
    }

    #[test]
    fn readable_refuses_dot_dot() {
        let fx = Fixture::new();
        // Make the lexical escape targets real, so that refusal is not just
        // "not found".
        fs::write(fx.served.path().join("b"), b"b").unwrap();
        for name in [
            &b"../x"[..],
            b"/../../etc/passwd",
            b"a/../../x",
            b"..\\x",
            b"a/../b",
            b"sub/../a.txt",
            b"..",
        ] {
            assert_refused(read(&fx.root, name), "Escapes");
        }
    }

    #[test]
    fn readable_symlink_inside_root() {
        let fx = Fixture::new();
        fx.link("alias", Path::new("a.txt"));
        fx.link("abs-alias", &fx.at("sub/file"));
        fx.link("subdir", Path::new("sub"));
        fx.assert_reads(b"alias", "a.txt");
        // Absolute links are refused even when they point inside: in the
        // sandbox `/` is the served directory, as in a chroot.
        assert_refused(read(&fx.root, b"abs-alias"), "Escapes");
        fx.assert_reads(b"subdir/file", "sub/file");
    }

    #[test]
    fn readable_symlink_outside_root() {
        let fx = Fixture::new();
        fx.link("leak", &fx.outside.path().join("secret"));
        fx.link("outdir", fx.outside.path());
        fx.link(
            "relative-leak",
            // Both temporary directories share a parent: `../OUTSIDE/secret`.
            &Path::new("..")
                .join(fx.outside.path().file_name().unwrap())
                .join("secret"),
        );
        assert_refused(read(&fx.root, b"leak"), "Escapes");
        assert_refused(read(&fx.root, b"outdir/secret"), "Escapes");
        assert_refused(read(&fx.root, b"outdir"), "Escapes");
        assert_refused(read(&fx.root, b"relative-leak"), "Escapes");
    }

    #[test]
    fn directory_swapped_for_a_symlink_between_requests() {
        // What a check-then-open server gets wrong: the name was fine when
        // checked, then a local user replaced a directory with a link out.
        let fx = Fixture::new();
        fs::write(fx.outside.path().join("file"), b"outside").unwrap();
        assert_eq!(read(&fx.root, b"sub/file").unwrap(), b"in sub");
        let upload = fx.root.create(b"sub/new", false).unwrap();
        fs::rename(fx.at("sub"), fx.at("old-sub")).unwrap();
        fx.link("sub", fx.outside.path());
        assert_refused(read(&fx.root, b"sub/file"), "Escapes");
        assert_refused(dest(&fx.root, b"sub/new", false), "Escapes");
        // An upload that started before the swap still lands where it was
        // created, inside the root, never through the new link.
        upload.commit(false).unwrap();
        assert!(fx.at("old-sub/new").exists());
        assert_eq!(names_in(fx.outside.path()), ["file", "secret"]);
    }

    #[test]
    fn a_directory_swapped_back_and_forth_never_leaks_what_is_outside() {
        // The race a check-then-open server loses: while requests run, a
        // local user keeps swapping `sub` between the real directory and a
        // link to a directory outside.
        use std::sync::atomic::AtomicBool;
        let fx = Fixture::new();
        fs::write(fx.outside.path().join("file"), b"outside").unwrap();
        fx.link("sub.link", fx.outside.path());
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = Arc::clone(&stop);
            let [sub, real, link] = ["sub", "sub.dir", "sub.link"].map(|n| fx.at(n));
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    fs::rename(&sub, &real).unwrap();
                    fs::rename(&link, &sub).unwrap();
                    fs::rename(&sub, &link).unwrap();
                    fs::rename(&real, &sub).unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let (mut served, mut refused) = (0, 0);
        for _ in 0..20_000 {
            match read(&fx.root, b"sub/file") {
                Ok(contents) => {
                    assert_eq!(contents, b"in sub", "served from outside the root");
                    served += 1;
                }
                Err(_) => refused += 1,
            }
            if let Ok(upload) = fx.root.create(b"sub/new", true) {
                upload.commit(true).unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        // Both sides of the race were seen, so the test did test something.
        assert!(
            served > 0 && refused > 0 && swaps > 0,
            "{served} {refused} {swaps}"
        );
        assert_eq!(names_in(fx.outside.path()), ["file", "secret"]);
    }

    #[test]
    fn readable_sibling_with_same_prefix_is_outside() {
        // /tmp/X/srv and /tmp/X/srv-other: a string prefix check would let
        // the second pass as inside the first.
        let parent = TempDir::new().unwrap();
        let served = parent.path().join("srv");
        let sibling = parent.path().join("srv-other");
        fs::create_dir(&served).unwrap();
        fs::create_dir(&sibling).unwrap();
        fs::write(sibling.join("f"), b"f").unwrap();
        symlink(&sibling, served.join("link")).unwrap();
        let root = Root::new(&served).unwrap();
        assert_refused(read(&root, b"link/f"), "Escapes");
    }

    #[test]
    fn readable_missing_directory_and_empty() {
        let fx = Fixture::new();
        assert_refused(read(&fx.root, b"missing"), "NotFound");
        assert_refused(read(&fx.root, b"nodir/missing"), "NotFound");
        assert_refused(read(&fx.root, b"a.txt/x"), "NotFound");
        fx.link("dangling", Path::new("gone"));
        assert_refused(read(&fx.root, b"dangling"), "NotFound");
        assert_refused(read(&fx.root, b"sub"), "NotAFile");
        assert_refused(read(&fx.root, b"emptydir/"), "NotAFile");
        for name in [&b""[..], b"/", b"./", b"\\."] {
            assert_refused(read(&fx.root, name), "Empty");
        }
    }

    #[test]
    fn readable_non_utf8_name() {
        let fx = Fixture::new();
        // "你.txt" in GBK, as a Windows client on a Chinese system sends it.
        let name = b"\xc4\xe3.txt";
        let path = fx.served.path().join(os_str(name));
        fs::write(&path, b"gbk").unwrap();
        if crate::sys::PORTABLE {
            // Names must be UTF-8 there (sys::os_str_from_bytes): not found.
            assert_refused(read(&fx.root, name), "NotFound");
        } else {
            assert_eq!(read(&fx.root, name).unwrap(), b"gbk");
        }
        assert_refused(read(&fx.root, b"\xc4\xe3.bin"), "NotFound");
    }

    #[test]
    fn readable_nul_byte_is_refused() {
        let fx = Fixture::new();
        assert!(read(&fx.root, b"a.txt\0x").is_err());
        assert!(dest(&fx.root, b"new\0x", true).is_err());
    }

    #[test]
    fn readable_unreadable_file_is_io_error() {
        if permissions_ignored() {
            eprintln!("skipped: permission bits are not enforced for this user");
            return;
        }
        let fx = Fixture::new();
        let path = fx.at("locked.txt");
        fs::write(&path, b"x").unwrap();
        chmod(&path, 0o000);
        let err = read(&fx.root, b"locked.txt").unwrap_err();
        assert!(matches!(err, PathError::Io(_)), "{err:?}");
        assert_eq!(err.to_string(), "permission denied");

        // A directory that may not be searched hides what is inside.
        let dir = fx.at("closed");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("f"), b"f").unwrap();
        chmod(&dir, 0o000);
        let err = read(&fx.root, b"closed/f").unwrap_err();
        chmod(&dir, 0o755);
        assert!(matches!(err, PathError::Io(_)), "{err:?}");
    }

    #[test]
    fn io_error_is_one_short_line() {
        let err = PathError::Io(io::Error::from_raw_os_error(13));
        assert_eq!(err.to_string(), "permission denied");
        let err = PathError::Io(io::Error::from_raw_os_error(5));
        assert_eq!(err.to_string(), "input/output error");
        let err = PathError::Io(io::Error::other("disk on fire"));
        assert_eq!(err.to_string(), "disk on fire");
        assert_eq!(
            PathError::Escapes.to_string(),
            "path leaves the served directory"
        );
    }

    #[test]
    fn writable_new_files() {
        let fx = Fixture::new();
        assert_eq!(dest(&fx.root, b"new.txt", false).unwrap(), fx.at("new.txt"));
        assert_eq!(
            dest(&fx.root, b"/sub\\new", false).unwrap(),
            fx.at("sub/new")
        );
        // Checking creates nothing.
        assert!(!fx.at("new.txt").exists());
        let name = b"\xc4\xe3.txt";
        let dest = dest(&fx.root, name, false).unwrap();
        // The portable path makes names UTF-8 (sys::os_str_from_bytes).
        let want = crate::sys::os_str_from_bytes(name);
        assert_eq!(dest.file_name().unwrap(), want);
        if !crate::sys::PORTABLE {
            assert_eq!(want.as_encoded_bytes(), name);
        }
    }

    #[test]
    fn writable_refusals() {
        let fx = Fixture::new();
        for (name, overwrite, why) in [
            (&b"nodir/new"[..], true, "NotFound"),
            (b"a.txt/new", true, "NotFound"),
            (b"a.txt", false, "Exists"),
            (b"sub", true, "NotAFile"),
            (b"sub", false, "NotAFile"),
            (b"../new", true, "Escapes"),
            (b"sub/../new", true, "Escapes"),
            (b"/", true, "Empty"),
            (b"", true, "Empty"),
        ] {
            assert_refused(dest(&fx.root, name, overwrite), why);
        }
        assert_eq!(dest(&fx.root, b"a.txt", true).unwrap(), fx.at("a.txt"));
    }

    #[test]
    fn writable_symlinks() {
        let fx = Fixture::new();
        fx.link("leak", &fx.outside.path().join("secret"));
        fx.link("outdir", fx.outside.path());
        fx.link("alias", Path::new("sub/file"));
        fx.link("subdir", Path::new("sub"));
        fx.link("dangling", Path::new("gone"));
        for overwrite in [false, true] {
            assert_refused(dest(&fx.root, b"leak", overwrite), "Escapes");
            assert_refused(dest(&fx.root, b"outdir/new", overwrite), "Escapes");
            assert_refused(dest(&fx.root, b"outdir/secret", overwrite), "Escapes");
            assert_refused(dest(&fx.root, b"dangling", overwrite), "NotAFile");
        }
        assert_refused(dest(&fx.root, b"alias", false), "Exists");
        // Overwriting through a link inside the root replaces its target.
        assert_eq!(dest(&fx.root, b"alias", true).unwrap(), fx.at("sub/file"));
        assert_eq!(
            dest(&fx.root, b"subdir/new", false).unwrap(),
            fx.at("sub/new")
        );
    }

    #[test]
    fn atomic_file_invisible_until_commit() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("out.bin");
        let mut file = AtomicFile::beside(&dest).unwrap();
        assert_eq!(file.dest_path(), dest);
        let temp = file.temp_path().to_path_buf();
        assert_eq!(temp.parent(), Some(dir.path()));
        let temp_name = temp.file_name().unwrap().to_str().unwrap();
        assert!(temp_name.starts_with(".out.bin."), "{temp_name}");
        assert!(is_temporary_name(temp.file_name().unwrap()), "{temp_name}");

        file.write_all(b"hello, ").unwrap();
        file.write_all(b"world").unwrap();
        file.flush().unwrap();
        assert_eq!(file.bytes_written(), 12);
        assert!(!dest.exists());
        assert_eq!(fs::read(&temp).unwrap(), b"hello, world");

        file.commit(false).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello, world");
        assert!(!temp.exists());
        assert_eq!(names_in(dir.path()), ["out.bin"]);
        // The temporary name was unlinked, not left as a second hard link.
        assert_eq!(links(&dest), 1);
    }

    #[test]
    fn atomic_file_gets_normal_permissions() {
        let dir = TempDir::new().unwrap();
        let reference = dir.path().join("reference");
        File::create(&reference).unwrap();
        let dest = dir.path().join("out");
        let mut file = AtomicFile::beside(&dest).unwrap();
        file.write_all(b"x").unwrap();
        file.commit(false).unwrap();
        assert_eq!(mode(&dest) & 0o777, mode(&reference) & 0o777);
    }

    #[test]
    fn atomic_file_without_fsync_still_commits_every_byte_in_order() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("fast");
        // Blocks around the buffer's size: some buffered, some written straight.
        let sizes = [512, BUFFER_SIZE - 1, BUFFER_SIZE, 65464, 7, BUFFER_SIZE + 1];
        let mut data = Vec::new();
        let mut file = AtomicFile::beside(&dest).unwrap().sync_on_commit(false);
        for (i, n) in sizes.into_iter().enumerate() {
            let block: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            file.write_all(&block).unwrap();
            data.extend_from_slice(&block);
        }
        assert!(!dest.exists());
        file.commit(true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), data);
        assert_eq!(names_in(dir.path()), ["fast"]);
    }

    #[test]
    fn atomic_file_large_write() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("big");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = AtomicFile::beside(&dest).unwrap();
        for block in data.chunks(512) {
            file.write_all(block).unwrap();
        }
        assert_eq!(file.bytes_written(), data.len() as u64);
        file.commit(true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), data);
    }

    /// `name` holding `old` in a new directory, and an [`AtomicFile`] beside it
    /// with `new` written: the directory, `name`'s path, the file, its temporary path.
    fn replacing(name: &str, old: &[u8], new: &[u8]) -> (TempDir, PathBuf, AtomicFile, PathBuf) {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join(name);
        fs::write(&dest, old).unwrap();
        let mut file = AtomicFile::beside(&dest).unwrap();
        let temp = file.temp_path().to_path_buf();
        file.write_all(new).unwrap();
        (dir, dest, file, temp)
    }

    #[test]
    fn atomic_file_drop_without_commit() {
        let (dir, dest, mut file, temp) = replacing("keep.txt", b"old contents", b"half a transf");
        file.flush().unwrap();
        drop(file);
        assert!(!temp.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"old contents");
        assert_eq!(names_in(dir.path()), ["keep.txt"]);

        // Also when nothing existed: nothing at all is left.
        let fresh = dir.path().join("fresh");
        let mut file = AtomicFile::beside(&fresh).unwrap();
        file.write_all(b"abandoned").unwrap();
        drop(file);
        assert_eq!(names_in(dir.path()), ["keep.txt"]);
    }

    #[test]
    fn atomic_file_commit_without_overwrite_keeps_existing() {
        let (dir, dest, file, temp) = replacing("exists.txt", b"original", b"intruder");
        let err = file.commit(false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dest).unwrap(), b"original");
        assert!(!temp.exists());
        assert_eq!(names_in(dir.path()), ["exists.txt"]);

        // Not even a dangling symlink is replaced.
        let link = dir.path().join("link");
        symlink(dir.path().join("nowhere"), &link).unwrap();
        let file = AtomicFile::beside(&link).unwrap();
        let err = file.commit(false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn atomic_file_commit_with_overwrite_replaces() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("exists.txt");
        fs::write(&dest, b"a much longer original text").unwrap();
        let mut file = AtomicFile::beside(&dest).unwrap();
        file.write_all(b"new").unwrap();
        file.commit(true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(names_in(dir.path()), ["exists.txt"]);
    }

    #[test]
    fn atomic_file_failed_commit_removes_temp() {
        // Renaming a file over a directory fails (EISDIR).
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("adir");
        fs::create_dir(&dest).unwrap();
        let mut file = AtomicFile::beside(&dest).unwrap();
        file.write_all(b"x").unwrap();
        assert!(file.commit(true).is_err());
        assert_eq!(names_in(dir.path()), ["adir"]);
        assert!(dest.is_dir());
    }

    #[test]
    fn atomic_file_never_writes_through_a_planted_name() {
        // The attack on the old fixed `LOCAL.part`: a symlink planted under
        // the temporary name made the download overwrite its target.
        let dir = TempDir::new().unwrap();
        let victim = dir.path().join("v.txt");
        fs::write(&victim, b"precious").unwrap();
        symlink(&victim, dir.path().join("dl.bin.part")).unwrap();
        symlink(&victim, dir.path().join(".dl.bin.part")).unwrap();
        let dest = dir.path().join("dl.bin");
        let mut file = AtomicFile::beside(&dest).unwrap();
        file.write_all(b"download").unwrap();
        file.commit(true).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&dest).unwrap(), b"download");
    }

    #[test]
    fn temporary_names_are_reserved_both_ways() {
        let fx = Fixture::new();
        let mut upload = fx.root.create(b"up.bin", false).unwrap();
        upload.write_all(b"half").unwrap();
        upload.flush().unwrap();
        let temp = upload.temp_path();
        let temp_name = temp.file_name().unwrap().as_encoded_bytes().to_vec();
        // The upload in progress is neither served nor replaceable...
        assert_refused(read(&fx.root, &temp_name), "Reserved");
        assert_refused(dest(&fx.root, &temp_name, true), "Reserved");
        // ...and names of that shape are refused whether or not they exist,
        // so an RRQ and a WRQ for one name always get the same answer.
        for name in [
            &b".w.0123456789abcdef.part"[..],
            b"sub/.x.ffffffffffffffff.part",
        ] {
            assert_refused(read(&fx.root, name), "Reserved");
            assert_refused(dest(&fx.root, name, true), "Reserved");
        }
        // Nor through a link planted by a local user.
        symlink(os_str(&temp_name), fx.at("link")).unwrap();
        assert_refused(read(&fx.root, b"link"), "Reserved");
        fs::remove_file(fx.at("link")).unwrap();
        // Ordinary names that merely look similar are fine.
        for name in [
            &b".w.1.2.part"[..],
            b"disk.part",
            b".profile.part",
            b".x.0123.part",
        ] {
            assert!(!is_temporary_name(os_str(name)), "{name:?}");
            dest(&fx.root, name, false).unwrap();
        }
        drop(upload);
        assert_eq!(names_in(fx.root.path()), ["a.txt", "emptydir", "sub"]);
    }

    #[test]
    fn atomic_file_temp_names_are_unique() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("same");
        let mut first = AtomicFile::beside(&dest).unwrap();
        let mut second = AtomicFile::beside(&dest).unwrap();
        assert_ne!(first.temp_path(), second.temp_path());
        first.write_all(b"first").unwrap();
        second.write_all(b"second").unwrap();
        first.commit(false).unwrap();
        // The slower of two uploads to the same new name loses, without
        // damaging the winner's file.
        let err = second.commit(false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dest).unwrap(), b"first");
        assert_eq!(names_in(dir.path()), ["same"]);
    }

    #[test]
    fn atomic_file_long_name_fits() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("n".repeat(255));
        let mut file = AtomicFile::beside(&dest).unwrap();
        file.write_all(b"long").unwrap();
        file.commit(false).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"long");
    }

    #[test]
    fn atomic_file_needs_a_file_name() {
        let err = AtomicFile::beside(Path::new("/")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn atomic_file_in_unwritable_directory() {
        if permissions_ignored() {
            eprintln!("skipped: permission bits are not enforced for this user");
            return;
        }
        let dir = TempDir::new().unwrap();
        let locked = dir.path().join("ro");
        fs::create_dir(&locked).unwrap();
        chmod(&locked, 0o555);
        let err = AtomicFile::beside(&locked.join("x")).unwrap_err();
        chmod(&locked, 0o755);
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn fallback_rename_never_replaces() {
        // The path taken on filesystems without hard links.
        let dir = TempDir::new().unwrap();
        let temp = dir.path().join("temp");
        let dest = dir.path().join("dest");
        fs::write(&temp, b"new").unwrap();
        fs::write(&dest, b"old").unwrap();
        let handle = Dir::open_ambient_dir(dir.path(), ambient_authority()).unwrap();
        let err = rename_if_absent(&handle, Path::new("temp"), Path::new("dest")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        fs::remove_file(&dest).unwrap();
        rename_if_absent(&handle, Path::new("temp"), Path::new("dest")).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert!(!temp.exists());
    }
}
