//! Step 06's new idea: a root filesystem of the container's own, made `/` with pivot_root(2).
//!
//! Until now the container saw the host's files. Here it gets a directory of its own as `/`,
//! with the kernel's filesystems mounted inside it the way a Linux system expects them (/proc,
//! /sys, a small /dev, /tmp, /run), the host's view of its name and DNS (/etc/hostname,
//! /etc/hosts, /etc/resolv.conf, bind-mounted from files the runtime writes, as Docker does),
//! and the host directories the user asked for (volumes). Everything is mounted under the new
//! root first; `pivot_root` then swaps it in and the host's tree is detached for good.
//!
//! The rootfs is someone else's to change (other containers share it): every path in it is
//! resolved from a descriptor of it, never through a symbolic link, and every mount goes on a
//! descriptor of what was opened ([`crate::beneath`]). Nothing is ever created in it.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, chown};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, readlinkat};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstat, makedev, mkdirat, mknodat};
use nix::unistd::{Gid, Uid, chdir, fchownat, pivot_root as pivot_root_syscall, symlinkat};

use step01_clone::error::{Context, Error, Result};
use step05_mount::mount::mount_proc;

use crate::beneath::{fd_path, kind, move_mount, new_tmpfs, open_beneath, open_tree, set_mount_attr};
use crate::state::StateDir;
use crate::tmpfs::TmpfsSizes;

/// A directory that will become the container's `/`.
#[derive(Clone, Debug)]
pub struct Rootfs {
    path: PathBuf,
    /// Whether other containers use the directory too (steps 06–09's rootfs): then nothing is
    /// ever created in it (see [`ensure_in_root`]). Step 10's overlay is the container's own.
    shared: bool,
    /// The device of the rootfs's filesystem: a directory on it is the rootfs's (or a volume's
    /// from the same filesystem), never the container's own.
    dev: u64,
}

impl Rootfs {
    /// Checks that `dir` is a directory and remembers its absolute path: a rootfs that other
    /// containers may use too, which the runtime never writes to.
    pub fn open(dir: &Path) -> Result<Rootfs> {
        let path = fs::canonicalize(dir).map_err(|_| {
            Error::new(format!(
                "rootfs {} does not exist (give an existing directory to --rootfs)",
                dir.display()
            ))
        })?;
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(Rootfs { path, shared: true, dev: meta.dev() }),
            _ => Err(Error::new(format!("rootfs {} is not a directory", dir.display()))),
        }
    }

    /// A root that is the container's own (step 10's overlay, whose writable layer it is):
    /// mount points may be made in it.
    pub fn own(dir: &Path) -> Result<Rootfs> {
        Ok(Rootfs { shared: false, ..Rootfs::open(dir)? })
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of the root, where every lookup inside it starts. The path is the runtime's
    /// own (the rootfs given on the command line, or the state directory's overlay): what lies
    /// *inside* is the part others may change.
    fn open_fd(&self) -> Result<OwnedFd> {
        open(&self.path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .context(format!("opening the rootfs {}", self.path.display()))
    }
}

/// A file or directory inside the rootfs, held open (`O_PATH`) to mount something on: as a path,
/// it is `/proc/self/fd/N`, which names the very file that was opened, however the rootfs
/// changes meanwhile.
#[derive(Debug)]
pub struct MountPoint {
    fd: OwnedFd,
    path: PathBuf,
}

impl MountPoint {
    fn new(fd: OwnedFd) -> MountPoint {
        let path = fd_path(&fd);
        MountPoint { fd, path }
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRef<Path> for MountPoint {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

// ANCHOR: bind_root
/// pivot_root needs the new root to be a mount point: bind-mount the directory onto itself.
pub fn bind_root(root: &Rootfs) -> Result<()> {
    bind(root.path(), root.path(), MsFlags::MS_REC).context("bind-mounting the rootfs onto itself")
}
// ANCHOR_END: bind_root

// ANCHOR: kernel_filesystems
/// Mounts what a Linux userland expects under the new root: /proc (step 05's), /sys read-only,
/// a minimal /dev, /dev/pts, /dev/shm, and fresh /tmp and /run. Each goes on the mount point
/// [`ensure_dir`] holds open, never on a path looked up again. The tmpfs ones have a size (see
/// [`crate::tmpfs`]).
pub fn mount_kernel_filesystems(root: &Rootfs, sizes: &TmpfsSizes) -> Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_proc(ensure_dir(root, "/proc")?)?;
    mount_fs("sysfs", ensure_dir(root, "/sys")?, nosuid_nodev_noexec | MsFlags::MS_RDONLY, "")?;
    mount_dev(&ensure_dir(root, "/dev")?, sizes)?;
    let (tmp, run) =
        (format!("mode=1777,{}", sizes.tmp.option()), format!("mode=755,{}", sizes.tmp.option()));
    mount_fs("tmpfs", ensure_dir(root, "/tmp")?, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &tmp)?;
    mount_fs("tmpfs", ensure_dir(root, "/run")?, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &run)?;
    Ok(())
}
// ANCHOR_END: kernel_filesystems

// ANCHOR: dev
/// The character devices every program may open, with their major and minor numbers
/// (see Documentation/admin-guide/devices.txt in the kernel).
pub const DEVICES: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// A tmpfs /dev with only the harmless devices, not the host's devtmpfs (which would hand the
/// container every disk of the host), plus a devpts instance of its own for terminals.
fn mount_dev(dev: &MountPoint, sizes: &TmpfsSizes) -> Result<()> {
    // ANCHOR: exercise-mount_dev attach_tmpfs on dev, then mknodat each of DEVICES in it (mode 0666), then dev_links_pts_and_shm
    let dev = attach_tmpfs(dev, "mode=755,size=64k", libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC)?;
    for (name, major, minor) in DEVICES {
        let mode = Mode::from_bits_truncate(0o666);
        mknodat(&dev, name, SFlag::S_IFCHR, mode, makedev(major, minor))
            .context(format!("mknod /dev/{name}"))?;
        // mknod is subject to the umask; the devices are for everyone.
        fchmodat(&dev, name, mode, FchmodatFlags::NoFollowSymlink)
            .or_else(|_| fchmodat(&dev, name, mode, FchmodatFlags::FollowSymlink))
            .context(format!("chmod /dev/{name}"))?;
    }
    dev_links_pts_and_shm(dev.as_fd(), sizes)
    // ANCHOR_END: exercise-mount_dev
}

/// Makes a new tmpfs (`options`, mount flags `attr`) and attaches it on `target`; returns its
/// root, where what goes in it is made.
pub fn attach_tmpfs(target: &MountPoint, options: &str, attr: u64) -> Result<OwnedFd> {
    let tmpfs = new_tmpfs(options, attr).context(format!("making a tmpfs ({options})"))?;
    move_mount(tmpfs.as_fd(), target.fd()).context("attaching a tmpfs")?;
    Ok(tmpfs)
}

/// The rest of a /dev (`dev`, the root of its tmpfs): the usual links, a devpts instance of the
/// container's own (`newinstance`: its terminals are numbered apart from the host's) and a tmpfs
/// for POSIX shared memory.
pub fn dev_links_pts_and_shm(dev: BorrowedFd, sizes: &TmpfsSizes) -> Result<()> {
    // ANCHOR: exercise-dev_links_pts_and_shm symlinkat fd, stdin, stdout, stderr, ptmx in dev; mkdirat pts and shm; a devpts (newinstance) on pts, a tmpfs of sizes.shm on shm, each opened with open_beneath
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlinkat(target, dev, link).context(format!("symlink /dev/{link}"))?;
    }
    for name in ["pts", "shm"] {
        mkdirat(dev, name, Mode::from_bits_truncate(0o755)).context(format!("mkdir /dev/{name}"))?;
    }
    let opened = |name: &str| open_beneath(dev, Path::new(name), OFlag::O_PATH).map(MountPoint::new);
    let pts = opened("pts").context("opening /dev/pts")?;
    mount_fs("devpts", &pts, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")?;
    let shm = opened("shm").context("opening /dev/shm")?;
    let shm_options = format!("mode=1777,{}", sizes.shm.option());
    mount_fs("tmpfs", &shm, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &shm_options)
    // ANCHOR_END: exercise-dev_links_pts_and_shm
}
// ANCHOR_END: dev

// ANCHOR: etc_files
/// The files the runtime writes for each container (see [`crate::state`]) and where they go.
pub const ETC_FILES: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// Bind-mounts the runtime's `hostname`, `hosts` and `resolv.conf` from `dir` over the rootfs's
/// own, so the image itself is never written to.
pub fn bind_etc_files(root: &Rootfs, dir: &Path) -> Result<()> {
    for file in ETC_FILES {
        let source = dir.join(Path::new(file).file_name().expect("a file name"));
        let target = ensure_in_root(root, Path::new(file), false)?;
        bind(&source, &target, MsFlags::empty()).context(format!("bind-mounting {file}"))?;
    }
    Ok(())
}
// ANCHOR_END: etc_files

// ANCHOR: volume
/// A volume: `-v HOST:CONTAINER[:ro]`, a host path mounted into the container, or `-v CONTAINER`,
/// an *anonymous* one: a fresh directory the runtime makes for this container and removes after.
#[derive(Clone, Debug)]
pub struct Volume {
    /// The host path (resolved once, as the user typed it), or `None` for an anonymous volume.
    pub host: Option<PathBuf>,
    pub container: PathBuf,
    pub read_only: bool,
    /// The host path, opened when the option was read (`O_PATH | O_NOFOLLOW`): what is mounted
    /// later is this, whatever the path leads to by then.
    source: Option<Arc<OwnedFd>>,
}

impl FromStr for Volume {
    type Err = String;

    fn from_str(spec: &str) -> Result<Volume, String> {
        let usage = "a volume is HOST:CONTAINER, HOST:CONTAINER:ro, or CONTAINER alone for an anonymous one";
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, read_only) = match parts[..] {
            [container] if container.starts_with('/') => (None, container, false),
            [host, container] => (Some(host), container, false),
            [host, container, "ro"] => (Some(host), container, true),
            [host, container, "rw"] => (Some(host), container, false),
            [_, _, mode] => return Err(format!("the mode after the second ':' is ro or rw, not {mode:?}")),
            _ => return Err(usage.into()),
        };
        let container = PathBuf::from(container);
        if !container.is_absolute() || container.components().any(|c| c == Component::ParentDir) {
            return Err(format!("the container path {} must be absolute, without '..'", container.display()));
        }
        if container.components().count() < 2 {
            return Err("a volume cannot be mounted on / (give a directory such as /data)".into());
        }
        let Some(host) = host else {
            return Ok(Volume { host: None, container, read_only, source: None });
        };
        // The user's own symbolic links are followed, once, here; what the path names is then
        // held open, and a link put in its place later changes nothing.
        let host = fs::canonicalize(host).map_err(|_| format!("the host path {host} does not exist"))?;
        let source = open(&host, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|errno| format!("opening the host path {}: {errno}", host.display()))?;
        Ok(Volume { host: Some(host), container, read_only, source: Some(Arc::new(source)) })
    }
}
// ANCHOR_END: volume

/// A volume ready to be attached in the container: its source as a mount of its own, attached
/// nowhere yet.
#[derive(Debug)]
pub struct PreparedVolume {
    container: PathBuf,
    directory: bool,
    tree: OwnedFd,
}

/// Where the anonymous volumes of a container are made: in its state directory, which goes
/// with it.
pub const ANONYMOUS_VOLUMES: &str = "volumes";

// ANCHOR: prepare_volumes
/// In the runtime, before clone: makes each volume's source a mount of its own, attached
/// nowhere, from the descriptor opened when the option was read (`open_tree`, a bind mount as a
/// descriptor), read-only when asked. An anonymous volume's source is a fresh directory in
/// `state`'s `volumes/`, owned by `owner` (the host ids of root inside, so that it may write
/// there), which goes with the state directory.
pub fn prepare_volumes(
    volumes: &[Volume],
    state: &StateDir,
    owner: (u32, u32),
) -> Result<Vec<PreparedVolume>> {
    let mut prepared = Vec::new();
    for (i, volume) in volumes.iter().enumerate() {
        let what = format!("volume {}", volume.container.display());
        let anonymous;
        let source = match &volume.source {
            Some(fd) => fd.as_fd(),
            None => {
                anonymous = make_anonymous_volume(state, i, &volume.container, owner)?;
                anonymous.as_fd()
            }
        };
        let directory = kind(source).context(&what)? == SFlag::S_IFDIR;
        let tree = open_tree(source, true).map_err(|errno| {
            let hint = if errno == Errno::ENOSYS { " (volumes need Linux 5.12 or later)" } else { "" };
            Error::new(format!("{what}: open_tree: {errno}{hint}"))
        })?;
        if volume.read_only {
            set_mount_attr(tree.as_fd(), libc::MOUNT_ATTR_RDONLY).context(format!("{what}: read-only"))?;
        }
        prepared.push(PreparedVolume { container: volume.container.clone(), directory, tree });
    }
    Ok(prepared)
}

/// `<state dir>/volumes/<n><container path with - for />`, made for an anonymous volume.
fn make_anonymous_volume(
    state: &StateDir,
    n: usize,
    container: &Path,
    (uid, gid): (u32, u32),
) -> Result<OwnedFd> {
    let parent = state.path().join(ANONYMOUS_VOLUMES);
    let dir = parent.join(format!("{n}{}", container.display().to_string().replace('/', "-")));
    fs::create_dir_all(&parent).context(format!("creating {}", parent.display()))?;
    fs::create_dir(&dir).context(format!("creating {}", dir.display()))?;
    chown(&dir, Some(uid), Some(gid)).context(format!("chown {}", dir.display()))?;
    open(&dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .context(format!("opening {}", dir.display()))
}
// ANCHOR_END: prepare_volumes

/// After the container ended: moves its anonymous volumes, if it had any, from the state
/// directory (about to be removed) into `kept`; returns where they are now.
pub fn keep_anonymous_volumes(state: &StateDir, kept: &Path) -> Result<Option<PathBuf>> {
    let volumes = state.path().join(ANONYMOUS_VOLUMES);
    if !volumes.exists() {
        return Ok(None);
    }
    let to = kept.join(ANONYMOUS_VOLUMES);
    fs::rename(&volumes, &to).context(format!("moving the anonymous volumes to {}", to.display()))?;
    Ok(Some(to))
}

// ANCHOR: volumes
/// In the container: attaches each volume's mount at its place in the rootfs, a mount point
/// held open by [`ensure_in_root`] (made when missing, never in a shared rootfs).
pub fn mount_volumes(root: &Rootfs, volumes: &[PreparedVolume]) -> Result<()> {
    for volume in volumes {
        let target = ensure_in_root(root, &volume.container, volume.directory)?;
        move_mount(volume.tree.as_fd(), target.fd())
            .context(format!("mounting the volume on {}", volume.container.display()))?;
    }
    Ok(())
}
// ANCHOR_END: volumes

// ANCHOR: pivot_root
/// Makes the rootfs `/` and lets go of the host's tree.
///
/// `pivot_root(".", ".")` stacks the old root on top of the new one at the same place, so no
/// directory for it is needed in the image; unmounting "." (lazily, MNT_DETACH, as processes
/// may still hold it) then takes the old root away, and nothing of the host is reachable from
/// here, unlike after chroot(2), which only changes where path lookups start.
pub fn pivot_root(root: &Rootfs) -> Result<()> {
    // ANCHOR: exercise-pivot_root chdir into the rootfs, pivot_root(".", "."), umount2 "." with MNT_DETACH, chdir /
    chdir(root.path()).context(format!("chdir {}", root.path().display()))?;
    pivot_root_syscall(".", ".").context("pivot_root")?;
    umount2(".", MntFlags::MNT_DETACH).context("unmounting the old root")?;
    chdir("/").context("chdir /")
    // ANCHOR_END: exercise-pivot_root
}
// ANCHOR_END: pivot_root

/// Bind-mounts `source` on `target` (`MS_BIND`, plus `extra`, e.g. `MS_REC`).
pub fn bind(source: impl AsRef<Path>, target: impl AsRef<Path>, extra: MsFlags) -> nix::Result<()> {
    mount(Some(source.as_ref()), target.as_ref(), None::<&str>, MsFlags::MS_BIND | extra, None::<&str>)
}

/// Mounts a new instance of the filesystem `fstype` on `target`.
pub fn mount_fs(fstype: &str, target: impl AsRef<Path>, flags: MsFlags, data: &str) -> Result<()> {
    let target = target.as_ref();
    let data = (!data.is_empty()).then_some(data);
    mount(Some(fstype), target, Some(fstype), flags, data)
        .context(format!("mount {fstype} on {}", target.display()))
}

/// The directory `in_container` in the rootfs, held open, made when missing.
pub fn ensure_dir(root: &Rootfs, in_container: &str) -> Result<MountPoint> {
    ensure_in_root(root, Path::new(in_container), true)
}

// ANCHOR: ensure_in_root
/// `in_container` inside the rootfs, held open to mount something on, made when missing (a
/// directory, or an empty file as a mount point for a file).
///
/// Every component is opened from the one before with [`open_beneath`], so a symbolic link on
/// the way is refused, not followed (an absolute one would lead out of the rootfs onto the
/// host), and a directory swapped for a link after it was opened changes nothing: the
/// descriptor holds the directory itself. What is missing is made with `mkdirat`/`openat` in
/// the directory held open. In a shared rootfs it is not made in the rootfs itself but in a
/// tmpfs of the container's own laid over the last directory that exists (`shadow`).
pub fn ensure_in_root(root: &Rootfs, in_container: &Path, directory: bool) -> Result<MountPoint> {
    let names: Vec<&OsStr> = in_container
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let refused = |why: &str| {
        Error::new(format!("{} in the rootfs {why}; mount points must be real paths", in_container.display()))
    };
    let mut dir = root.open_fd()?;
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        match open_beneath(dir.as_fd(), Path::new(name), OFlag::O_PATH) {
            Ok(fd) => {
                let is_dir =
                    kind(&fd).context(format!("fstat {}", in_container.display()))? == SFlag::S_IFDIR;
                if !is_dir && (!last || directory) {
                    return Err(refused("has a component that is not a directory"));
                }
                if last && !directory && is_dir {
                    return Err(refused("is a directory, where a file is mounted"));
                }
                dir = fd;
            }
            Err(Errno::ELOOP) => return Err(refused("is a symbolic link")),
            Err(Errno::ENOENT) => {
                let on_rootfs = fstat(&dir).context("fstat")?.st_dev == root.dev;
                if root.shared && on_rootfs {
                    dir = shadow(dir, in_container)?;
                }
                return make_missing(dir, &names[i..], directory, in_container);
            }
            Err(errno) => {
                return Err(Error::new(format!("opening {} in the rootfs: {errno}", in_container.display())));
            }
        }
    }
    Ok(MountPoint::new(dir))
}

/// Makes `names` (the missing end of a path, the last one a directory when `directory`) in
/// `dir`, one inside the other, and returns the last, held open.
fn make_missing(mut dir: OwnedFd, names: &[&OsStr], directory: bool, what: &Path) -> Result<MountPoint> {
    let context = || format!("creating the mount point {}", what.display());
    for (i, name) in names.iter().enumerate() {
        if i + 1 == names.len() && !directory {
            let flags =
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
            drop(openat(&dir, *name, flags, Mode::from_bits_truncate(0o644)).context(context())?);
        } else {
            mkdirat(&dir, *name, Mode::from_bits_truncate(0o755)).context(context())?;
        }
        dir = open_beneath(dir.as_fd(), Path::new(name), OFlag::O_PATH).context(context())?;
    }
    Ok(MountPoint::new(dir))
}
// ANCHOR_END: ensure_in_root

// ANCHOR: shadow
/// Lays a tmpfs of the container's own over `dir`, a directory of the shared rootfs held open,
/// with every entry of `dir` put back on it (a bind mount of each file or directory on an empty
/// one of the same kind, a copy of each symbolic link): the container sees the same directory,
/// but a mount point made in it now goes into the tmpfs, which vanishes with the container's
/// mounts, and the rootfs stays as it was built. Returns the tmpfs's root.
fn shadow(dir: OwnedFd, what: &Path) -> Result<OwnedFd> {
    let context =
        |doing: &str| format!("{doing} (a tmpfs over the directory of the mount point {})", what.display());
    let stat = fstat(&dir).context(context("fstat"))?;
    let mut entries = Vec::new();
    for entry in fs::read_dir(fd_path(&dir)).context(context("listing"))? {
        let name = entry.context(context("listing"))?.file_name();
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&dir, name.as_os_str(), flags, Mode::empty()).context(context("opening an entry"))?;
        let link = match kind(&fd).context(context("fstat"))? {
            SFlag::S_IFLNK => Some(readlinkat(&dir, name.as_os_str()).context(context("readlink"))?),
            _ => None,
        };
        entries.push((name, fd, link));
    }
    let mode = format!("mode={:o}", stat.st_mode & 0o7777);
    let target = MountPoint::new(dir);
    let tmpfs = attach_tmpfs(&target, &mode, libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV)?;
    // The directory's owner, where this user namespace maps it (step 08's does not map host root:
    // the tmpfs is then the container's root's, which it is anyway).
    let _ = fchownat(
        &tmpfs,
        "",
        Some(Uid::from_raw(stat.st_uid)),
        Some(Gid::from_raw(stat.st_gid)),
        AtFlags::AT_EMPTY_PATH,
    );
    for (name, fd, link) in entries {
        let name = name.as_os_str();
        if let Some(link) = link {
            symlinkat(link.as_os_str(), &tmpfs, name).context(context("copying a link"))?;
            continue;
        }
        if kind(&fd).context(context("fstat"))? == SFlag::S_IFDIR {
            mkdirat(&tmpfs, name, Mode::from_bits_truncate(0o755)).context(context("mkdir"))?;
        } else {
            let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
            drop(openat(&tmpfs, name, flags, Mode::from_bits_truncate(0o644)).context(context("creating"))?);
        }
        let placeholder =
            open_beneath(tmpfs.as_fd(), Path::new(name), OFlag::O_PATH).context(context("opening"))?;
        bind(fd_path(&fd), fd_path(&placeholder), MsFlags::MS_REC)
            .context(context("binding an entry back"))?;
    }
    Ok(tmpfs)
}
// ANCHOR_END: shadow

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse() {
        let v: Volume = "/tmp:/data:ro".parse().unwrap();
        assert_eq!((v.container.as_path(), v.read_only), (Path::new("/data"), true));
        assert!(!"/tmp:/data".parse::<Volume>().unwrap().read_only);
        let anonymous: Volume = "/data".parse().unwrap();
        assert_eq!((anonymous.host, anonymous.container), (None, PathBuf::from("/data")));
    }

    #[test]
    fn bad_volumes_are_refused() {
        for bad in [
            "tmp",
            "/tmp:data",
            "/tmp:/a/../b",
            "/no/such/host/path:/x",
            "/tmp:/x:rx",
            "/tmp:/x:ro:y",
            "/",
            "/tmp:/",
        ] {
            assert!(bad.parse::<Volume>().is_err(), "{bad} should be refused");
        }
    }
}
