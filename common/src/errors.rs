//! How an error and its causes are written for people: one line, each cause once.
//!
//! Many error types put their source into their own message (`"cannot connect to {url}:
//! {source}"`) *and* return it from `source()`; printing such a chain with anyhow's `{:#}` or
//! `Caused by:` repeats every cause two or three times. [`chain`] (and the [`Chain`] wrapper for
//! `format!`/`tracing` fields) walks the chain and leaves out a cause whose text the message
//! before it already contains, so every binary's error line and every worker log that names an
//! error say each cause exactly once, whichever convention the error types follow.

use std::error::Error;
use std::fmt;

/// `error` and its causes on one line, `outer: inner: innermost`, each cause once.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    Chain(error).to_string()
}

/// Displays an error with its causes, each once (see the module documentation).
///
/// ```
/// # use slipway_common::errors::Chain;
/// let io = std::io::Error::other("disk full");
/// let error = anyhow::Error::new(io).context("cannot write /tmp/x");
/// assert_eq!(format!("{}", Chain(error.as_ref())), "cannot write /tmp/x: disk full");
/// ```
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = self.0.to_string();
        f.write_str(&previous)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            // A cause the message before it already says (its `{source}` or `{0}`) is left out;
            // the comparison is with the message just before, so a cause that repeats at two
            // distant levels (a different story each time) is still printed.
            if !text.is_empty() && !previous.contains(&text) {
                if previous.is_empty() {
                    f.write_str(&text)?;
                } else {
                    write!(f, ": {text}")?;
                }
            }
            previous = text;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A library error that both prints its source and returns it: the pattern that repeated
    /// every cause.
    #[derive(Debug, thiserror::Error)]
    #[error("I/O error at {path}: {source}")]
    struct IoAt {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("source cache: {0}")]
        Source(#[from] IoAt),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the worker stopped")]
    struct Quiet(#[source] Outer);

    fn io() -> std::io::Error {
        std::io::Error::from_raw_os_error(20)
    }

    #[test]
    fn a_cause_the_message_already_contains_is_printed_once() {
        let error = Outer::from(IoAt {
            path: "/var/cache/x",
            source: io(),
        });
        let anyhow = anyhow::Error::new(error);
        let repeated = format!("{anyhow:#}");
        assert_eq!(
            repeated.matches("Not a directory").count(),
            3,
            "anyhow repeats it: {repeated}"
        );
        let once = chain(anyhow.as_ref());
        assert_eq!(
            once,
            "source cache: I/O error at /var/cache/x: Not a directory (os error 20)"
        );
    }

    #[test]
    fn causes_missing_from_the_message_are_added_in_order() {
        let error = Quiet(Outer::from(IoAt {
            path: "/x",
            source: io(),
        }));
        assert_eq!(
            chain(&error),
            "the worker stopped: source cache: I/O error at /x: Not a directory (os error 20)"
        );
        let context = anyhow::Error::new(io())
            .context("reading /x")
            .context("loading");
        assert_eq!(
            Chain(context.as_ref()).to_string(),
            "loading: reading /x: Not a directory (os error 20)"
        );
    }
}
