//! The two kinds of failure the exit code tells apart: a usage error (a flag,
//! an environment variable or their combination asks for something
//! impossible; exit 2, as clap's own parse errors) and a runtime failure (a
//! bad model or text file, I/O; exit 1, any other error).

use std::fmt;

/// A problem with what the user asked for; the message names the flag or
/// variable and its value.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error, ready for `Err(...)` / `?` in a [`crate::Result`].
pub fn usage(message: impl Into<String>) -> Box<dyn std::error::Error> {
    Box::new(UsageError(message.into()))
}

/// 2 for usage errors, 1 for everything else.
pub fn exit_code(e: &(dyn std::error::Error + 'static)) -> u8 {
    if e.is::<UsageError>() {
        2
    } else {
        1
    }
}
