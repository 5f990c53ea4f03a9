//! One error type for the whole workshop: a one-line message and the exit code it maps to.
//!
//! Exit codes follow `docker run`: the container's own code when it ran, 125 when the runtime
//! itself failed, 126 when the command cannot be executed, 127 when it is not found.

use std::fmt;
use std::process::ExitCode;

/// The runtime failed: bad input, a missing privilege, a system call that said no.
pub const EXIT_RUNTIME: u8 = 125;
/// The command exists but cannot be executed (not executable, a directory, …).
pub const EXIT_CANNOT_EXEC: u8 = 126;
/// The command was not found inside the container.
pub const EXIT_NOT_FOUND: u8 = 127;

// ANCHOR: error
/// What went wrong, in one line, and the exit code that says so.
#[derive(Debug)]
pub struct Error {
    message: String,
    code: u8,
}

impl Error {
    /// A runtime error (exit code 125).
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), code: EXIT_RUNTIME }
    }

    /// The same error with another exit code.
    pub fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// The exit code this error ends the process with.
    pub fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The workshop's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Says what we were doing when a system call failed: `mount /proc: EPERM: Operation not permitted`.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|errno| Error::new(format!("{what}: {errno}")))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|err| Error::new(format!("{what}: {err}")))
    }
}
// ANCHOR_END: error

/// The name this program was started as (`step04-pid`), to prefix error messages with.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "container".to_owned())
}

/// Prints an error the way every step does: one line on stderr, prefixed by the program name.
pub fn report(error: &Error) {
    eprintln!("{}: {error}", program_name());
}

// ANCHOR: main
/// Runs a step's `main`: the body returns the exit code to end with, or an error, which is
/// printed as one line.
pub fn main(body: impl FnOnce() -> Result<u8>) -> ExitCode {
    match body() {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            report(&error);
            ExitCode::from(error.code())
        }
    }
}
// ANCHOR_END: main
