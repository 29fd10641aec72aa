//! Whose move an error is: the user's (a bad flag, port, address or encoding label: exit 2) or the world's (refused, timed out, reset: exit 1).
//!
//! Every error type of the crate answers [`Blame::is_usage`] itself, delegating to
//! the error it wraps, so a binary never has to know the crate's error types to pick
//! an exit code. [`Error`] is what a binary's `run` returns: any crate error (or
//! an [`io::Error`]) converts into it with `?`, and it remembers the answer.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// A mistake on the command line that only the program, not clap, can see
/// (`--reply` text the encoding cannot carry, a message too long for a datagram).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Is this error the user's to fix, by changing the command line?
pub trait Blame {
    /// `true`: the input was wrong (exit 2); `false`: something failed while
    /// running (exit 1).
    fn is_usage(&self) -> bool;
}

impl Blame for UsageError {
    fn is_usage(&self) -> bool {
        true
    }
}

/// Errors from the operating system are never the command line's fault: a bad
/// address is an [`crate::addr::AddrError`] before any socket exists.
impl Blame for io::Error {
    fn is_usage(&self) -> bool {
        false
    }
}

/// Any error from the library, with its [`Blame`] decided when it was made.
/// Binaries return it from `run` and hand it to `cli::report`.
pub struct Error {
    inner: Box<dyn StdError + Send + Sync + 'static>,
    usage: bool,
}

/// A runtime failure a binary describes itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl Error {
    /// A runtime failure (exit 1) described by `message`.
    pub fn runtime(message: impl Into<String>) -> Error {
        Error {
            inner: Box::new(Failure(message.into())),
            usage: false,
        }
    }

    /// A usage error (exit 2) described by `message`.
    pub fn usage(message: impl Into<String>) -> Error {
        UsageError(message.into()).into()
    }

    /// Was it the user's input?
    pub fn is_usage(&self) -> bool {
        self.usage
    }

    /// The error itself, to walk its causes.
    pub fn as_std(&self) -> &(dyn StdError + 'static) {
        self.inner.as_ref()
    }
}

impl<E: StdError + Blame + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Error {
        Error {
            usage: error.is_usage(),
            inner: Box::new(error),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&one_line(self.as_std()))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("inner", &self.inner)
            .field("usage", &self.usage)
            .finish()
    }
}

/// The one-line form of an error and its causes: `outer: inner: innermost`. A cause
/// whose text the line already contains is not repeated.
pub fn one_line(err: &(dyn StdError + 'static)) -> String {
    let mut line = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cur = e.source();
    }
    line.replace('\n', " ")
}

/// Did writing fail because the reader went away (`tcp-client … | head -1`)? That
/// is how a pipeline ends, not an error.
pub fn is_broken_pipe(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::BrokenPipe {
                return true;
            }
            // `io::Error::other(inner)` reports only inner's own source, not inner.
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_is_decided_by_the_error_that_converts() {
        assert!(Error::from(UsageError("bad".into())).is_usage());
        assert!(Error::usage("bad").is_usage());
        assert!(!Error::from(io::Error::other("refused")).is_usage());
        assert!(!Error::runtime("timed out").is_usage());
        assert_eq!(Error::runtime("timed out").to_string(), "timed out");
    }

    #[test]
    fn broken_pipe_is_found_inside_other_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("writing output: {0}")]
        struct Output(#[source] io::Error);
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&pipe()));
        assert!(is_broken_pipe(&Output(pipe())));
        assert!(is_broken_pipe(&io::Error::other(Output(pipe()))));
        assert!(!is_broken_pipe(&io::Error::other("refused")));
    }

    #[test]
    fn one_line_does_not_repeat_a_cause_it_already_shows() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot connect: {0}")]
        struct Connect(#[source] io::Error);
        let e = Connect(io::Error::other("refused"));
        assert_eq!(one_line(&e), "cannot connect: refused");
    }
}
