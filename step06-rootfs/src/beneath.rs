//! Paths inside a directory that someone else may write, resolved from a file descriptor of it.
//!
//! A rootfs, an image layer or a volume can be written by a container (or by another user): any
//! directory in it may become a symbolic link between the moment the runtime looks at it and the
//! moment it uses it (runc's CVE-2021-30465). So nothing here takes a path from the host's `/`:
//! every lookup starts at a descriptor of the directory and refuses to follow a symbolic link,
//! and every mount is made on, or from, a descriptor of what was opened, never a path looked up
//! again.
//!
//! - [`open_beneath`]: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (Linux 5.6), or, on an
//!   older kernel, a walk one component at a time with `O_NOFOLLOW`;
//! - [`open_tree`] and [`move_mount`]: the new mount API (Linux 5.2): a mount made from a
//!   descriptor, as a descriptor, attached on a descriptor;
//! - [`new_tmpfs`]: a tmpfs made as a descriptor (`fsopen`, `fsconfig`, `fsmount`), so that what
//!   goes in it is made relative to its root, wherever it is attached.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, SFlag, fstat};

fn c_path(path: &Path) -> nix::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// The name of an open descriptor as a path, for calls that take one (`mount(2)`): the kernel
/// resolves `/proc/self/fd/N` to the very file the descriptor holds, not to a path looked up
/// again.
pub fn fd_path(fd: impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// The kind of file `fd` holds.
pub fn kind(fd: impl AsFd) -> nix::Result<SFlag> {
    let stat: FileStat = fstat(fd)?;
    Ok(SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()))
}

// ANCHOR: open_beneath
/// Opens `path` (relative: its `/` and `..` components are refused) beneath the directory `dir`,
/// following no symbolic link on the way or at the end: `ELOOP` if there is one. `flags` as for
/// open(2) (`O_CLOEXEC` is added).
pub fn open_beneath(dir: BorrowedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    if path.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Errno::EINVAL);
    }
    let c_path = c_path(path)?;
    // SAFETY: open_how is plain old data: zeroes are a valid value (and mean "no mode").
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | OFlag::O_CLOEXEC).bits() as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2(2) with a NUL-terminated path and an open_how that lives through the call,
    // whose size is passed along; it returns a new descriptor, which we own, or -1.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), c_path.as_ptr(), &raw const how, size_of_val(&how))
    };
    match Errno::result(fd) {
        // SAFETY: the descriptor openat2 just returned, owned by nothing else.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        // Before Linux 5.6: the same, one component at a time.
        Err(Errno::ENOSYS) => walk_beneath(dir, path, flags),
        Err(errno) => Err(errno),
    }
}
// ANCHOR_END: open_beneath

/// [`open_beneath`] without openat2: each directory on the way is opened `O_PATH | O_NOFOLLOW`
/// from the one before, and refused when it is a symbolic link.
fn walk_beneath(dir: BorrowedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let names: Vec<_> = path.components().collect();
    let mut current: Option<OwnedFd> = None;
    for (i, name) in names.iter().enumerate() {
        let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
        let last = i + 1 == names.len();
        let these = if last { flags } else { OFlag::O_PATH | OFlag::O_DIRECTORY };
        // O_PATH | O_NOFOLLOW opens a symbolic link itself: it is refused just below.
        let fd = openat(
            at,
            name.as_os_str(),
            these | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        if kind(&fd)? == SFlag::S_IFLNK {
            return Err(Errno::ELOOP);
        }
        current = Some(fd);
    }
    current.ok_or(Errno::EINVAL)
}

// ANCHOR: open_tree
/// A copy of the mount tree at `fd` (with the mounts below it when `recursive`), attached
/// nowhere: what `mount --bind` would mount, as a descriptor (`open_tree(OPEN_TREE_CLONE)`).
pub fn open_tree(fd: BorrowedFd, recursive: bool) -> nix::Result<OwnedFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree(2) of the descriptor itself (empty path); it returns a new descriptor.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    // SAFETY: the descriptor open_tree just returned, owned by nothing else.
    Errno::result(tree).map(|tree| unsafe { OwnedFd::from_raw_fd(tree as RawFd) })
}

/// Sets `attr` (`MOUNT_ATTR_RDONLY`, …) on the mount `tree` and every mount below it.
pub fn set_mount_attr(tree: BorrowedFd, attr: u64) -> nix::Result<()> {
    let attr = libc::mount_attr { attr_set: attr, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: mount_setattr(2) on the tree itself (empty path), with a mount_attr that lives
    // through the call and whose size is passed along.
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &raw const attr,
            size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(set).map(drop)
}

/// Attaches the mount `tree` (from [`open_tree`] or [`new_tmpfs`]) on the file or directory
/// that `target` holds open.
pub fn move_mount(tree: BorrowedFd, target: BorrowedFd) -> nix::Result<()> {
    // SAFETY: move_mount(2) between two descriptors, both with empty paths.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(moved).map(drop)
}
// ANCHOR_END: open_tree

/// A new tmpfs with `options` (`mode=755,size=64k`), attached nowhere: its root directory, as a
/// descriptor, with the mount flags `attr` (`MOUNT_ATTR_NOSUID`, …).
pub fn new_tmpfs(options: &str, attr: u64) -> nix::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: fsopen(2) with a NUL-terminated name; it returns a new descriptor, which we own.
    let fs = Errno::result(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: as above.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    // "source" names it in /proc/self/mountinfo, as `mount -t tmpfs tmpfs DIR` does.
    for option in std::iter::once("source=tmpfs").chain(options.split(',').filter(|o| !o.is_empty())) {
        let (key, value) = option.split_once('=').ok_or(Errno::EINVAL)?;
        let (key, value) = (c_path(Path::new(key))?, c_path(Path::new(value))?);
        // SAFETY: fsconfig(2) with two NUL-terminated strings that live through the call.
        let set = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        Errno::result(set)?;
    }
    // SAFETY: fsconfig(2) with no key nor value: create the superblock.
    let created = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    };
    Errno::result(created)?;
    // SAFETY: fsmount(2) of the configured context; it returns a new descriptor, which we own.
    let mount = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attr) };
    // SAFETY: as above.
    Errno::result(mount).map(|mount| unsafe { OwnedFd::from_raw_fd(mount as RawFd) })
}
