//! Step 10: + an overlay root filesystem. The container's `/` is an image's read-only layers,
//! idmapped so that root inside owns their files, under a writable layer of the container's own
//! that goes when it exits (`--keep` keeps it): the image never changes, and no container sees
//! another's writes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nix::sched::CloneFlags;
use nix::unistd::getpid;
use step01_clone::{cli, clone, error, exec};
use step02_uts::uts::{self, Hostname};
use step04_pid::init;
use step05_mount::mount;
use step06_rootfs::rootfs::{self, Volume};
use step06_rootfs::state::StateDir;
use step06_rootfs::tmpfs::TmpfsSizes;
use step07_cgroup::cgroup::{Cgroup, Cpus, Limits, Memory, Pids};
use step08_userns::console::Console;
use step08_userns::userns::{self, DEFAULT_MAP, IdMap};
use step09_net::net::{self, NetArgs, Network};
use step10_overlay::image::{Image, default_image};
use step10_overlay::overlay::{Overlay, WritableLayer};

/// Run a command as PID 1 of a container with its own hostname, IPC objects, PIDs, mounts and
/// root filesystem, within limits on CPU, memory and processes, as root inside who is nobody
/// outside, with a network of its own, on an image's layers under a writable layer of its own.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Hostname inside the container
    #[arg(long, value_name = "NAME", default_value = "container", allow_hyphen_values = true)]
    hostname: Hostname,
    /// Image to run: a directory of layer directories and a `layers` file listing them, base
    /// first [default: the workshop's image, built on first use]
    #[arg(long, value_name = "DIR")]
    image: Option<PathBuf>,
    /// Keep the container's writable layer when it exits, and print where it is
    #[arg(long)]
    keep: bool,
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
    /// Map container uids to host uids: INSIDE:OUTSIDE:COUNT (repeatable)
    #[arg(long = "uid-map", value_name = "INSIDE:OUTSIDE:COUNT", default_value = DEFAULT_MAP, allow_hyphen_values = true)]
    uid_map: Vec<IdMap>,
    /// Map container gids to host gids: INSIDE:OUTSIDE:COUNT (repeatable)
    #[arg(long = "gid-map", value_name = "INSIDE:OUTSIDE:COUNT", default_value = DEFAULT_MAP, allow_hyphen_values = true)]
    gid_map: Vec<IdMap>,
    /// Run the command under a minimal init that passes signals on and reaps orphans
    #[arg(long)]
    init: bool,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    tmpfs: TmpfsSizes,
    #[command(flatten)]
    command: cli::CommandArgs,
}

fn main() -> ExitCode {
    error::main(|| {
        let args: Args = cli::parse();
        cli::require_root()?;
        userns::check_enabled()?;
        userns::check_map("--uid-map", &args.uid_map)?;
        userns::check_map("--gid-map", &args.gid_map)?;
        let image = match &args.image {
            Some(dir) => Image::open(dir)?,
            None => default_image()?,
        };
        let state = StateDir::create()?;
        state.write_etc_files(&args.hostname)?;
        let root_outside = (userns::root_outside(&args.uid_map), userns::root_outside(&args.gid_map));
        let volumes = rootfs::prepare_volumes(&args.volumes, &state, root_outside)?;
        let limits = Limits { cpus: args.cpus, memory: args.memory, pids: args.pids };
        let cgroup = Cgroup::create(&limits)?;
        let network = Network::prepare(&args.net)?;
        // Without --keep the runtime leaves the host's mount namespace here, for one of its own
        // with a tmpfs for the writable layer, which goes with the runtime however it ends.
        let writable = if args.keep { WritableLayer::Kept } else { WritableLayer::Tmpfs };
        let overlay = Overlay::prepare(&image, &state, &args.uid_map, &args.gid_map, writable)?;
        let mut console = Console::open()?;

        println!("Parent [{:5}] - start a container!", getpid());
        let flags = CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET;
        let mut container = clone::spawn_in(cgroup.fd(), console.user_terminal(), flags, || {
            cgroup.join()?;
            console.attach()?;
            println!("Container [{:5}] - inside the container!", getpid());
            userns::become_root()?;
            uts::set_hostname(&args.hostname)?;
            mount::make_private()?;
            let rootfs = overlay.mount()?;
            net::mount_kernel_filesystems(&rootfs, &args.tmpfs)?;
            console.bind_to_dev_console(&rootfs)?;
            rootfs::bind_etc_files(&rootfs, state.path())?;
            rootfs::mount_volumes(&rootfs, &volumes)?;
            rootfs::pivot_root(&rootfs)?;
            if args.init {
                init::exec_with_init(&args.command.argv())
            } else {
                exec::exec(&args.command.argv())
            }
        })?;
        userns::write_id_maps(container.pid(), &args.uid_map, &args.gid_map)?;
        network.attach(container.pid())?;
        container.start()?;
        console.relay()?;
        let code = container.wait()?;
        println!("Parent - container stopped!");
        if args.keep {
            let upper = overlay.keep()?;
            println!("Parent - the writable layer is kept in {}", upper.display());
            let kept = upper.parent().unwrap_or(&upper);
            if let Some(volumes) = rootfs::keep_anonymous_volumes(&state, kept)? {
                println!("Parent - the anonymous volumes are kept in {}", volumes.display());
            }
        }
        Ok(code)
    })
}
