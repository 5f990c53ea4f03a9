//! Step 12's new idea: what Docker puts behind the namespaces.
//!
//! After step 11, root in the container is nobody on the host, but inside its user namespace it
//! still holds every capability, may call every system call the kernel has (each one a way into
//! kernel code that a bug can turn into an escape), reads /proc files that describe the host,
//! and sees where it is in the host's cgroup tree; and so does every process `exec` starts in it. Docker, runc
//! and crun close that with five defences, applied in this order, because each one takes away
//! something the next steps still need:
//!
//! 1. a **cgroup namespace**, made right after the container joined its cgroup, so that this
//!    cgroup is the container's `/`; and a read-only cgroup filesystem showing only it;
//! 2. **masked and read-only paths** in /proc and /sys, while the container may still mount;
//! 3. **capabilities** cut down to Docker's 14;
//! 4. **no_new_privs**, so that no exec (of a setuid binary, say) gains privileges again;
//! 5. a **seccomp filter**, last, just before exec: it forbids `mount`, so everything that
//!    mounts must be done by then.
//!
//! The filter is compiled before the fork, in the runtime; the container only installs it. A
//! process that `exec` starts is in the container's namespaces, so it finds 1 and 2 there;
//! it applies 3 to 5 itself, the container's settings, which the runtime publishes for it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, SFlag, mkdirat};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use step01_clone::error::{Context, Error, Result, program_name};
use step06_rootfs::beneath::{fd_path, kind, move_mount, new_tmpfs, open_beneath, open_tree, set_mount_attr};
use step06_rootfs::state::STATE_ROOT;
use step07_cgroup::cgroup::{CGROUP_ROOT, Cgroup};
use step11_exec::published::Published;

// ANCHOR: args
/// The options of `docker run` that loosen or tighten the defences.
#[derive(clap::Args, Debug, Clone)]
pub struct SecurityArgs {
    /// Give the container a capability beyond Docker's 14, e.g. NET_ADMIN (CAP_ prefix and case
    /// optional; ALL for every one) (repeatable)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<CapName>,
    /// Take a capability away from the container, e.g. NET_RAW (ALL for every one) (repeatable)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<CapName>,
    /// Turn a defence off, for experiments: seccomp=unconfined (no seccomp filter) or
    /// systempaths=unconfined (/proc and /sys neither masked nor read-only) (repeatable)
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<SecurityOpt>,
}
// ANCHOR_END: args

// ANCHOR: default_caps
/// The capabilities a Docker container keeps by default (moby's `oci/caps/defaults.go`); the
/// other 27 of Linux 6.x are taken away. Root inside keeps what it needs to own files, change
/// users, bind low ports and send pings; not what it needs to mount, to load modules, to trace
/// other processes or to configure the network.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];
// ANCHOR_END: default_caps

/// A capability as `--cap-add` and `--cap-drop` take it: `NET_RAW`, `cap_net_raw`, or `ALL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapName {
    All,
    One(Capability),
}

impl FromStr for CapName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let canonical = caps::to_canonical(text.trim());
        if canonical == "CAP_ALL" {
            return Ok(CapName::All);
        }
        canonical.parse().map(CapName::One).map_err(|_| {
            format!("unknown capability {text:?}: use a name of capabilities(7), e.g. NET_ADMIN or CAP_NET_ADMIN, or ALL")
        })
    }
}

/// What `--security-opt` turns off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    SeccompUnconfined,
    SystemPathsUnconfined,
}

impl FromStr for SecurityOpt {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.replace(':', "=").as_str() {
            "seccomp=unconfined" => Ok(SecurityOpt::SeccompUnconfined),
            "systempaths=unconfined" => Ok(SecurityOpt::SystemPathsUnconfined),
            _ => Err("the security options are seccomp=unconfined and systempaths=unconfined".into()),
        }
    }
}

// ANCHOR: tweak
/// The capabilities the container keeps: Docker's rule (moby's `TweakCapabilities`). `--cap-add
/// ALL` starts from every capability and takes the dropped ones away; `--cap-drop ALL` keeps
/// only the added ones; otherwise the default 14, minus the dropped, plus the added (so a
/// capability both dropped and added is kept).
pub fn capabilities(add: &[CapName], drop: &[CapName]) -> CapsHashSet {
    // ANCHOR: exercise-capabilities Docker's rule: --cap-add ALL is every capability but the dropped; --cap-drop ALL only the added; else DEFAULT_CAPS minus the dropped, plus the added
    let named = |list: &[CapName]| -> CapsHashSet {
        list.iter().filter_map(|c| if let CapName::One(cap) = c { Some(*cap) } else { None }).collect()
    };
    let (added, dropped) = (named(add), named(drop));
    if add.contains(&CapName::All) {
        caps::all().difference(&dropped).copied().collect()
    } else if drop.contains(&CapName::All) {
        added
    } else {
        DEFAULT_CAPS.into_iter().filter(|cap| !dropped.contains(cap)).chain(added).collect()
    }
    // ANCHOR_END: exercise-capabilities
}
// ANCHOR_END: tweak

/// The file in a container's state directory that tells `exec` the container's restrictions.
pub const SETTINGS_FILE: &str = "hardening";

/// Everything the container's process needs to harden itself, made by the runtime before the
/// fork: the capabilities to keep, the compiled seccomp filter, what to mount at /sys/fs/cgroup.
#[derive(Debug)]
pub struct Hardening {
    caps: CapsHashSet,
    seccomp: Option<Vec<BpfProgram>>,
    mask_system_paths: bool,
    cgroup_mounts: Vec<CgroupMount>,
}

// ANCHOR: prepare
impl Hardening {
    /// In the runtime, before the fork: decides the capabilities and compiles the seccomp filter
    /// into BPF, so that a mistake in either is one line of error before anything starts, and
    /// the container's process has nothing left to do but install them. `cgroup` is the
    /// container's, whose hierarchies it will see at /sys/fs/cgroup.
    pub fn prepare(args: &SecurityArgs, cgroup: &Cgroup) -> Result<Hardening> {
        let unconfined = |opt| args.security_opt.contains(&opt);
        let seccomp = if unconfined(SecurityOpt::SeccompUnconfined) { None } else { Some(seccomp_filter()?) };
        Ok(Hardening {
            caps: capabilities(&args.cap_add, &args.cap_drop),
            seccomp,
            mask_system_paths: !unconfined(SecurityOpt::SystemPathsUnconfined),
            cgroup_mounts: cgroup_mounts(cgroup)?,
        })
    }
    // ANCHOR_END: prepare

    // ANCHOR: publish
    /// Writes into the container's state directory what `exec` must apply to every process it
    /// starts there: the capabilities and whether there is a seccomp filter. (The masks and the
    /// cgroup namespace it gets by entering the container's namespaces.)
    pub fn publish(&self, state_dir: &Path) -> Result<()> {
        let mut names: Vec<String> = self.caps.iter().map(|cap| cap.to_string()).collect();
        names.sort();
        let seccomp = if self.seccomp.is_some() { "default" } else { "unconfined" };
        let text = format!("capabilities {}\nseccomp {seccomp}\n", names.join(","));
        let file = state_dir.join(SETTINGS_FILE);
        fs::write(&file, text).context(format!("writing {}", file.display()))
    }

    /// In `exec`, before its fork: the restrictions of the running container `published`, as
    /// its runtime wrote them with [`Hardening::publish`] in its state directory
    /// (`/run/workshop/<program>-<runtime pid>`, the runtime being this program), with the filter
    /// compiled. A container whose runtime wrote none (one started by step 11) gets Docker's
    /// defaults: more restricted than it is, never less.
    pub fn for_exec(published: &Published) -> Result<Hardening> {
        let state_dir = Path::new(STATE_ROOT).join(format!("{}-{}", program_name(), published.runtime.pid));
        Self::read_settings(&state_dir)
    }

    fn read_settings(state_dir: &Path) -> Result<Hardening> {
        let file = state_dir.join(SETTINGS_FILE);
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let caps = DEFAULT_CAPS.into_iter().collect();
                let seccomp = Some(seccomp_filter()?);
                return Ok(Hardening { caps, seccomp, mask_system_paths: false, cgroup_mounts: Vec::new() });
            }
            Err(e) => return Err(e).context(format!("reading {}", file.display())),
        };
        let bad = || Error::new(format!("{} is not what the runtime wrote", file.display()));
        let mut caps = None;
        let mut seccomp = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("capabilities", list)) => {
                    let parsed: Result<CapsHashSet, _> =
                        list.split(',').filter(|n| !n.is_empty()).map(str::parse::<Capability>).collect();
                    caps = Some(parsed.map_err(|_| bad())?);
                }
                Some(("seccomp", "default")) => seccomp = Some(Some(seccomp_filter()?)),
                Some(("seccomp", "unconfined")) => seccomp = Some(None),
                _ => return Err(bad()),
            }
        }
        let (Some(caps), Some(seccomp)) = (caps, seccomp) else { return Err(bad()) };
        Ok(Hardening { caps, seccomp, mask_system_paths: false, cgroup_mounts: Vec::new() })
    }
    // ANCHOR_END: publish

    // ANCHOR: restrict
    /// The last thing before exec: capabilities, then no_new_privs, then the seccomp filter. Each
    /// takes away something the one before needs: dropping capabilities from the bounding set
    /// needs CAP_SETPCAP, and installing a filter without CAP_SYS_ADMIN needs no_new_privs.
    /// After this the process cannot mount, unshare or setns any more; what is left of the
    /// runtime's work (exec, or step 04's init forking the command) needs none of that.
    pub fn restrict(&self) -> Result<()> {
        // ANCHOR: exercise-restrict drop_capabilities(&self.caps), then set_no_new_privs(), then seccompiler::apply_filter each program of self.seccomp (None: unconfined)
        drop_capabilities(&self.caps)?;
        set_no_new_privs()?;
        if let Some(filters) = &self.seccomp {
            for filter in filters {
                seccompiler::apply_filter(filter)
                    .map_err(|e| Error::new(format!("installing the seccomp filter: {e}")))?;
            }
        }
        Ok(())
        // ANCHOR_END: exercise-restrict
    }
    // ANCHOR_END: restrict
}

// ANCHOR: cgroupns
/// In the container's first process, right after it joined its cgroup (step 07): a cgroup
/// namespace of its own, whose root is the cgroup the process is in now. From here on
/// /proc/self/cgroup says `/` where the host says `/workshop/step12-harden-PID`, and a cgroup
/// filesystem mounted by the container shows that cgroup as its root, nothing above or beside
/// it. (Unsharing in the child, after the join, is what makes the container's cgroup the root;
/// `CLONE_NEWCGROUP` in clone's flags would have made it the runtime's.)
pub fn enter_cgroup_namespace() -> Result<()> {
    // ANCHOR: exercise-enter_cgroup_namespace unshare(2) a new cgroup namespace: CLONE_NEWCGROUP, after the cgroup was joined
    unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP): a cgroup namespace")
    // ANCHOR_END: exercise-enter_cgroup_namespace
}
// ANCHOR_END: cgroupns

/// One cgroup filesystem to mount under /sys/fs/cgroup in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CgroupMount {
    /// The directory under /sys/fs/cgroup (`memory`), or empty for cgroup v2's one hierarchy.
    dir: String,
    /// `cgroup` (v1) or `cgroup2`.
    fstype: String,
    /// The options naming the hierarchy: its controllers (`memory`) or `name=…` on v1.
    options: String,
}

/// The hierarchies the container has a cgroup of its own in (one on v2; on v1 those step 07
/// made it a cgroup in), read from the host's mount table. The others are not shown: there the
/// container's cgroup is the runtime's, and their tree is the host's.
fn cgroup_mounts(cgroup: &Cgroup) -> Result<Vec<CgroupMount>> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mut mounts = Vec::new();
    for dir in cgroup.dirs() {
        // <mount point>/workshop/<name>
        let Some(point) = dir.parent().and_then(Path::parent) else { continue };
        // The last mount at that point is the one on top (a v2 host may have a tmpfs below).
        let found = mountinfo.lines().rev().find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(dash + 1)?;
            if Path::new(fields.get(4)?) != point || !matches!(*fstype, "cgroup" | "cgroup2") {
                return None;
            }
            Some((fields.get(dash + 1)?.to_string(), fields.get(dash + 3)?.to_string()))
        });
        let Some((fstype, super_options)) = found else {
            return Err(Error::new(format!("no cgroup filesystem is mounted at {}", point.display())));
        };
        let name = point.strip_prefix(CGROUP_ROOT).unwrap_or(point).to_string_lossy().into_owned();
        // Keep what names the hierarchy; `rw` is the superblock's, and a release agent may only
        // be set from the host's user namespace.
        let options = super_options
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent="))
            .collect::<Vec<_>>()
            .join(",");
        let options = if fstype == "cgroup2" { String::new() } else { options };
        mounts.push(CgroupMount { dir: name, fstype, options });
    }
    Ok(mounts)
}

// ANCHOR: paths
/// What Docker masks: files and directories of /proc and /sys that describe or control the
/// host's hardware, kernel memory and keys. A directory is covered by an empty read-only tmpfs,
/// a file by /dev/null.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// What Docker makes read-only: the kernel's settings and the trigger of magic SysRq keys.
pub const READ_ONLY_PATHS: [&str; 5] =
    ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];
// ANCHOR_END: paths

impl Hardening {
    // ANCHOR: mount_cgroups
    /// After pivot_root, in the cgroup namespace: the container's own cgroups, read-only, at
    /// /sys/fs/cgroup. On v2 that is one cgroup2 filesystem (`cat /sys/fs/cgroup/memory.max`
    /// tells the limit); on v1, a read-only tmpfs with one directory per hierarchy, as a host
    /// has it (`/sys/fs/cgroup/memory/memory.limit_in_bytes`).
    pub fn mount_cgroups(&self) -> Result<()> {
        let root = open_root()?;
        let target =
            open_in(&root, CGROUP_ROOT)?.ok_or_else(|| Error::new(format!("{CGROUP_ROOT} is missing")))?;
        let read_only = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let [only] = &self.cgroup_mounts[..]
            && only.dir.is_empty()
        {
            return mount_at(&only.fstype, &target, read_only, None)
                .context(format!("mount cgroup2 on {CGROUP_ROOT}"));
        }
        // A tmpfs of directories for the hierarchies, read-only once they are mounted in it.
        let nosuid_nodev_noexec = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
        let tmpfs =
            new_tmpfs("mode=755", nosuid_nodev_noexec).context(format!("a tmpfs for {CGROUP_ROOT}"))?;
        move_mount(tmpfs.as_fd(), target.as_fd()).context(format!("mount tmpfs on {CGROUP_ROOT}"))?;
        for hierarchy in &self.cgroup_mounts {
            let what = format!(
                "mount {} -o {} on {CGROUP_ROOT}/{}",
                hierarchy.fstype, hierarchy.options, hierarchy.dir
            );
            mkdirat(&tmpfs, hierarchy.dir.as_str(), Mode::from_bits_truncate(0o755)).context(&what)?;
            let dir = open_in(&tmpfs, &hierarchy.dir)?.ok_or_else(|| Error::new(what.clone()))?;
            let options = (!hierarchy.options.is_empty()).then_some(hierarchy.options.as_str());
            mount_at(&hierarchy.fstype, &dir, read_only, options).context(&what)?;
        }
        set_mount_attr(tmpfs.as_fd(), libc::MOUNT_ATTR_RDONLY)
            .context(format!("making {CGROUP_ROOT} read-only"))
    }
    // ANCHOR_END: mount_cgroups

    // ANCHOR: mask
    /// After pivot_root, while the container may still mount: Docker's masked and read-only
    /// paths. Each path is opened beneath the root with step 06's `open_beneath` (openat2,
    /// RESOLVE_NO_SYMLINKS), and the mount is attached on that file descriptor with move_mount,
    /// so no symbolic link can send it elsewhere. A path this kernel does not
    /// have (/proc/timer_stats went in 4.11) is skipped: there is nothing to hide.
    pub fn mask_paths(&self) -> Result<()> {
        // ANCHOR: exercise-mask_paths unless mask_system_paths is off: on each of MASKED_PATHS there (open_in the root), move_mount a read-only tmpfs (a directory) or a bind of /dev/null (a file); each of READ_ONLY_PATHS: open_tree a recursive copy, make it read-only, move_mount it onto itself
        if !self.mask_system_paths {
            return Ok(());
        }
        let root = open_root()?;
        let null = open_in(&root, "/dev/null")?.ok_or_else(|| Error::new("/dev/null is missing"))?;
        let masked_dir = libc::MOUNT_ATTR_RDONLY
            | libc::MOUNT_ATTR_NOSUID
            | libc::MOUNT_ATTR_NODEV
            | libc::MOUNT_ATTR_NOEXEC;
        for path in MASKED_PATHS {
            let Some(fd) = open_in(&root, path)? else { continue };
            let cover = if kind(&fd).context(path)? == SFlag::S_IFDIR {
                new_tmpfs("mode=755", masked_dir) // an empty read-only directory
            } else {
                open_tree(null.as_fd(), false) // mount --bind /dev/null
            };
            cover
                .and_then(|cover| move_mount(cover.as_fd(), fd.as_fd()))
                .context(format!("masking {path}"))?;
        }
        for path in READ_ONLY_PATHS {
            let Some(fd) = open_in(&root, path)? else { continue };
            // mount --rbind PATH PATH, read-only: a copy of its mounts, made read-only, then
            // attached on it.
            let copy = open_tree(fd.as_fd(), true).context(format!("bind-mounting {path}"))?;
            set_mount_attr(copy.as_fd(), libc::MOUNT_ATTR_RDONLY)
                .context(format!("making {path} read-only"))?;
            move_mount(copy.as_fd(), fd.as_fd())
                .context(format!("bind-mounting {path} read-only onto itself"))?;
        }
        Ok(())
        // ANCHOR_END: exercise-mask_paths
    }
    // ANCHOR_END: mask
}

/// The root directory, as a file descriptor to resolve paths from.
fn open_root() -> Result<OwnedFd> {
    nix::fcntl::open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .context("open /")
}

/// Opens `path` beneath `dir` (step 06's [`open_beneath`]: no symbolic link is followed, none
/// leads out); `None` when it does not exist.
fn open_in(dir: &OwnedFd, path: &str) -> Result<Option<OwnedFd>> {
    match open_beneath(dir.as_fd(), Path::new(path.trim_start_matches('/')), OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP) => Err(Error::new(format!("{path} is a symbolic link: refusing to mount over it"))),
        Err(errno) => Err(errno).context(format!("opening {path}")),
    }
}

/// Mounts a new `fstype` on what `target` holds open (through /proc/self/fd).
fn mount_at(fstype: &str, target: &OwnedFd, flags: MsFlags, data: Option<&str>) -> nix::Result<()> {
    mount(Some(fstype), &fd_path(target), Some(fstype), flags, data)
}

// ANCHOR: drop_capabilities
/// Keeps `keep` and nothing else. The bounding set first: it limits what any later exec can
/// give back (for root, exec makes the permitted set the bounding set), and dropping from it
/// takes CAP_SETPCAP, which the next lines may remove. Then ambient (for non-root programs
/// exec'd later) and the three sets of this process.
fn drop_capabilities(keep: &CapsHashSet) -> Result<()> {
    // ANCHOR: exercise-drop_capabilities every supported capability not in keep: caps::drop it from Bounding; clear Ambient; then caps::set Inheritable, Effective and Permitted to keep
    let failed = |what: &str, e: caps::errors::CapsError| Error::new(format!("capabilities: {what}: {e}"));
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| failed(&format!("dropping {cap}"), e))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| failed("clearing the ambient set", e))?;
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::set(None, set, keep).map_err(|e| failed(&format!("setting {set:?}"), e))?;
    }
    Ok(())
    // ANCHOR_END: exercise-drop_capabilities
}
// ANCHOR_END: drop_capabilities

// ANCHOR: no_new_privs
/// No exec may gain privileges from here on: setuid and setgid bits and file capabilities are
/// ignored (a setuid-root binary runs with the caller's ids). It is inherited by every child and
/// cannot be unset; a seccomp filter requires it (or CAP_SYS_ADMIN).
fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")
}
// ANCHOR_END: no_new_privs

// ANCHOR: seccomp
/// The namespace flags of clone(2) and unshare(2): a container may still fork, but not make
/// namespaces (a new user namespace would give it every capability again, in there).
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The calls a container never needs, that Docker's default profile refuses: mounting (old and
/// new API), namespaces, the kernel keyring, eBPF and perf, handles that bypass the mount tree,
/// kernel modules and kexec, reboot, swap, userfaultfd (a tool of kernel exploits), io_uring
/// (a second way to make all of these), other processes' memory, the clocks, accounting.
const DENIED: &[libc::c_long] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_lookup_dcookie,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
    #[cfg(target_arch = "x86_64")]
    libc::SYS__sysctl,
];

/// ioctl(2) requests refused: TIOCSTI pushes characters into a terminal's input, as if typed
/// (a container that got hold of the user's terminal could type commands into the user's shell);
/// TIOCLINUX does the same and more on a virtual console.
const DENIED_IOCTLS: [u64; 2] = [libc::TIOCSTI, libc::TIOCLINUX];

/// The filter, compiled: calls of [`DENIED`], clone and unshare with a namespace flag, and
/// ioctl with a request of [`DENIED_IOCTLS`] fail with EPERM; clone3 fails with ENOSYS, so that
/// the C library falls back to clone, whose flags the filter can see (clone3 passes them in
/// memory, which seccomp cannot read); everything else is allowed. Two BPF programs, as each of
/// seccompiler's filters has one action for what matches; the kernel runs both.
pub fn seccomp_filter() -> Result<Vec<BpfProgram>> {
    // ANCHOR: exercise-seccomp_filter rules by call number: DENIED always, clone/unshare with a NAMESPACE_FLAGS bit (MaskedEq on arg 0), ioctl with a DENIED_IOCTLS request (arg 1); add_x32_numbers; compile with Errno(EPERM); clone3 alone with Errno(ENOSYS)
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &call in DENIED {
        denied.insert(call, Vec::new()); // no conditions: always
    }
    let any_flag = |flags: &[libc::c_int]| -> Result<Vec<SeccompRule>> {
        flags.iter().map(|&flag| rule(0, SeccompCmpOp::MaskedEq(flag as u64), flag as u64)).collect()
    };
    denied.insert(libc::SYS_clone, any_flag(&NAMESPACE_FLAGS)?);
    denied.insert(libc::SYS_unshare, any_flag(&[&NAMESPACE_FLAGS[..], &[libc::CLONE_NEWTIME]].concat())?);
    let ioctls =
        DENIED_IOCTLS.iter().map(|&request| rule(1, SeccompCmpOp::Eq, request)).collect::<Result<_>>()?;
    denied.insert(libc::SYS_ioctl, ioctls);
    add_x32_numbers(&mut denied);
    let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    Ok(vec![
        compile(denied, SeccompAction::Errno(libc::EPERM as u32))?,
        compile(clone3, SeccompAction::Errno(libc::ENOSYS as u32))?,
    ])
    // ANCHOR_END: exercise-seccomp_filter
}

/// A rule of one condition: argument `arg` (its low 32 bits, all that clone's flags and ioctl's
/// request use) compared with `value`.
fn rule(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule> {
    let condition = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(seccomp_error)?;
    SeccompRule::new(vec![condition]).map_err(seccomp_error)
}

/// A BPF program: `rules` get `action`, everything else is allowed. Programs for another
/// architecture (a 32-bit binary on x86_64) are killed: their calls have other numbers.
fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, action: SeccompAction) -> Result<BpfProgram> {
    let arch = std::env::consts::ARCH.try_into().map_err(seccomp_error)?;
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, arch).map_err(seccomp_error)?;
    filter.try_into().map_err(seccomp_error)
}
// ANCHOR_END: seccomp

/// x86_64's x32 ABI reaches the same kernel code through other numbers (the bit 0x40000000 set)
/// under the same architecture value, so a list of denied numbers must hold those too. Most are
/// the 64-bit number with the bit; ioctl and kexec_load have x32 numbers of their own. (Most
/// kernels are built without x32, where these numbers just fail with ENOSYS.)
fn add_x32_numbers(rules: &mut BTreeMap<i64, Vec<SeccompRule>>) {
    if cfg!(target_arch = "x86_64") {
        const X32: i64 = 0x4000_0000;
        let own = |nr: i64| match nr {
            16 => 514,  // ioctl
            246 => 528, // kexec_load
            310 => 539, // process_vm_readv
            311 => 540, // process_vm_writev
            nr => nr,
        };
        let x32: Vec<(i64, Vec<SeccompRule>)> =
            rules.iter().map(|(&nr, r)| (X32 | own(nr), r.clone())).collect();
        rules.extend(x32);
    }
}

fn seccomp_error(error: impl fmt::Display) -> Error {
    Error::new(format!("building the seccomp filter: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<CapName> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn capability_names_as_docker_spells_them() {
        assert_eq!("net_raw".parse::<CapName>(), Ok(CapName::One(Capability::CAP_NET_RAW)));
        assert_eq!("CAP_SYS_ADMIN".parse::<CapName>(), Ok(CapName::One(Capability::CAP_SYS_ADMIN)));
        assert_eq!("all".parse::<CapName>(), Ok(CapName::All));
        assert!("NET_BOGUS".parse::<CapName>().unwrap_err().contains("unknown capability"));
    }

    #[test]
    fn docker_rule_for_adding_and_dropping() {
        assert_eq!(capabilities(&[], &[]), DEFAULT_CAPS.into_iter().collect());
        let without_raw = capabilities(&[], &names(&["NET_RAW"]));
        assert_eq!(without_raw.len(), 13);
        assert!(!without_raw.contains(&Capability::CAP_NET_RAW));
        assert_eq!(capabilities(&names(&["NET_RAW"]), &names(&["ALL"])), [Capability::CAP_NET_RAW].into());
        assert_eq!(capabilities(&names(&["ALL"]), &names(&["SYS_ADMIN"])).len(), caps::all().len() - 1);
        // Both dropped and added: kept, as Docker does.
        assert!(capabilities(&names(&["NET_RAW"]), &names(&["NET_RAW"])).contains(&Capability::CAP_NET_RAW));
    }

    #[test]
    fn the_filter_compiles_and_the_settings_round_trip() {
        assert_eq!(seccomp_filter().unwrap().len(), 2);
        let dir = std::env::temp_dir().join(format!("harden-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let caps = capabilities(&[], &names(&["NET_RAW"]));
        let hardening = Hardening {
            caps: caps.clone(),
            seccomp: None,
            mask_system_paths: true,
            cgroup_mounts: Vec::new(),
        };
        hardening.publish(&dir).unwrap();
        let read = Hardening::read_settings(&dir).unwrap();
        assert_eq!((read.caps, read.seccomp.is_none()), (caps, true));
        fs::write(dir.join(SETTINGS_FILE), "capabilities CAP_NOPE\nseccomp default\n").unwrap();
        assert!(Hardening::read_settings(&dir).is_err());
        fs::remove_file(dir.join(SETTINGS_FILE)).unwrap();
        let default = Hardening::read_settings(&dir).unwrap();
        assert_eq!((default.caps, default.seccomp.is_some()), (DEFAULT_CAPS.into_iter().collect(), true));
        let _ = fs::remove_dir_all(&dir);
    }
}
