//! Files for TFTP: keeping every requested path inside the served directory, and receiving files under a temporary name so that only complete transfers ever appear.
//!
//! A TFTP request carries a file name chosen by whoever sent the packet. A
//! server that simply opened `DIR/NAME` could be asked for
//! `../../etc/passwd`, or could follow a symlink out of `DIR`. [`Root`] turns
//! a requested name into a path that is known to lie inside the served
//! directory, or refuses it with a [`PathError`] that the server maps to a
//! TFTP error code.
//!
//! UDP transfers fail halfway all the time (a lost client, a timeout, Ctrl-C).
//! A file written straight to its final name would then be left truncated, and
//! an existing file being overwritten would be destroyed. [`AtomicFile`]
//! writes to a temporary name and renames it into place only in
//! [`AtomicFile::commit`]; if it is dropped without a commit, the temporary
//! file is removed and nothing else has changed.
//!
//! Unix only: names are raw bytes, turned into paths with
//! [`std::os::unix::ffi::OsStrExt`], so GBK or any other non-UTF-8 name
//! reaches the filesystem unchanged.
//!
//! The checks are made when a request arrives; a local user who can change the
//! served tree could still swap a directory for a symlink between the check
//! and the `open`. Closing that gap needs `openat2(RESOLVE_BENEATH)`, which
//! std does not offer; for a course tool serving its own directory this is an
//! accepted limit.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a requested path was refused.
///
/// The server maps these to TFTP error codes: [`PathError::NotFound`] to 1
/// ("file not found"), [`PathError::Exists`] to 6 ("file already exists"),
/// everything else to 2 ("access violation").
#[derive(Debug, thiserror::Error)]
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
    /// Any other I/O error (permission denied, ...). Displayed as one short
    /// line such as `permission denied`, fit for a TFTP error packet.
    #[error("{}", describe(.0))]
    Io(#[source] io::Error),
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

/// Maps an error from looking a path up. ENOTDIR (`file.txt/x`) is a "not
/// found" too: there is no such directory.
fn lookup_error(err: io::Error) -> PathError {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => PathError::NotFound,
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
            _ => rel.push(OsStr::from_bytes(part)),
        }
    }
    if rel.as_os_str().is_empty() {
        Err(PathError::Empty)
    } else {
        Ok(rel)
    }
}

/// The directory a server serves, canonicalised once at start-up.
///
/// Every path it hands out is canonical (symlinks resolved) and starts with
/// [`Root::path`].
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// Canonicalises `dir`; fails if it does not exist or is not a directory.
    pub fn new(dir: &Path) -> io::Result<Root> {
        let dir = fs::canonicalize(dir)?;
        if !fs::metadata(&dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Root { dir })
    }

    /// The canonical served directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Resolves `rel` against the root, following every symlink, and checks
    /// that the result is still inside. `starts_with` compares whole
    /// components, so `/srv/tftp-other` is not inside `/srv/tftp`.
    fn resolve(&self, rel: &Path) -> Result<PathBuf, PathError> {
        let canonical = fs::canonicalize(self.dir.join(rel)).map_err(lookup_error)?;
        if canonical.starts_with(&self.dir) {
            Ok(canonical)
        } else {
            Err(PathError::Escapes)
        }
    }

    /// Path of a file to send (RRQ): it must exist, be a regular file, lie
    /// inside the root after following symlinks, and be readable.
    ///
    /// The returned path is canonical.
    pub fn readable(&self, requested: &[u8]) -> Result<PathBuf, PathError> {
        let rel = relative_path(requested)?;
        let path = self.resolve(&rel)?;
        let meta = fs::metadata(&path).map_err(lookup_error)?;
        if !meta.is_file() {
            return Err(PathError::NotAFile);
        }
        // Trying the open now (safe: it is a regular file, so it cannot block
        // like a fifo) turns "permission denied" into a clean refusal before
        // the transfer starts.
        File::open(&path).map_err(PathError::Io)?;
        Ok(path)
    }

    /// Path of a file to receive (WRQ).
    ///
    /// Its parent directory must exist inside the root (after following
    /// symlinks). If the file exists it must be a regular file inside the root
    /// (a symlink pointing outside gives [`PathError::Escapes`], a dangling
    /// one [`PathError::NotAFile`]) and `overwrite` must be true, else
    /// [`PathError::Exists`].
    ///
    /// Returns the destination (write it with [`AtomicFile::beside`]). For an
    /// existing symlink this is the file it points to, so the link survives
    /// the upload and the temporary file is made in the target's directory.
    pub fn writable(&self, requested: &[u8], overwrite: bool) -> Result<PathBuf, PathError> {
        let rel = relative_path(requested)?;
        // `relative_path` never returns a path ending in `..`, `.` or `/`, so
        // there is always a file name.
        let name = rel.file_name().ok_or(PathError::Empty)?;
        let parent = self.resolve(rel.parent().unwrap_or(Path::new("")))?;
        if !fs::metadata(&parent).map_err(lookup_error)?.is_dir() {
            // `file.txt/new`: there is no such directory.
            return Err(PathError::NotFound);
        }
        let dest = parent.join(name);
        match fs::symlink_metadata(&dest) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(dest),
            Err(err) => return Err(PathError::Io(err)),
            Ok(_) => {}
        }
        // Something is there already; follow it if it is a symlink.
        let target = match fs::canonicalize(&dest) {
            Ok(target) => target,
            Err(err) => {
                return Err(match lookup_error(err) {
                    PathError::NotFound => PathError::NotAFile,
                    other => other,
                });
            }
        };
        if !target.starts_with(&self.dir) {
            return Err(PathError::Escapes);
        }
        if !fs::metadata(&target).map_err(lookup_error)?.is_file() {
            return Err(PathError::NotAFile);
        }
        if !overwrite {
            return Err(PathError::Exists);
        }
        Ok(target)
    }
}

/// Numbers the temporary files of this process, so that two transfers to the
/// same destination never share a temporary name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// File buffer of a transfer, reading (the server's) or writing ([`AtomicFile`]):
/// TFTP moves 512-byte blocks, which would otherwise be one system call each. A
/// block at least this big (blksize 32768 and up) skips the buffer and goes to or
/// from the file in one call, rather than being copied once more on its way.
pub(crate) const BUFFER_SIZE: usize = 32 * 1024;

/// At most this many bytes of the destination's name go into the temporary
/// name, so that the added `.` + pid + counter + `.part` still fit in the
/// usual 255-byte limit for a file name.
const MAX_NAME_BYTES: usize = 200;

/// A file being received, written under a temporary name and renamed into
/// place by [`AtomicFile::commit`].
///
/// If it is dropped without a commit (an error, a timeout, a panic), the
/// temporary file is removed and the destination is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: BufWriter<File>,
    temp: PathBuf,
    dest: PathBuf,
    written: u64,
    committed: bool,
    /// fsync before the rename (see [`AtomicFile::sync_on_commit`]).
    sync: bool,
}

impl AtomicFile {
    /// Creates a hidden, unique temporary file beside `dest`:
    /// `.{file name}.{pid}.{counter}.part`.
    ///
    /// It lives in the destination's own directory because `rename` is only
    /// atomic within one filesystem, and only the destination's directory is
    /// sure to be on the destination's filesystem (`/tmp` often is not). It
    /// is created with `create_new`, so an existing file is never reused.
    pub fn beside(dest: &Path) -> io::Result<AtomicFile> {
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", dest.display()),
            )
        })?;
        let dir = dest.parent().unwrap_or(Path::new(""));
        let name = name.as_bytes();
        let name = OsStr::from_bytes(&name[..name.len().min(MAX_NAME_BYTES)]);
        let pid = std::process::id();
        let mut attempts = 0;
        loop {
            let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut temp_name = OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{pid}.{counter}.part"));
            let temp = dir.join(temp_name);
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => return Ok(AtomicFile::new(file, temp, dest)),
                // A leftover from an earlier process that had the same pid
                // (after a crash): take the next number.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Uses `temp` as the temporary file (for example `LOCAL.part` for a
    /// client download), creating it or truncating a stale one.
    ///
    /// `temp` should be in the same directory as `dest`, or at least on the
    /// same filesystem, or the final rename fails.
    pub fn at(dest: &Path, temp: &Path) -> io::Result<AtomicFile> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(temp)?;
        Ok(AtomicFile::new(file, temp.to_path_buf(), dest))
    }

    fn new(file: File, temp: PathBuf, dest: &Path) -> AtomicFile {
        AtomicFile {
            file: BufWriter::with_capacity(BUFFER_SIZE, file),
            temp,
            dest: dest.to_path_buf(),
            written: 0,
            committed: false,
            sync: true,
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
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Where the data will be after the commit.
    pub fn dest_path(&self) -> &Path {
        &self.dest
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
            fs::rename(&self.temp, &self.dest)
        } else {
            rename_no_clobber(&self.temp, &self.dest)
        }
    }
}

/// Moves `temp` to `dest` unless `dest` exists, atomically.
///
/// `rename` would silently replace `dest`, and checking first leaves a gap in
/// which another transfer could create it. `link(2)` instead fails with EEXIST
/// if the new name exists, checking and creating in one step, so after a
/// successful link the file is ours under both names and removing the
/// temporary name completes the "rename".
fn rename_no_clobber(temp: &Path, dest: &Path) -> io::Result<()> {
    match fs::hard_link(temp, dest) {
        Ok(()) => {
            // The data is in place under `dest`. Should the unlink fail, the
            // leftover is a second name for the same complete file; not
            // worth failing a finished transfer for.
            let _ = fs::remove_file(temp);
            Ok(())
        }
        // FAT and some network or FUSE filesystems have no hard links
        // (Linux reports EPERM, others EOPNOTSUPP or ENOSYS).
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
            ) =>
        {
            rename_if_absent(temp, dest)
        }
        Err(err) => Err(err),
    }
}

/// The fallback for filesystems without hard links: check, then rename. Not
/// atomic (a file created between the two steps is replaced), but the best
/// std offers there.
fn rename_if_absent(temp: &Path, dest: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => fs::rename(temp, dest),
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
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
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
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
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
    fn assert_refused(result: Result<PathBuf, PathError>, expected: &str) {
        match result {
            Err(err) => assert_eq!(format!("{err:?}"), expected, "{err}"),
            Ok(path) => panic!("expected {expected}, got Ok({})", path.display()),
        }
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
        assert_eq!(fx.root.readable(b"a.txt").unwrap(), fx.at("a.txt"));
        assert_eq!(fx.root.readable(b"sub/file").unwrap(), fx.at("sub/file"));
        assert_eq!(
            fx.root.readable(b"./sub//./file").unwrap(),
            fx.at("sub/file")
        );
    }

    #[test]
    fn readable_leading_slash_is_inside_root() {
        let fx = Fixture::new();
        assert_eq!(fx.root.readable(b"/a.txt").unwrap(), fx.at("a.txt"));
        assert_eq!(fx.root.readable(b"//sub/file").unwrap(), fx.at("sub/file"));
        // ROOT/etc/passwd, which does not exist; not the system's file.
        assert_refused(fx.root.readable(b"/etc/passwd"), "NotFound");
    }

    #[test]
    fn readable_backslash_separator() {
        let fx = Fixture::new();
        assert_eq!(fx.root.readable(b"sub\\file").unwrap(), fx.at("sub/file"));
        assert_eq!(fx.root.readable(b"\\sub\\file").unwrap(), fx.at("sub/file"));
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
            assert_refused(fx.root.readable(name), "Escapes");
        }
    }

    #[test]
    fn readable_symlink_inside_root() {
        let fx = Fixture::new();
        fx.link("alias", Path::new("a.txt"));
        fx.link("abs-alias", &fx.at("sub/file"));
        fx.link("subdir", Path::new("sub"));
        assert_eq!(fx.root.readable(b"alias").unwrap(), fx.at("a.txt"));
        assert_eq!(fx.root.readable(b"abs-alias").unwrap(), fx.at("sub/file"));
        assert_eq!(fx.root.readable(b"subdir/file").unwrap(), fx.at("sub/file"));
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
        assert_refused(fx.root.readable(b"leak"), "Escapes");
        assert_refused(fx.root.readable(b"outdir/secret"), "Escapes");
        assert_refused(fx.root.readable(b"outdir"), "Escapes");
        assert_refused(fx.root.readable(b"relative-leak"), "Escapes");
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
        assert_refused(root.readable(b"link/f"), "Escapes");
    }

    #[test]
    fn readable_missing_directory_and_empty() {
        let fx = Fixture::new();
        assert_refused(fx.root.readable(b"missing"), "NotFound");
        assert_refused(fx.root.readable(b"nodir/missing"), "NotFound");
        assert_refused(fx.root.readable(b"a.txt/x"), "NotFound");
        fx.link("dangling", &fx.at("gone"));
        assert_refused(fx.root.readable(b"dangling"), "NotFound");
        assert_refused(fx.root.readable(b"sub"), "NotAFile");
        assert_refused(fx.root.readable(b"emptydir/"), "NotAFile");
        for name in [&b""[..], b"/", b"./", b"\\."] {
            assert_refused(fx.root.readable(name), "Empty");
        }
    }

    #[test]
    fn readable_non_utf8_name() {
        let fx = Fixture::new();
        // "你.txt" in GBK, as a Windows client on a Chinese system sends it.
        let name = b"\xc4\xe3.txt";
        let path = fx.served.path().join(OsStr::from_bytes(name));
        fs::write(&path, b"gbk").unwrap();
        let found = fx.root.readable(name).unwrap();
        assert_eq!(found.file_name().unwrap().as_bytes(), name);
        assert_eq!(fs::read(found).unwrap(), b"gbk");
        assert_refused(fx.root.readable(b"\xc4\xe3.bin"), "NotFound");
    }

    #[test]
    fn readable_nul_byte_is_refused() {
        let fx = Fixture::new();
        assert!(fx.root.readable(b"a.txt\0x").is_err());
        assert!(fx.root.writable(b"new\0x", true).is_err());
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
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        let err = fx.root.readable(b"locked.txt").unwrap_err();
        assert!(matches!(err, PathError::Io(_)), "{err:?}");
        assert_eq!(err.to_string(), "permission denied");

        // A directory that may not be searched hides what is inside.
        let dir = fx.at("closed");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("f"), b"f").unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o000)).unwrap();
        let err = fx.root.readable(b"closed/f").unwrap_err();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
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
        assert_eq!(
            fx.root.writable(b"new.txt", false).unwrap(),
            fx.at("new.txt")
        );
        assert_eq!(
            fx.root.writable(b"/sub\\new", false).unwrap(),
            fx.at("sub/new")
        );
        // Checking creates nothing.
        assert!(!fx.at("new.txt").exists());
        let name = b"\xc4\xe3.txt";
        let dest = fx.root.writable(name, false).unwrap();
        assert_eq!(dest.file_name().unwrap().as_bytes(), name);
    }

    #[test]
    fn writable_missing_parent() {
        let fx = Fixture::new();
        assert_refused(fx.root.writable(b"nodir/new", true), "NotFound");
        assert_refused(fx.root.writable(b"a.txt/new", true), "NotFound");
    }

    #[test]
    fn writable_existing_file() {
        let fx = Fixture::new();
        assert_refused(fx.root.writable(b"a.txt", false), "Exists");
        assert_eq!(fx.root.writable(b"a.txt", true).unwrap(), fx.at("a.txt"));
        assert_refused(fx.root.writable(b"sub", true), "NotAFile");
        assert_refused(fx.root.writable(b"sub", false), "NotAFile");
    }

    #[test]
    fn writable_name_rules() {
        let fx = Fixture::new();
        assert_refused(fx.root.writable(b"../new", true), "Escapes");
        assert_refused(fx.root.writable(b"sub/../new", true), "Escapes");
        assert_refused(fx.root.writable(b"/", true), "Empty");
        assert_refused(fx.root.writable(b"", true), "Empty");
    }

    #[test]
    fn writable_symlinks() {
        let fx = Fixture::new();
        fx.link("leak", &fx.outside.path().join("secret"));
        fx.link("outdir", fx.outside.path());
        fx.link("alias", Path::new("sub/file"));
        fx.link("subdir", Path::new("sub"));
        fx.link("dangling", &fx.at("gone"));
        for overwrite in [false, true] {
            assert_refused(fx.root.writable(b"leak", overwrite), "Escapes");
            assert_refused(fx.root.writable(b"outdir/new", overwrite), "Escapes");
            assert_refused(fx.root.writable(b"outdir/secret", overwrite), "Escapes");
            assert_refused(fx.root.writable(b"dangling", overwrite), "NotAFile");
        }
        assert_refused(fx.root.writable(b"alias", false), "Exists");
        // Overwriting through a link inside the root replaces its target.
        assert_eq!(fx.root.writable(b"alias", true).unwrap(), fx.at("sub/file"));
        assert_eq!(
            fx.root.writable(b"subdir/new", false).unwrap(),
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
        let prefix = format!(".out.bin.{}.", std::process::id());
        assert!(temp_name.starts_with(&prefix), "{temp_name}");
        assert!(temp_name.ends_with(".part"), "{temp_name}");

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
        assert_eq!(fs::metadata(&dest).unwrap().nlink(), 1);
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
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dest), mode(&reference));
    }

    #[test]
    fn atomic_file_without_fsync_still_commits_every_byte_in_order() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("fast");
        // Blocks around the buffer's size: some buffered, some written straight.
        let sizes = [512, BUFFER_SIZE - 1, BUFFER_SIZE, 65464, 7, BUFFER_SIZE + 1];
        let mut data = Vec::new();
        let mut file = AtomicFile::at(&dest, &dir.path().join("fast.part"))
            .unwrap()
            .sync_on_commit(false);
        for (i, n) in sizes.into_iter().enumerate() {
            let block: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            file.write_all(&block).unwrap();
            data.extend_from_slice(&block);
        }
        assert!(!dest.exists());
        file.commit(true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), data);
        assert!(!dir.path().join("fast.part").exists());
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

    #[test]
    fn atomic_file_drop_without_commit() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("keep.txt");
        fs::write(&dest, b"old contents").unwrap();
        let mut file = AtomicFile::beside(&dest).unwrap();
        let temp = file.temp_path().to_path_buf();
        file.write_all(b"half a transf").unwrap();
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
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("exists.txt");
        fs::write(&dest, b"original").unwrap();
        let mut file = AtomicFile::beside(&dest).unwrap();
        let temp = file.temp_path().to_path_buf();
        file.write_all(b"intruder").unwrap();
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
    fn atomic_file_at_truncates_stale_part() {
        let dir = TempDir::new().unwrap();
        let dest = dir.path().join("download.bin");
        let part = dir.path().join("download.bin.part");
        fs::write(&part, b"stale data from an earlier attempt").unwrap();
        let mut file = AtomicFile::at(&dest, &part).unwrap();
        assert_eq!(file.temp_path(), part);
        assert_eq!(file.dest_path(), dest);
        file.write_all(b"fresh").unwrap();
        file.flush().unwrap();
        assert_eq!(fs::read(&part).unwrap(), b"fresh");
        assert!(!dest.exists());
        file.commit(true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"fresh");
        assert_eq!(names_in(dir.path()), ["download.bin"]);

        // Abandoned: the .part goes too.
        let mut file = AtomicFile::at(&dest, &part).unwrap();
        file.write_all(b"partial").unwrap();
        drop(file);
        assert_eq!(names_in(dir.path()), ["download.bin"]);
        assert_eq!(fs::read(&dest).unwrap(), b"fresh");
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
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
        let err = AtomicFile::beside(&locked.join("x")).unwrap_err();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
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
        let err = rename_if_absent(&temp, &dest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        fs::remove_file(&dest).unwrap();
        rename_if_absent(&temp, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert!(!temp.exists());
    }
}
