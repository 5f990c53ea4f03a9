//! Step 02: + a UTS namespace. The container gets a hostname of its own; the host keeps its.

use std::process::ExitCode;

use clap::Parser;
use nix::sched::CloneFlags;
use step01_clone::{cli, clone, error, exec};
use step02_uts::uts::{self, Hostname};

/// Run a command in a container with a hostname of its own.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Hostname inside the container
    #[arg(long, value_name = "NAME", default_value = "container", allow_hyphen_values = true)]
    hostname: Hostname,
    #[command(flatten)]
    command: cli::CommandArgs,
}

fn main() -> ExitCode {
    error::main(|| {
        let args: Args = cli::parse();
        cli::require_root()?;

        println!("Parent - start a container!");
        let flags = CloneFlags::CLONE_NEWUTS;
        let mut container = clone::spawn(flags, || {
            println!("Container - inside the container!");
            uts::set_hostname(&args.hostname)?;
            exec::exec(&args.command.argv())
        })?;
        container.start()?;
        let code = container.wait()?;
        println!("Parent - container stopped!");
        Ok(code)
    })
}
