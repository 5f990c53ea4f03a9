//! Step 06: + a root filesystem. The container's `/` is a directory of its own (pivot_root), with
//! /proc, /sys, a minimal /dev, /tmp and /run mounted inside, /etc/hostname, /etc/hosts and
//! /etc/resolv.conf bind-mounted from the runtime's files, and host directories as volumes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nix::sched::CloneFlags;
use nix::unistd::getpid;
use step01_clone::{cli, clone, error, exec};
use step02_uts::uts::{self, Hostname};
use step04_pid::init;
use step05_mount::mount;
use step06_rootfs::default_rootfs::default_rootfs;
use step06_rootfs::rootfs::{self, Rootfs, Volume};
use step06_rootfs::state::StateDir;
use step06_rootfs::tmpfs::TmpfsSizes;

/// Run a command as PID 1 of a container with its own hostname, IPC objects, PIDs, mounts and
/// root filesystem.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Hostname inside the container
    #[arg(long, value_name = "NAME", default_value = "container", allow_hyphen_values = true)]
    hostname: Hostname,
    /// Directory to use as the container's root [default: the workshop's rootfs, built on first use]
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Bind-mount a host path into the container, read-only with :ro, or an anonymous volume at
    /// CONTAINER alone, removed after (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "[HOST:]CONTAINER[:ro]")]
    volumes: Vec<Volume>,
    /// Run the command under a minimal init that passes signals on and reaps orphans
    #[arg(long)]
    init: bool,
    #[command(flatten)]
    tmpfs: TmpfsSizes,
    #[command(flatten)]
    command: cli::CommandArgs,
}

fn main() -> ExitCode {
    error::main(|| {
        let args: Args = cli::parse();
        cli::require_root()?;
        let rootfs = match &args.rootfs {
            Some(dir) => Rootfs::open(dir)?,
            None => default_rootfs()?,
        };
        let state = StateDir::create()?;
        state.write_etc_files(&args.hostname)?;
        let volumes = rootfs::prepare_volumes(&args.volumes, &state, (0, 0))?;

        println!("Parent [{:5}] - start a container!", getpid());
        let flags = CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS;
        let mut container = clone::spawn(flags, || {
            println!("Container [{:5}] - inside the container!", getpid());
            uts::set_hostname(&args.hostname)?;
            mount::make_private()?;
            rootfs::bind_root(&rootfs)?;
            rootfs::mount_kernel_filesystems(&rootfs, &args.tmpfs)?;
            rootfs::bind_etc_files(&rootfs, state.path())?;
            rootfs::mount_volumes(&rootfs, &volumes)?;
            rootfs::pivot_root(&rootfs)?;
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
