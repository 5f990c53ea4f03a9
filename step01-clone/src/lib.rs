//! Step 01 of the container workshop: a child process made by `clone()`.
//!
//! [`clone`] is this step's idea. The other modules are the plumbing every later step shares:
//! the command line ([`cli`]), errors and exit codes ([`error`]), exec'ing the command
//! ([`exec`]), passing signals on ([`signals`]) and sharing the terminal ([`terminal`]).

pub mod cli;
pub mod clone;
pub mod error;
pub mod exec;
pub mod signals;
pub mod terminal;
