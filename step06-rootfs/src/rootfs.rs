//! Step 06's new idea: a root filesystem of the container's own, made `/` with pivot_root(2).
//!
//! Until now the container saw the host's files. Here it gets a directory of its own as `/`,
//! with the kernel's filesystems mounted inside it the way a Linux system expects them (/proc,
//! /sys, a small /dev, /tmp, /run), the host's view of its name and DNS (/etc/hostname,
//! /etc/hosts, /etc/resolv.conf, bind-mounted from files the runtime writes, as Docker does),
//! and the host directories the user asked for (volumes). Everything is mounted under the new
//! root first; `pivot_root` then swaps it in and the host's tree is detached for good.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::unistd::{chdir, pivot_root as pivot_root_syscall};

use step01_clone::error::{Context, Error, Result};
use step05_mount::mount::mount_proc;

/// A directory that will become the container's `/`.
#[derive(Clone, Debug)]
pub struct Rootfs {
    path: PathBuf,
}

impl Rootfs {
    /// Checks that `dir` is a directory and remembers its absolute path.
    pub fn open(dir: &Path) -> Result<Rootfs> {
        let path = fs::canonicalize(dir).map_err(|_| {
            Error::new(format!(
                "rootfs {} does not exist (give an existing directory to --rootfs)",
                dir.display()
            ))
        })?;
        if !path.is_dir() {
            return Err(Error::new(format!("rootfs {} is not a directory", dir.display())));
        }
        Ok(Rootfs { path })
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a container path (`/etc/hosts`) lies on the host, before pivot_root.
    fn host_path(&self, in_container: &Path) -> PathBuf {
        self.path.join(in_container.strip_prefix("/").unwrap_or(in_container))
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
/// a minimal /dev, /dev/pts, /dev/shm, and fresh /tmp and /run.
pub fn mount_kernel_filesystems(root: &Rootfs) -> Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_proc(ensure_dir(root, "/proc")?)?;
    mount_fs("sysfs", &ensure_dir(root, "/sys")?, nosuid_nodev_noexec | MsFlags::MS_RDONLY, "")?;
    mount_dev(&ensure_dir(root, "/dev")?)?;
    mount_fs("tmpfs", &ensure_dir(root, "/tmp")?, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=1777")?;
    mount_fs("tmpfs", &ensure_dir(root, "/run")?, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=755")?;
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
fn mount_dev(dev: &Path) -> Result<()> {
    // ANCHOR: exercise-mount_dev a tmpfs on dev, then mknod each of DEVICES (mode 0666), then dev_links_pts_and_shm
    mount_fs("tmpfs", dev, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, "mode=755,size=64k")?;
    for (name, major, minor) in DEVICES {
        let node = dev.join(name);
        mknod(&node, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(major, minor))
            .context(format!("mknod {}", node.display()))?;
        // mknod is subject to the umask; the devices are for everyone.
        fs::set_permissions(&node, fs::Permissions::from_mode(0o666))
            .context(format!("chmod {}", node.display()))?;
    }
    dev_links_pts_and_shm(dev)
    // ANCHOR_END: exercise-mount_dev
}

/// The rest of a /dev: the usual links, a devpts instance of the container's own (`newinstance`:
/// its terminals are numbered apart from the host's) and a tmpfs for POSIX shared memory.
pub fn dev_links_pts_and_shm(dev: &Path) -> Result<()> {
    // ANCHOR: exercise-dev_links_pts_and_shm symlinks fd, stdin, stdout, stderr, ptmx; a devpts (newinstance) on pts; a tmpfs on shm
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(target, dev.join(link)).context(format!("symlink /dev/{link}"))?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts).context("mkdir /dev/pts")?;
    mount_fs("devpts", &pts, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")?;
    let shm = dev.join("shm");
    fs::create_dir(&shm).context("mkdir /dev/shm")?;
    mount_fs("tmpfs", &shm, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=1777")
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

/// A host path mounted into the container: `-v HOST:CONTAINER[:ro]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub container: PathBuf,
    pub read_only: bool,
}

impl FromStr for Volume {
    type Err = String;

    fn from_str(spec: &str) -> Result<Volume, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, read_only) = match parts[..] {
            [host, container] => (host, container, false),
            [host, container, "ro"] => (host, container, true),
            [host, container, "rw"] => (host, container, false),
            [_, _, mode] => return Err(format!("the mode after the second ':' is ro or rw, not {mode:?}")),
            _ => return Err("a volume is HOST:CONTAINER or HOST:CONTAINER:ro".into()),
        };
        let container = PathBuf::from(container);
        if !container.is_absolute() || container.components().any(|c| c == Component::ParentDir) {
            return Err(format!("the container path {} must be absolute, without '..'", container.display()));
        }
        let host = fs::canonicalize(host).map_err(|_| format!("the host path {host} does not exist"))?;
        Ok(Volume { host, container, read_only })
    }
}

/// Makes the mount points of `volumes` in the rootfs from the host's side, for a container
/// whose root may not write the rootfs (step 08's user namespace).
pub fn make_mount_points(root: &Rootfs, volumes: &[Volume]) -> Result<()> {
    for volume in volumes {
        ensure_in_root(root, &volume.container, volume.host.is_dir())?;
    }
    Ok(())
}

// ANCHOR: volumes
/// Bind-mounts each volume's host path at its place in the rootfs (made when missing),
/// read-only when asked: a read-only bind takes a second call, a remount.
pub fn mount_volumes(root: &Rootfs, volumes: &[Volume]) -> Result<()> {
    for volume in volumes {
        let target = ensure_in_root(root, &volume.container, volume.host.is_dir())?;
        let what = format!("volume {}:{}", volume.host.display(), volume.container.display());
        bind(&volume.host, &target, MsFlags::MS_REC).context(&what)?;
        if volume.read_only {
            remount_read_only(&target).context(format!("{what}: read-only"))?;
        }
    }
    Ok(())
}
// ANCHOR_END: volumes

// ANCHOR: remount_read_only
/// Makes the bind mount at `target` read-only: `MS_BIND | MS_REMOUNT | MS_RDONLY`, keeping the
/// flags it already has (nosuid, nodev, noexec, atime). The kernel refuses a remount that would
/// drop one of them in a user namespace (they are locked), so they are read back first.
pub fn remount_read_only(target: &Path) -> nix::Result<()> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let have = statvfs(target)?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(fs_flag) {
            flags |= ms_flag;
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}
// ANCHOR_END: remount_read_only

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
pub fn bind(source: &Path, target: &Path, extra: MsFlags) -> nix::Result<()> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | extra, None::<&str>)
}

/// Mounts a new instance of the filesystem `fstype` on `target`.
pub fn mount_fs(fstype: &str, target: &Path, flags: MsFlags, data: &str) -> Result<()> {
    let data = (!data.is_empty()).then_some(data);
    mount(Some(fstype), target, Some(fstype), flags, data)
        .context(format!("mount {fstype} on {}", target.display()))
}

/// The host path of the directory `in_container` in the rootfs, made when missing.
pub fn ensure_dir(root: &Rootfs, in_container: &str) -> Result<PathBuf> {
    ensure_in_root(root, Path::new(in_container), true)
}

/// The host path of `in_container` inside the rootfs, made when missing (a directory, or an
/// empty file as a mount point for a file). A symbolic link on the way is refused: mount(2)
/// would follow it, and an absolute one would lead out of the rootfs onto the host.
pub fn ensure_in_root(root: &Rootfs, in_container: &Path, directory: bool) -> Result<PathBuf> {
    let mut path = root.path().to_path_buf();
    let components: Vec<_> =
        in_container.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    for (i, component) in components.iter().enumerate() {
        path.push(component);
        let last = i + 1 == components.len();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::new(format!(
                    "{} in the rootfs is a symbolic link; mount points must be real paths",
                    in_container.display()
                )));
            }
            Ok(_) => {}
            Err(_) if last && !directory => {
                fs::File::create(&path).context(format!("creating {}", path.display()))?;
            }
            Err(_) => fs::create_dir(&path).context(format!("creating {}", path.display()))?,
        }
    }
    debug_assert_eq!(path, root.host_path(in_container));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse() {
        let v: Volume = "/tmp:/data:ro".parse().unwrap();
        assert_eq!((v.container.as_path(), v.read_only), (Path::new("/data"), true));
        assert!(!"/tmp:/data".parse::<Volume>().unwrap().read_only);
    }

    #[test]
    fn bad_volumes_are_refused() {
        for bad in
            ["/tmp", "/tmp:data", "/tmp:/a/../b", "/no/such/host/path:/x", "/tmp:/x:rx", "/tmp:/x:ro:y"]
        {
            assert!(bad.parse::<Volume>().is_err(), "{bad} should be refused");
        }
    }
}
