//! The command line every step shares: `stepNN-name [OPTIONS] [--] [COMMAND [ARG]...]`.

use std::ffi::OsString;

use clap::Parser;
use clap::error::ErrorKind;

use crate::error::{EXIT_RUNTIME, Error, Result, program_name};

/// The command to run in the container; `/bin/sh` when none is given.
#[derive(clap::Args, Debug, Clone)]
pub struct CommandArgs {
    /// Command to run inside the container, and its arguments [default: /bin/sh]
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

impl CommandArgs {
    /// The argument vector to exec: the command given, or `/bin/sh`.
    pub fn argv(&self) -> Vec<OsString> {
        if self.command.is_empty() { vec![OsString::from("/bin/sh")] } else { self.command.clone() }
    }
}

/// Parses the command line. `--help` and `--version` print and exit 0; a mistake prints one
/// line naming it and exits 125, before anything was created.
pub fn parse<T: Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(err) if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => err.exit(),
        Err(err) => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("{}: {first} (see --help)", program_name());
            std::process::exit(EXIT_RUNTIME.into())
        }
    }
}

/// Every step makes namespaces, mounts or cgroups, which only root may do; say so up front
/// rather than fail half-way.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let name = program_name();
    Err(Error::new(format!(
        "must run as root to create a container: run `sudo {}` or use a root shell (`cargo run -p {name}` asks sudo for you)",
        std::env::args().next().unwrap_or(name.clone())
    )))
}
