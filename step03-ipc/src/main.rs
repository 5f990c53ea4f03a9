// ANCHOR: main
//! Step 03: + an IPC namespace. System V message queues, semaphores and shared memory made
//! inside are the container's own, and the host's are out of sight (try `ipcs` on both sides).

use std::process::ExitCode;

use clap::Parser;
use nix::sched::CloneFlags;
use step01_clone::{cli, clone, error, exec};
use step02_uts::uts::{self, Hostname};

/// Run a command in a container with its own hostname and IPC objects.
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
        // ANCHOR: exercise-ipc_flag => let flags = CloneFlags::CLONE_NEWUTS; // TODO: ask clone(2) for a new IPC namespace too
        let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
        // ANCHOR_END: exercise-ipc_flag
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
// ANCHOR_END: main
