//! Step 07: + cgroups. The container runs in a control group of its own, made before it starts
//! and removed after it ends, which limits its CPU time (`--cpus`), memory (`--memory`) and
//! number of processes (`--pids`), on cgroup v1 and v2 hosts alike.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nix::sched::CloneFlags;
use nix::unistd::getpid;
use step01_clone::terminal::Terminal;
use step01_clone::{cli, clone, error, exec};
use step02_uts::uts::{self, Hostname};
use step04_pid::init;
use step05_mount::mount;
use step06_rootfs::default_rootfs::default_rootfs;
use step06_rootfs::rootfs::{self, Rootfs, Volume};
use step06_rootfs::state::StateDir;
use step06_rootfs::tmpfs::TmpfsSizes;
use step07_cgroup::cgroup::{Cgroup, Cpus, Limits, Memory, Pids};

/// Run a command as PID 1 of a container with its own hostname, IPC objects, PIDs, mounts and
/// root filesystem, within limits on CPU, memory and processes.
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
    /// Limit CPU time to this many CPUs, e.g. 0.5 for half of one (a hard quota)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    cpus: Option<Cpus>,
    /// Limit memory, swap included, e.g. 64m or 1g (the OOM killer ends the container beyond it)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory: Option<Memory>,
    /// Limit the number of processes and threads in the container
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids: Option<Pids>,
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
        let limits = Limits { cpus: args.cpus, memory: args.memory, pids: args.pids };
        let cgroup = Cgroup::create(&limits)?;

        println!("Parent [{:5}] - start a container!", getpid());
        let flags = CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS;
        let mut container = clone::spawn_in(cgroup.fd(), Terminal::inherit(), flags, || {
            cgroup.join()?;
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
