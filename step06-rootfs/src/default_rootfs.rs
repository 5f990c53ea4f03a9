//! The rootfs used when `--rootfs` is not given: built on first use, offline, from what the
//! host already has.
//!
//! - With a static busybox installed (Debian and Ubuntu: `busybox-static`), the rootfs is that
//!   one binary plus a link for each of its ~270 applets (`ls`, `ps`, `mount`, `ping`, …).
//! - Otherwise it is a handful of the host's own binaries and the shared libraries they load,
//!   found with `ldd`: a dynamically linked program fails at execve with ENOENT when its
//!   loader (`/lib64/ld-linux-x86-64.so.2`) is missing from the rootfs.
//!
//! Several containers may start at once on a machine without a rootfs yet: one builds it under
//! a lock, in a temporary directory that is renamed into place when complete; the others wait
//! for the lock and find the rootfs there.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::rootfs::Rootfs;
use crate::state;
use step01_clone::error::{Context, Error, Result};

/// Where the default rootfs lives.
pub const DEFAULT_DIR: &str = "/var/lib/workshop/rootfs";

/// The host programs copied when there is no static busybox; `sh` is required, the rest are
/// taken when the host has them.
pub const HOST_PROGRAMS: &[&str] = &[
    "sh", "ls", "cat", "echo", "ps", "mount", "umount", "hostname", "uname", "id", "ping", "ip", "mkdir",
    "rm", "touch", "cp", "mv", "ln", "stat", "df", "env", "sleep", "kill", "grep", "sed", "wc", "head",
    "tail", "true", "false", "chroot", "ipcs", "ipcmk", "ipcrm", "readlink", "dd",
];

/// Host programs added to a busybox rootfs when its build has no applet for them and a step's
/// demonstration uses them (step 03's message queues; Debian's busybox has no IPC applets).
pub const BUSYBOX_EXTRAS: &[&str] = &["ipcmk", "ipcs", "ipcrm"];

/// What to build a rootfs from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A static busybox when the host has one, else the host's binaries.
    Auto,
    Busybox,
    Host,
}

/// The default rootfs, built first if missing.
pub fn default_rootfs() -> Result<Rootfs> {
    ensure(Path::new(DEFAULT_DIR), Source::Auto)?;
    Rootfs::open(Path::new(DEFAULT_DIR))
}

/// Makes sure `dest` holds a rootfs, building it from `source` when it does not exist yet.
/// Returns whether this call built it.
pub fn ensure(dest: &Path, source: Source) -> Result<bool> {
    build_once(dest, |building| build(building, source))
}

/// Makes sure the directory `dest` exists, calling `build` to make it when it does not: under a
/// lock (`.NAME.lock` beside it), in `.NAME.building`, renamed to `dest` once complete, so that
/// runtimes starting at once build it once and none sees it half-built. A build left half-done
/// by a killed builder is removed by the next one. Returns whether this call built it.
pub fn build_once(dest: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<bool> {
    if dest.is_dir() {
        return Ok(false);
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name =
        dest.file_name().ok_or_else(|| Error::new(format!("{} is not a directory name", dest.display())))?;
    fs::create_dir_all(parent).context(format!("creating {}", parent.display()))?;
    let lock_path = parent.join(format!(".{}.lock", name.to_string_lossy()));
    let _lock = state::lock(&lock_path)?;
    if dest.is_dir() {
        return Ok(false); // another runtime built it while we waited
    }
    let building = parent.join(format!(".{}.building", name.to_string_lossy()));
    if building.exists() {
        fs::remove_dir_all(&building).context(format!("removing a half-built {}", building.display()))?;
    }
    let built = build(&building)
        .and_then(|()| fs::rename(&building, dest).context(format!("renaming it to {}", dest.display())));
    if built.is_err() {
        let _ = fs::remove_dir_all(&building);
    }
    built.map(|()| true)
}

/// Builds a rootfs in `dest`, which must not exist.
pub fn build(dest: &Path, source: Source) -> Result<()> {
    skeleton(dest)?;
    let from = match (source, static_busybox()) {
        (Source::Auto | Source::Busybox, Some(busybox)) => {
            from_busybox(dest, &busybox)?;
            format!("busybox ({})", busybox.display())
        }
        (Source::Busybox, None) => {
            return Err(Error::new(
                "no static busybox on this host (Debian/Ubuntu: apt install busybox-static)",
            ));
        }
        (Source::Auto | Source::Host, _) => {
            from_host(dest)?;
            "the host's binaries and their libraries".to_owned()
        }
    };
    let about = format!("A rootfs built by the container workshop from {from}.\n");
    fs::write(dest.join("etc/workshop-rootfs"), about).context("writing /etc/workshop-rootfs")
}

/// The directories of a small merged-/usr Linux tree, and the files bind-mounted over later.
fn skeleton(dest: &Path) -> Result<()> {
    for dir in
        ["usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "proc", "sys", "dev", "run", "home", "mnt"]
    {
        fs::create_dir_all(dest.join(dir)).context(format!("creating {}", dest.join(dir).display()))?;
    }
    for (dir, mode) in [("tmp", 0o1777), ("root", 0o700)] {
        fs::create_dir(dest.join(dir)).context(format!("creating /{dir}"))?;
        fs::set_permissions(dest.join(dir), fs::Permissions::from_mode(mode))
            .context(format!("chmod /{dir}"))?;
    }
    for (link, target) in
        [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")]
    {
        symlink(target, dest.join(link)).context(format!("symlink /{link}"))?;
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = "root:x:0:\nnogroup:x:65534:\n";
    for (file, content) in
        [("passwd", passwd), ("group", group), ("hostname", ""), ("hosts", ""), ("resolv.conf", "")]
    {
        fs::write(dest.join("etc").join(file), content).context(format!("writing /etc/{file}"))?;
    }
    Ok(())
}

/// A statically linked busybox on the host, if there is one.
pub fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| is_static_elf(path))
}

/// Whether `path` is a 64-bit little-endian ELF executable without a program interpreter
/// (`PT_INTERP`), that is, one that needs no loader and no shared library.
fn is_static_elf(path: &Path) -> bool {
    let mut bytes = Vec::new();
    if fs::File::open(path).and_then(|mut f| f.by_ref().take(64 * 1024).read_to_end(&mut bytes)).is_err() {
        return false;
    }
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at =
        |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes.get(at..at + 4).is_some_and(|b| u32::from_le_bytes(b.try_into().unwrap()) != PT_INTERP)
    })
}

fn from_busybox(dest: &Path, busybox: &Path) -> Result<()> {
    copy_into(dest, busybox, Path::new("/bin/busybox"))?;
    let list = Command::new(busybox).arg("--list-full").output().context("busybox --list-full")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|line| !line.is_empty()) {
        let link = dest.join(applet);
        if fs::symlink_metadata(&link).is_err() {
            symlink("/bin/busybox", &link).context(format!("linking /{applet}"))?;
        }
    }
    for program in BUSYBOX_EXTRAS {
        copy_host_program(dest, program)?;
    }
    Ok(())
}

fn from_host(dest: &Path) -> Result<()> {
    for program in HOST_PROGRAMS {
        if !copy_host_program(dest, program)? && *program == "sh" {
            return Err(Error::new("the host has no sh to copy into the rootfs"));
        }
    }
    Ok(())
}

/// Copies the host's `program` (found on PATH) to /bin in `dest`, with the loader and the
/// libraries it needs. Returns false when the host has no such program.
fn copy_host_program(dest: &Path, program: &str) -> Result<bool> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let Some(found) = std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file()) else {
        return Ok(false);
    };
    copy_into(dest, &found, &Path::new("/bin").join(program))?;
    for library in shared_libraries(&found)? {
        copy_into(dest, &library, &library)?;
    }
    Ok(true)
}

/// The loader and libraries `ldd` says `program` needs, by the paths it loads them from.
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(program).output().context("running ldd (from libc-bin)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = line.split_once("=> ").map_or(line, |(_, after)| after);
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Copies the file `source` (following links) to `in_rootfs` inside `dest`.
fn copy_into(dest: &Path, source: &Path, in_rootfs: &Path) -> Result<()> {
    let target = dest.join(in_rootfs.strip_prefix("/").unwrap_or(in_rootfs));
    if target.exists() {
        return Ok(());
    }
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
    }
    fs::copy(source, &target).map(drop).context(format!("copying {}", source.display()))
}
