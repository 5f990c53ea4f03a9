//! Step 10's new idea: the container's root is an **overlay**: an image's read-only layers with a
//! writable layer of the container's own on top.
//!
//! Until now every container ran on the same directory, so what one wrote the next one saw, and
//! the image itself changed. An overlay filesystem merges directories, *layers*, into one view:
//! a file is read from the topmost layer that has it; every change goes to the one writable
//! layer on top (a changed file is first copied up whole; a deleted one is hidden by a
//! *whiteout*, a character device 0/0). The read-only layers are never written, so any number of
//! containers can share them, and throwing a container's writable layer away undoes all it did.
//!
//! ```text
//! mount -t overlay overlay -o lowerdir=INIT:TOP:…:BASE,upperdir=UPPER,workdir=WORK ROOTFS
//! ```
//!
//! The stack, from the top: the container's writable layer (`upperdir`, with `workdir`, overlay's
//! scratch space, on the same filesystem); the *init layer*, the runtime's mount points for this
//! container; the image's layers, top first (the `layers` file lists them base first).
//!
//! Root in the container is uid 100000 on the host (step 08), and the image belongs to the
//! host's root: seen from inside, to `nobody`. So each read-only layer is handed to overlay as
//! an **idmapped mount**: a mount of the layer that shows its files' owners shifted by the
//! container's uid and gid maps, so that host root's files are root's in the container, while
//! not one file on disk changes. (The other way is a chown'd copy of the image per map; the
//! chapter compares them.)
//!
//! Who mounts what:
//! - the runtime (host root), before the container is cloned: the idmapped mounts, made with
//!   `open_tree(OPEN_TREE_CLONE)` and `mount_setattr(MOUNT_ATTR_IDMAP)` as *detached* mounts,
//!   attached nowhere: file descriptors, which the child inherits and which vanish with them;
//! - the container, in its own mount namespace: it attaches them (`move_mount`) and mounts the
//!   overlay there, as root of its user namespace (an unprivileged overlay mount, Linux 5.11 and
//!   later). Every mount of the stack is in the container's mount namespace and dies with it, on
//!   every path, SIGKILL included: nothing reaches the host's mount table.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, chown, lchown};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{SFlag, fstat};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe2, read, write};
use step01_clone::error::{Context, Error, Result};
use step06_rootfs::beneath::{open_beneath, open_tree};
use step06_rootfs::rootfs::{Rootfs, mount_fs};
use step06_rootfs::state::StateDir;
use step08_userns::userns::{IdMap, write_id_maps};

use crate::image::Image;

/// The init layer: the mount points the runtime needs in every container, `true` for a
/// directory. They are made in a layer of their own so that neither the image nor the
/// container's writable layer gets them (the files are bind-mounted over from the state
/// directory, as in step 06). Unlike the image's layers, this one is made for one container: it
/// is made with the owner root inside has outside (100000 with the default map) and given to
/// overlay as it is, not idmapped, so it may be on any filesystem: `/run` is a tmpfs on nearly
/// every distribution, and tmpfs can be idmapped only from Linux 6.3.
pub const INIT_LAYER: [(&str, bool); 9] = [
    ("proc", true),
    ("sys", true),
    ("dev", true),
    ("tmp", true),
    ("run", true),
    ("etc", true),
    ("etc/hostname", false),
    ("etc/hosts", false),
    ("etc/resolv.conf", false),
];

/// A container's overlay, as the runtime prepares it: everything in `<state dir>/overlay`,
///
/// ```text
/// init/       the init layer
/// layers/N    where the container attaches the image's layer N, idmapped (0 is the top one)
/// upper/      the writable layer, owned by the container's root
/// work/       overlay's work directory (same filesystem as upper/)
/// rootfs/     where the container mounts the overlay
/// ```
#[derive(Debug)]
pub struct Overlay {
    dir: PathBuf,
    /// The image's layers, idmapped, as mounts attached nowhere yet; top first.
    layers: Vec<OwnedFd>,
    /// The runtime's tmpfs on `dir`, or none when `dir` is on the host's filesystem.
    tmpfs: Option<RuntimeTmpfs>,
}

/// Where the container's writable layer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritableLayer {
    /// On a tmpfs in a mount namespace of the runtime's own: it costs no disk I/O, the host
    /// never sees it, and it goes with the runtime however that ends, SIGKILL included.
    Tmpfs,
    /// In the state directory on the host's filesystem, to be kept after the run (`--keep`).
    Kept,
}

impl Overlay {
    // ANCHOR: prepare
    /// In the runtime, before clone: makes the writable layer and the init layer in the state
    /// directory and an idmapped mount of each read-only layer, for a container whose ids are
    /// mapped by `uid_map` and `gid_map`.
    pub fn prepare(
        image: &Image,
        state: &StateDir,
        uid_map: &[IdMap],
        gid_map: &[IdMap],
        writable: WritableLayer,
    ) -> Result<Overlay> {
        require_overlay()?;
        let release = nix::sys::utsname::uname().context("uname")?.release().to_string_lossy().into_owned();
        require_idmapped_layers(&release)?;
        let (uid, gid) = (root_outside(uid_map)?, root_outside(gid_map)?);
        // The idmapped mounts first: open_tree clones mounts of the host's mount namespace,
        // which the runtime leaves for a namespace of its own just after.
        let userns = user_namespace_with(uid_map, gid_map)?;
        // The image's layers as they were opened when it was read, not their paths again.
        let image_layers = image.layers().iter().rev().zip(image.layer_fds().rev());
        let layers =
            image_layers.map(|(layer, fd)| idmapped_mount(fd, layer, &userns)).collect::<Result<Vec<_>>>()?;

        let dir = state.path().join("overlay");
        // Only host root and the container's root may look in: the writable layer holds what
        // the container made, setuid programs of its root included.
        make_dir(&dir, 0o710, (0, gid))?;
        let tmpfs = match writable {
            WritableLayer::Tmpfs if tmpfs_has_user_xattrs(&release) => Some(RuntimeTmpfs::mount(&dir, gid)?),
            WritableLayer::Tmpfs | WritableLayer::Kept => None,
        };
        make_dir(&dir.join("upper"), 0o755, (uid, gid))?;
        make_dir(&dir.join("work"), 0o755, (uid, gid))?;
        for sub in ["rootfs", "layers"] {
            make_dir(&dir.join(sub), 0o755, (0, 0))?;
        }
        for i in 0..layers.len() {
            make_dir(&dir.join("layers").join(i.to_string()), 0o755, (0, 0))?;
        }
        make_dir(&dir.join("init"), 0o755, (uid, gid))?;
        make_init_layer(&dir.join("init"), image, (uid, gid))?;
        Ok(Overlay { dir, layers, tmpfs })
    }
    // ANCHOR_END: prepare

    // ANCHOR: mount
    /// In the container, in its own mount namespace (made private): attaches the read-only
    /// layers and mounts the overlay of them and the writable layer; returns the merged view,
    /// to make `/` as in step 06. Two options: `userxattr`, because overlay keeps its notes
    /// (opaque directories) in `trusted.overlay.*` attributes by default, which a user namespace
    /// may neither read nor write, and `user.overlay.*` instead; `volatile`, because the writable
    /// layer is thrown away at exit: overlay need not flush it to disk when it is unmounted (2 ms
    /// of the 10 a container took here).
    pub fn mount(&self) -> Result<Rootfs> {
        // ANCHOR: exercise-overlay_mount move_mount each image layer to layers/N, then mount overlay on rootfs: lowerdir=init:layers/0:..,upperdir=..,workdir=..,userxattr,volatile
        let mut lower = vec![self.dir.join("init").display().to_string()];
        for (i, tree) in self.layers.iter().enumerate() {
            let target = self.dir.join("layers").join(i.to_string());
            move_mount(tree, &target)?;
            lower.push(target.display().to_string());
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={},userxattr,volatile",
            lower.join(":"),
            self.dir.join("upper").display(),
            self.dir.join("work").display()
        );
        let rootfs = self.dir.join("rootfs");
        mount_fs("overlay", &rootfs, MsFlags::empty(), &options)?;
        Rootfs::own(&rootfs)
        // ANCHOR_END: exercise-overlay_mount
    }
    // ANCHOR_END: mount

    /// Where the host can read the writable layer while the runtime runs: the path itself when
    /// it is on the host's filesystem, or through `/proc/PID/root` of the runtime, which
    /// resolves paths in the runtime's own mount namespace, when it is on the runtime's tmpfs.
    pub fn upper_seen_from_the_host(&self) -> PathBuf {
        let upper = self.dir.join("upper");
        match &self.tmpfs {
            Some(_) => Path::new(&format!("/proc/{}/root", std::process::id()))
                .join(upper.strip_prefix("/").unwrap_or(&upper)),
            None => upper,
        }
    }

    /// After the container ended (its mounts are gone with it): moves the overlay's directory
    /// out of the state directory, which is about to be removed, to `<state dir>.kept`, which no
    /// runtime reclaims; returns where the writable layer now is.
    pub fn keep(&self) -> Result<PathBuf> {
        if self.tmpfs.is_some() {
            return Err(Error::new(
                "the writable layer is on the runtime's tmpfs: prepare it as WritableLayer::Kept",
            ));
        }
        let kept = PathBuf::from(format!("{}.kept", self.dir.parent().unwrap_or(&self.dir).display()));
        fs::rename(&self.dir, &kept).context(format!("moving the writable layer to {}", kept.display()))?;
        Ok(kept.join("upper"))
    }
}

// ANCHOR: runtime_tmpfs
/// Gives the runtime a mount namespace of its own and mounts a tmpfs on `dir` in it, for the
/// container's writable layer and the rest of the overlay's directories. On a host whose `/run`
/// is on a disk (ext4 here), every directory made there and removed again goes through the
/// filesystem's journal: 6 of the 20 ms a container took on this machine (see the benchmark
/// appendix). In RAM it costs nothing, nothing reaches the host's mount table (the new
/// namespace's mounts are made slaves first, so this one does not propagate back), and the
/// whole tmpfs goes with the runtime's namespace, however the runtime ends. The container,
/// cloned from this namespace, sees the tmpfs at the same path. Its pages are charged to the
/// memory cgroup of whoever writes them: what the container writes counts against its
/// `--memory`.
#[derive(Debug)]
struct RuntimeTmpfs {
    dir: PathBuf,
}

impl RuntimeTmpfs {
    fn mount(dir: &Path, gid: u32) -> Result<RuntimeTmpfs> {
        unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS) for the runtime")?;
        nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
            .context("making the runtime's mounts slaves (mount --make-rslave /)")?;
        let options = format!("mode=0710,uid=0,gid={gid},size=50%");
        mount_fs("tmpfs", dir, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &options)?;
        Ok(RuntimeTmpfs { dir: dir.to_path_buf() })
    }
}

impl Drop for RuntimeTmpfs {
    /// Unmounts the tmpfs, and all in it with it, so that the state directory can remove its
    /// mount point (the namespace and its mounts would go at exit anyway).
    fn drop(&mut self) {
        let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
    }
}
// ANCHOR_END: runtime_tmpfs

/// The host id that id 0 inside is mapped to (the maps were checked: there is one).
fn root_outside(map: &[IdMap]) -> Result<u32> {
    map.iter()
        .find(|line| line.inside == 0)
        .map(|line| line.outside)
        .ok_or_else(|| Error::new("the id maps must map id 0 inside"))
}

fn make_dir(dir: &Path, mode: u32, (uid, gid): (u32, u32)) -> Result<()> {
    fs::create_dir(dir).context(format!("creating {}", dir.display()))?;
    chown(dir, Some(uid), Some(gid)).context(format!("chown {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).context(format!("chmod {}", dir.display()))
}

// ANCHOR: init_layer
/// Fills the init layer with [`INIT_LAYER`]'s mount points, except where one would hide more of
/// the image than the mount point itself: a directory on the way that is something else in the
/// image (a symbolic link, say) is left to the image, and the container's setup refuses it as
/// step 06 does. A file of the image where a file goes (`/etc/resolv.conf` as a link, often) is
/// hidden: the runtime's file is bind-mounted there anyway. Every entry belongs to `owner`, the
/// container's root as the host sees it.
fn make_init_layer(init: &Path, image: &Image, (uid, gid): (u32, u32)) -> Result<()> {
    'entries: for (path, directory) in INIT_LAYER {
        let parts: Vec<&str> = path.split('/').collect();
        for end in 1..=parts.len() {
            let last = end == parts.len();
            match image_entry(image, &parts[..end].join("/")) {
                None => break, // not in the image: nothing below it either
                Some(is_dir) if is_dir && (directory || !last) => {}
                Some(is_dir) if !is_dir && last && !directory => {}
                Some(_) => continue 'entries,
            }
        }
        let target = init.join(path);
        let made = if directory { fs::create_dir(&target) } else { fs::write(&target, "") };
        made.context(format!("creating {} in the init layer", target.display()))?;
        lchown(&target, Some(uid), Some(gid)).context(format!("chown {}", target.display()))?;
    }
    Ok(())
}

/// What the image shows at `path` (relative to its root): the entry of the topmost layer that
/// has one, or nothing when that is a whiteout or no layer has one.
fn image_entry(image: &Image, path: &str) -> Option<bool> {
    for layer in image.layer_fds().rev() {
        match open_beneath(layer, Path::new(path), OFlag::O_PATH) {
            Ok(fd) => {
                let stat = fstat(&fd).ok()?;
                let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
                let whiteout = kind == SFlag::S_IFCHR && stat.st_rdev == 0;
                return (!whiteout).then_some(kind == SFlag::S_IFDIR);
            }
            // A symbolic link on the way: not a directory to make mount points in.
            Err(Errno::ELOOP) => return Some(false),
            Err(_) => {}
        }
    }
    None
}
// ANCHOR_END: init_layer

// ANCHOR: user_namespace_with
/// A user namespace with the container's maps, to give `mount_setattr`: an idmapped mount takes
/// its map from one. The container's own does not exist before clone, so a helper process makes
/// one (`unshare`), the runtime writes the maps into it as it does the container's, and keeps a
/// descriptor of the namespace, which outlives the helper.
fn user_namespace_with(uid_map: &[IdMap], gid_map: &[IdMap]) -> Result<OwnedFd> {
    let (ready, ready_sender) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    let (done, done_sender) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    // SAFETY: the runtime has one thread; the child only makes system calls, then _exit.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(done_sender);
            let made = unshare(CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = write(&ready_sender, if made { b"y" } else { b"n" });
            // Wait until the runtime is done with us: it closes its end (or dies).
            let _ = read(&done, &mut [0u8]);
            // SAFETY: ends the helper without running anything of the runtime's.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_sender);
            let mut answer = [0u8];
            let userns = if read(&ready, &mut answer) == Ok(1) && answer == *b"y" {
                write_id_maps(child, uid_map, gid_map).and_then(|()| {
                    let ns = format!("/proc/{child}/ns/user");
                    fs::File::open(&ns).map(OwnedFd::from).context(format!("opening {ns}"))
                })
            } else {
                Err(Error::new("a helper process could not make a user namespace for the idmapped layers"))
            };
            drop(done_sender);
            while waitpid(child, None) == Err(Errno::EINTR) {}
            userns
        }
    }
}
// ANCHOR_END: user_namespace_with

// ANCHOR: idmapped_mount
/// A read-only mount of `layer` whose files' owners are shifted by the maps of `userns`
/// (host uid 0 shows as 100000 with the default map, which is root in the container), attached
/// nowhere: a file descriptor. Nothing on disk changes.
fn idmapped_mount(layer: BorrowedFd, name: &Path, userns: &OwnedFd) -> Result<OwnedFd> {
    let tree = open_tree(layer, false).context(format!("open_tree {}", name.display()))?;
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP | libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr(2) on the tree itself (empty path, AT_EMPTY_PATH), with a
    // mount_attr that lives through the call and whose size is passed along.
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &raw const attr,
            size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(set).map_err(|errno| {
        let hint = match errno {
            Errno::EINVAL => {
                " (its filesystem cannot be idmapped: ext4, xfs, btrfs and, from Linux 6.3, tmpfs can)"
            }
            Errno::ENOSYS => " (idmapped mounts need Linux 5.12 or later)",
            _ => "",
        };
        Error::new(format!("idmapping layer {}: {errno}{hint}", name.display()))
    })?;
    Ok(tree)
}
// ANCHOR_END: idmapped_mount

/// Attaches the detached mount `tree` at `target` (move_mount(2)).
fn move_mount(tree: &OwnedFd, target: &Path) -> Result<()> {
    let c_target = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| Error::new(format!("{}: a path with a NUL byte", target.display())))?;
    // SAFETY: move_mount(2) from the descriptor itself (empty path) to a NUL-terminated path.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c_target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(moved).map(drop).context(format!("attaching a layer at {}", target.display()))
}

/// The first Linux whose tmpfs has `user.*` extended attributes, where overlay keeps its notes
/// when mounted in a user namespace (`userxattr`): opaque directories, made when the container
/// deletes a directory of the image and makes it again.
pub const TMPFS_USER_XATTRS_SINCE: (u32, u32) = (6, 6);

/// Whether the writable layer may be on a tmpfs: on an older kernel, it stays in the state
/// directory on the host's `/run`, as with `--keep`.
pub fn tmpfs_has_user_xattrs(release: &str) -> bool {
    kernel_version(release) >= TMPFS_USER_XATTRS_SINCE
}

/// `(major, minor)` of a `uname -r`: `6.1.0-57-amd64` is `(6, 1)`.
fn kernel_version(release: &str) -> (u32, u32) {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// The first Linux whose overlay takes idmapped layers (and mounts in a user namespace).
pub const IDMAPPED_LAYERS_SINCE: (u32, u32) = (5, 19);

/// Refuses a kernel older than [`IDMAPPED_LAYERS_SINCE`], `release` being its `uname -r`: there,
/// overlay refuses idmapped layers with a bare `EINVAL` (Ubuntu 22.04's 5.15, say). The other way,
/// a chown'd copy of the image per id map, is what such a kernel would need (see the chapter).
pub fn require_idmapped_layers(release: &str) -> Result<()> {
    if kernel_version(release) >= IDMAPPED_LAYERS_SINCE {
        return Ok(());
    }
    let (major, minor) = IDMAPPED_LAYERS_SINCE;
    Err(Error::new(format!(
        "step 10 needs Linux {major}.{minor} or later (an overlay of idmapped layers); this is Linux {release}:          use steps 01-09 here, or a newer kernel"
    )))
}

/// Fails with the setting to change when the kernel has no overlay filesystem. `fsopen(2)` asks
/// the kernel for a filesystem type by name, loading its module when it is one (as a mount
/// would), and answers `ENODEV` when there is none. Before Linux 5.2 (no `fsopen`), the mount
/// itself will fail.
fn require_overlay() -> Result<()> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    // SAFETY: a NUL-terminated name and a flag; the descriptor returned is ours to close.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: the descriptor fsopen just gave us, used nowhere else.
        drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        return Ok(());
    }
    match Errno::last() {
        Errno::ENODEV => Err(Error::new(
            "this kernel has no overlay filesystem, which step 10 needs: load it with `modprobe overlay` \
             (kernel option CONFIG_OVERLAY_FS)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{require_idmapped_layers, tmpfs_has_user_xattrs};

    #[test]
    fn the_writable_layer_is_on_a_tmpfs_only_where_tmpfs_has_user_xattrs() {
        for old in ["6.1.0-57-amd64", "5.19.0", "6.5.13"] {
            assert!(!tmpfs_has_user_xattrs(old), "{old}");
        }
        for new in ["6.6.0", "6.8.0-49-generic", "6.18.44-fc-v657", "10.1"] {
            assert!(tmpfs_has_user_xattrs(new), "{new}");
        }
    }

    #[test]
    fn kernels_without_idmapped_overlay_layers_are_refused_by_name() {
        for old in ["5.15.0-91-generic", "5.4.0", "4.19.0-26-amd64", "5.18.19"] {
            let error = require_idmapped_layers(old).expect_err(old).to_string();
            assert!(error.contains("needs Linux 5.19") && error.contains(old), "{old}: {error}");
        }
        for new in ["5.19.0", "6.1.0-57-amd64", "6.18.0", "10.0"] {
            assert!(require_idmapped_layers(new).is_ok(), "{new} was refused");
        }
    }
}
