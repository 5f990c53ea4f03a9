//! Step 01: `clone()` a child, let it exec a command, wait for it. No isolation yet: the child
//! shares everything with the host, as a plain fork would.

use std::process::ExitCode;

use clap::Parser;
use nix::sched::CloneFlags;
use step01_clone::{cli, clone, error, exec};

/// Run a command in a child process made by clone(); no isolation yet.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    command: cli::CommandArgs,
}

fn main() -> ExitCode {
    error::main(|| {
        let args: Args = cli::parse();
        cli::require_root()?;

        println!("Parent - start a container!");
        let mut container = clone::spawn(CloneFlags::empty(), || {
            println!("Container - inside the container!");
            exec::exec(&args.command.argv())
        })?;
        container.start()?;
        let code = container.wait()?;
        println!("Parent - container stopped!");
        Ok(code)
    })
}
