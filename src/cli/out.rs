//! Writing to stdout and stderr without ever panicking: `println!` panics when stdout is a
//! closed pipe (`roof sweep kv-store | head`). A closed stdout ends the command quietly, with
//! the status a shell shows for a process that SIGPIPE ended, as coreutils' tools end; a
//! stderr that cannot be written is ignored (there is nowhere left to say so).

use std::fmt;
use std::io::{self, Write as _};

/// The exit status after stdout was closed: 128 + SIGPIPE, what `yes | head -1` gives `yes`.
pub(crate) const CLOSED_STDOUT: i32 = 141;

/// Write one line to stdout; exit quietly if nobody reads it any more.
pub(crate) fn line(text: impl fmt::Display) {
    let mut stdout = io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        closed(&error);
    }
}

/// Write text to stdout as it is (no newline added); exit quietly if nobody reads it.
pub(crate) fn text(text: &str) {
    let mut stdout = io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        closed(&error);
    }
}

/// Write one line to stderr, if it can be written.
pub(crate) fn error_line(text: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

fn closed(error: &io::Error) -> ! {
    if error.kind() != io::ErrorKind::BrokenPipe {
        error_line(format_args!("error: cannot write to stdout: {error}"));
    }
    std::process::exit(CLOSED_STDOUT);
}
