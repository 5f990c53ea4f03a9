//! Step 05's new idea: a mount namespace, and a /proc that shows the container's own processes.
//!
//! `CLONE_NEWNS` gives the child a copy of the host's mount table. A copy is not yet a private
//! one: on a host whose `/` is a *shared* mount (systemd makes it so), a mount made in the copy
//! propagates back to the host. Mount a new /proc there and the host's /proc is covered by one
//! that belongs to the container's PID namespace; when the container ends, `ps` on the host
//! finds nothing. So the first thing to do in the new namespace is to make every mount in it
//! private (`MS_REC | MS_PRIVATE` on `/`), and only then to mount.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use step01_clone::error::{Context, Result};

// ANCHOR: make_private
/// Stops propagation between the container's mount table and the host's, in both directions,
/// for every mount (`mount --make-rprivate /`).
pub fn make_private() -> Result<()> {
    // ANCHOR: exercise-make_private mount(2) with no source on / and MS_REC | MS_PRIVATE
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .context("making / private (mount --make-rprivate /)")
    // ANCHOR_END: exercise-make_private
}
// ANCHOR_END: make_private

// ANCHOR: mount_proc
/// Mounts a proc filesystem on `target` (/proc). It shows the PID namespace of the process that
/// mounts it, so `ps` and `top` inside see the container's processes only.
pub fn mount_proc(target: impl AsRef<Path>) -> Result<()> {
    // ANCHOR: exercise-mount_proc mount(2) a filesystem of type proc on target, nosuid,nodev,noexec
    let target = target.as_ref();
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), target, Some("proc"), flags, None::<&str>)
        .context(format!("mount proc on {}", target.display()))
    // ANCHOR_END: exercise-mount_proc
}
// ANCHOR_END: mount_proc
