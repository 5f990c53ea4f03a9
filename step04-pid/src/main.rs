// ANCHOR: main
//! Step 04: + a PID namespace. The container's first process is PID 1, it sees only its own
//! processes by number, and it cannot signal the host's.

use std::process::ExitCode;

use clap::Parser;
use nix::sched::CloneFlags;
use nix::unistd::getpid;
use step01_clone::{cli, clone, error, exec};
use step02_uts::uts::{self, Hostname};
use step04_pid::init;

/// Run a command as PID 1 of a container with its own hostname, IPC objects and PIDs.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Hostname inside the container
    #[arg(long, value_name = "NAME", default_value = "container", allow_hyphen_values = true)]
    hostname: Hostname,
    /// Run the command under a minimal init that passes signals on and reaps orphans
    #[arg(long)]
    init: bool,
    #[command(flatten)]
    command: cli::CommandArgs,
}

fn main() -> ExitCode {
    error::main(|| {
        let args: Args = cli::parse();
        cli::require_root()?;

        println!("Parent - start a container!");
        // ANCHOR: exercise-pid_flag => let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC; // TODO: ask clone(2) for a new PID namespace too
        let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
        // ANCHOR_END: exercise-pid_flag
        let mut container = clone::spawn(flags, || {
            println!("Container [{:5}] - inside the container!", getpid());
            uts::set_hostname(&args.hostname)?;
            if args.init {
                init::exec_with_init(&args.command.argv())
            } else {
                exec::exec(&args.command.argv())
            }
        })?;
        container.start()?;
        let code = container.wait()?;
        println!("Parent - container stopped!");
        Ok(code)
    })
}
// ANCHOR_END: main
