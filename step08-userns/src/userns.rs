//! Step 08's new idea: a user namespace, so that root in the container is nobody on the host.
//!
//! Until now the container's root was the host's root: a process that escaped the namespaces,
//! or wrote through a volume, did so as uid 0. With `CLONE_NEWUSER` the container gets user and
//! group ids of its own. Two files of the child's, written once by the parent, say how they
//! correspond to the host's: `/proc/PID/uid_map` and `/proc/PID/gid_map`, lines of
//! `INSIDE OUTSIDE COUNT`. The default, `0 100000 65536`, makes uids 0–65535 inside uids
//! 100000–165535 outside (the range `/etc/subuid` conventionally gives the first user), so root
//! inside is uid 100000 outside, which owns nothing on the host.
//!
//! The child is created with all capabilities *in its new user namespace*, and in the other
//! namespaces created with it, which that user namespace owns: it may mount, set the hostname,
//! pivot_root there. It has none over the host: a file owned by host root is, inside, owned by
//! `nobody` (an unmapped id) and root inside cannot change it.
//!
//! Some mounts of step 06 need more than that, and are replaced here:
//! - **sysfs** may only be mounted by a user namespace that owns the network namespace (not yet:
//!   that is step 09), so the host's `/sys` is bind-mounted, read-only;
//! - **mknod** is refused in a user namespace (a device node would open any disk of the host),
//!   so /dev gets bind mounts of the host's harmless device nodes instead.

use std::fmt;
use std::fs;
use std::os::fd::AsFd;
use std::path::Path;
use std::str::FromStr;

use nix::fcntl::{OFlag, open, openat};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, setresgid, setresuid};
use step01_clone::clone;
use step01_clone::error::{Context, Error, Result};
use step05_mount::mount::mount_proc;
use step06_rootfs::beneath::{move_mount, open_beneath, open_tree, set_mount_attr};
use step06_rootfs::rootfs::{
    DEVICES, MountPoint, Rootfs, attach_tmpfs, bind, dev_links_pts_and_shm, ensure_dir, mount_fs,
};
use step06_rootfs::tmpfs::TmpfsSizes;

/// One line of a uid or gid map: `count` ids from `inside` in the container are the ids from
/// `outside` on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The default map: root inside is uid/gid 100000 outside, and 65536 ids are mapped.
pub const DEFAULT_MAP: &str = "0:100000:65536";

impl FromStr for IdMap {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "a map is INSIDE:OUTSIDE:COUNT, e.g. 0:100000:65536";
        let numbers: Vec<u64> = text
            .split(':')
            .map(|n| n.trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{text:?} is not a map: {usage}"))?;
        let [inside, outside, count] = numbers[..] else {
            return Err(format!("{text:?} is not a map: {usage}"));
        };
        if count == 0 {
            return Err(format!("{text}: the count must be at least 1"));
        }
        // An id is 32 bits and (u32)-1 is reserved: every mapped id must stay below 2^32 - 1.
        let limit = u64::from(u32::MAX);
        if inside + count > limit || outside + count > limit {
            return Err(format!("{text}: the range goes past the largest id, {}", limit - 1));
        }
        Ok(IdMap { inside: inside as u32, outside: outside as u32, count: count as u32 })
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.inside, self.outside, self.count)
    }
}

/// Checks a whole map (the lines given for one of `--uid-map` or `--gid-map`): no two lines may
/// overlap inside or outside (the kernel refuses it), and id 0 inside must be mapped, since the
/// container's first process becomes root inside.
pub fn check_map(option: &str, lines: &[IdMap]) -> Result<()> {
    for (i, a) in lines.iter().enumerate() {
        for b in &lines[i + 1..] {
            let overlap = |a0: u32, b0: u32| {
                u64::from(a0) < u64::from(b0) + u64::from(b.count)
                    && u64::from(b0) < u64::from(a0) + u64::from(a.count)
            };
            if overlap(a.inside, b.inside) || overlap(a.outside, b.outside) {
                return Err(Error::new(format!("{option} {a} and {b} overlap: give ranges that do not")));
            }
        }
    }
    if !lines.iter().any(|line| line.inside == 0) {
        return Err(Error::new(format!(
            "{option} must map id 0 inside (the container's root), e.g. {DEFAULT_MAP}"
        )));
    }
    Ok(())
}

/// The host id that id 0 inside is mapped to (0 if it is not: [`check_map`] refuses that).
pub fn root_outside(map: &[IdMap]) -> u32 {
    map.iter().find(|line| line.inside == 0).map_or(0, |line| line.outside)
}

/// Refuses early, with the setting to change, on a host where user namespaces are turned off.
pub fn check_enabled() -> Result<()> {
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err(Error::new(
            "user namespaces are disabled here: the sysctl user.max_user_namespaces is 0 \
             (enable them with `sysctl -w user.max_user_namespaces=15000`)",
        ));
    }
    if !Path::new("/proc/self/ns/user").exists() {
        return Err(Error::new("this kernel has no user namespaces (CONFIG_USER_NS is off)"));
    }
    Ok(())
}

// ANCHOR: write_id_maps
/// In the parent, while the child waits: writes the child's uid and gid maps. `setgroups` is
/// set to `deny` first. The kernel demands that of an unprivileged writer of a gid map; the
/// runtime, root on the host, is exempt, but denying is right for a container anyway: with
/// setgroups allowed, root inside could drop a supplementary group that the host uses to *deny*
/// access (a file mode like 0705 with the group left out).
pub fn write_id_maps(child: Pid, uid_map: &[IdMap], gid_map: &[IdMap]) -> Result<()> {
    // ANCHOR: exercise-write_id_maps write deny to /proc/PID/setgroups, then gid_map, then uid_map: one write of all the lines each
    let proc = Path::new("/proc").join(child.to_string());
    let lines = |map: &[IdMap]| {
        map.iter().map(|l| format!("{} {} {}\n", l.inside, l.outside, l.count)).collect::<String>()
    };
    fs::write(proc.join("setgroups"), "deny").context(format!("writing deny to /proc/{child}/setgroups"))?;
    // Each map file can be written once, with all its lines in a single write.
    fs::write(proc.join("gid_map"), lines(gid_map)).context(format!("writing /proc/{child}/gid_map"))?;
    fs::write(proc.join("uid_map"), lines(uid_map)).context(format!("writing /proc/{child}/uid_map"))
    // ANCHOR_END: exercise-write_id_maps
}
// ANCHOR_END: write_id_maps

// ANCHOR: become_root
/// In the child, once the maps are written: take the ids of root inside. Until then the child
/// still had the host ids it was created with (host root, shown inside as the overflow id
/// 65534); after this, what it creates on the host belongs to the mapped id, 100000.
pub fn become_root() -> Result<()> {
    // ANCHOR: exercise-become_root inside clone::change_ids, setresgid(0, 0, 0) then setresuid(0, 0, 0)
    // Changing ids clears the parent-death signal: step 1's change_ids sets it again.
    clone::change_ids(|| {
        let root_gid = Gid::from_raw(0);
        let root_uid = Uid::from_raw(0);
        setresgid(root_gid, root_gid, root_gid).context("setresgid(0) in the user namespace")?;
        setresuid(root_uid, root_uid, root_uid).context("setresuid(0) in the user namespace")
    })
    // ANCHOR_END: exercise-become_root
}
// ANCHOR_END: become_root

// ANCHOR: kernel_filesystems
/// Step 06's kernel filesystems, as a user namespace allows them: /proc as before (the PID
/// namespace belongs to this user namespace); the host's /sys bound read-only instead of a new
/// sysfs; a /dev whose devices are bind mounts of the host's instead of mknod'ed nodes.
pub fn mount_kernel_filesystems(root: &Rootfs, sizes: &TmpfsSizes) -> Result<()> {
    mount_kernel_filesystems_with(root, sizes, bind_host_sys)
}

/// [`mount_kernel_filesystems`], with `sys` putting something on the container's /sys (step 09,
/// whose network namespace belongs to the container, mounts a sysfs of its own there).
pub fn mount_kernel_filesystems_with(
    root: &Rootfs,
    sizes: &TmpfsSizes,
    sys: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    mount_proc(ensure_dir(root, "/proc")?)?;
    sys(ensure_dir(root, "/sys")?.as_ref())?;
    mount_dev(&ensure_dir(root, "/dev")?, sizes)?;
    let (tmp, run) =
        (format!("mode=1777,{}", sizes.tmp.option()), format!("mode=755,{}", sizes.tmp.option()));
    mount_fs("tmpfs", ensure_dir(root, "/tmp")?, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &tmp)?;
    mount_fs("tmpfs", ensure_dir(root, "/run")?, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &run)
}

/// The host's /sys, read-only: a new sysfs may only be mounted by the user namespace that owns
/// the network namespace, and the container still shares the host's. A copy of the host's /sys
/// with the mounts below it (the kernel insists: they are locked to it), all made read-only
/// before it is attached at `sys` (`/proc/self/fd/N` of the mount point).
fn bind_host_sys(sys: &Path) -> Result<()> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let host = open("/sys", flags, Mode::empty()).context("opening the host's /sys")?;
    let tree = open_tree(host.as_fd(), true).context("open_tree of the host's /sys")?;
    set_mount_attr(tree.as_fd(), libc::MOUNT_ATTR_RDONLY).context("making the host's /sys read-only")?;
    let target = open(sys, flags, Mode::empty()).context("opening /sys in the rootfs")?;
    move_mount(tree.as_fd(), target.as_fd()).context("mounting the host's /sys")
}
// ANCHOR_END: kernel_filesystems

// ANCHOR: dev
/// A tmpfs /dev in which each device of step 06's list is an empty file with the host's node
/// bind-mounted over it; the links, /dev/pts and /dev/shm are step 06's (a devpts instance may
/// be mounted in a user namespace).
fn mount_dev(dev: &MountPoint, sizes: &TmpfsSizes) -> Result<()> {
    let dev = attach_tmpfs(dev, "mode=755,size=64k", libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC)?;
    for (name, _, _) in DEVICES {
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        drop(
            openat(&dev, name, flags, Mode::from_bits_truncate(0o666))
                .context(format!("creating /dev/{name}"))?,
        );
        let node = open_beneath(dev.as_fd(), Path::new(name), OFlag::O_PATH)
            .context(format!("opening /dev/{name}"))?;
        let host = Path::new("/dev").join(name);
        bind(&host, step06_rootfs::beneath::fd_path(&node), MsFlags::empty())
            .context(format!("bind-mounting {}", host.display()))?;
    }
    dev_links_pts_and_shm(dev.as_fd(), sizes)
}
// ANCHOR_END: dev

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parse() {
        assert_eq!(
            "0:100000:65536".parse::<IdMap>().unwrap(),
            IdMap { inside: 0, outside: 100000, count: 65536 }
        );
        for bad in
            ["", "0:1", "0:1:2:3", "a:b:c", "0:100000:0", "-1:0:1", "0:4294967295:1", "4294967290:0:10"]
        {
            assert!(bad.parse::<IdMap>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn maps_must_not_overlap_and_must_map_root() {
        let map = |text: &str| text.split(',').map(|l| l.parse::<IdMap>().unwrap()).collect::<Vec<_>>();
        assert!(check_map("--uid-map", &map("0:100000:1000,1000:200000:10")).is_ok());
        assert!(check_map("--uid-map", &map("0:100000:1000,500:200000:10")).is_err(), "inside overlap");
        assert!(check_map("--uid-map", &map("0:100000:1000,5000:100500:10")).is_err(), "outside overlap");
        assert!(check_map("--uid-map", &map("1:100000:1000")).is_err(), "root unmapped");
    }
}
