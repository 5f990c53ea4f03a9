//! The rootfs used when `--rootfs` is not given: built on first use, offline, from what the
//! host already has.
//!
//! - With a static busybox installed (Debian and Ubuntu: `busybox-static`), the rootfs is that
//!   one binary plus a link for each of its ~270 applets (`ls`, `ps`, `mount`, `ping`, …).
//! - Otherwise it is the host's own binaries for the commands the book and the tests use
//!   ([`COMMANDS`]) and the shared libraries they load, found with `ldd`: a dynamically linked
//!   program fails at execve with ENOENT when its loader (`/lib64/ld-linux-x86-64.so.2`) is
//!   missing from the rootfs.
//!
//! Either way the rootfs has every command of [`COMMANDS`] that the host can provide, and says
//! at build time which ones it lacks. It describes itself in `/etc/workshop-rootfs` (the
//! builder's version, the flavour, what is missing), so that a cache made by an older builder,
//! or from the host's binaries before busybox or a missing command was installed, is rebuilt by
//! the next run instead of being kept for ever.
//!
//! Several containers may start at once on a machine without a rootfs yet: one builds it under
//! a lock, in a temporary directory that is renamed into place when complete; the others wait
//! for the lock and find the rootfs there.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::rootfs::Rootfs;
use step01_clone::error::{Context, Error, Result};

/// Where the default rootfs lives.
pub const DEFAULT_DIR: &str = "/var/lib/workshop/rootfs";

/// The builder's version, recorded in every rootfs it builds. Raise it whenever what a build
/// contains changes: caches made by an older builder are then rebuilt on their next use.
pub const BUILDER: u32 = 3;

/// The file in which a rootfs describes how it was built.
pub const ABOUT: &str = "etc/workshop-rootfs";

// ANCHOR: commands
/// The commands the book asks the reader to type in a container and the tests run there. A
/// busybox rootfs takes the host's program for those busybox has no applet for (Debian's has
/// no `ipcmk`, `ipcs`, `ipcrm`); a rootfs of the host's binaries takes all it can find.
pub const COMMANDS: &[&str] = &[
    "sh", "ls", "cat", "echo", "printf", "test", "true", "false", "ps", "top", "free", "mount", "umount",
    "hostname", "uname", "id", "ping", "ip", "mkdir", "rmdir", "rm", "touch", "cp", "mv", "ln", "stat", "df",
    "du", "env", "sleep", "kill", "grep", "sed", "awk", "tr", "cut", "seq", "tty", "stty", "wc", "head",
    "tail", "sort", "uniq", "tee", "xargs", "find", "chmod", "chown", "basename", "dirname", "date", "expr",
    "nproc", "timeout", "which", "readlink", "dd", "od", "md5sum", "yes", "chroot", "unshare", "nsenter",
    "setpriv", "ipcs", "ipcmk", "ipcrm", "nc",
];
// ANCHOR_END: commands

/// What to build a rootfs from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// What `WORKSHOP_ROOTFS_FROM` says (`busybox` or `host`); when it says nothing, a static
    /// busybox when the host has one, else the host's binaries.
    Auto,
    Busybox,
    Host,
}

/// The variable that picks the flavour of the rootfs the builder makes when asked for none in
/// particular (`scripts/test --host-rootfs` sets it to run the suite on the host's binaries).
pub const FROM_VARIABLE: &str = "WORKSHOP_ROOTFS_FROM";

impl Source {
    /// `Auto` as [`FROM_VARIABLE`] has it; any other source as it is.
    pub fn resolve(self) -> Result<Source> {
        if self != Source::Auto {
            return Ok(self);
        }
        match std::env::var(FROM_VARIABLE).as_deref() {
            Err(_) | Ok("" | "auto") => Ok(Source::Auto),
            Ok("busybox") => Ok(Source::Busybox),
            Ok("host") => Ok(Source::Host),
            Ok(other) => Err(Error::new(format!("{FROM_VARIABLE}={other}: say auto, busybox or host"))),
        }
    }
}

/// How a rootfs was built, as its `/etc/workshop-rootfs` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct About {
    pub builder: u32,
    /// `busybox` or `host`.
    pub flavour: String,
    /// The commands of [`COMMANDS`] it lacks because the host had no such program.
    pub missing: Vec<String>,
}

impl About {
    /// Reads `/etc/workshop-rootfs` of the rootfs in `dir`; None when there is none (a rootfs
    /// from before the builder recorded itself, or not the workshop's).
    pub fn read(dir: &Path) -> Option<About> {
        let text = fs::read_to_string(dir.join(ABOUT)).ok()?;
        let field = |key: &str| {
            text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('=')).map(str::trim)
        };
        Some(About {
            builder: field("builder")?.parse().ok()?,
            flavour: field("flavour")?.to_owned(),
            missing: field("missing").unwrap_or("").split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// Why a rootfs built like this is out of date on this host, if it is: the current builder
    /// would build a different one.
    pub fn stale(&self) -> Option<String> {
        if self.builder != BUILDER {
            return Some(format!(
                "it was built by version {} of the builder, this is {BUILDER}",
                self.builder
            ));
        }
        let wanted = Source::Auto.resolve().ok();
        match (wanted, self.flavour.as_str()) {
            (Some(Source::Host), "busybox") => {
                return Some(format!("{FROM_VARIABLE}=host asks for the host's binaries"));
            }
            (Some(Source::Busybox), "host") => {
                return Some(format!("{FROM_VARIABLE}=busybox asks for busybox"));
            }
            _ => {}
        }
        if self.flavour == "host" && wanted == Some(Source::Auto) && static_busybox().is_some() {
            return Some(
                "it was built from the host's binaries, and a static busybox is installed now".into(),
            );
        }
        let found: Vec<&str> =
            self.missing.iter().map(String::as_str).filter(|c| host_program(c).is_some()).collect();
        if !found.is_empty() {
            return Some(format!("it was built without {}, which the host has now", found.join(", ")));
        }
        None
    }
}

/// Why the rootfs in `dir` is out of date, if it is (see [`About::stale`]).
pub fn stale(dir: &Path) -> Option<String> {
    match About::read(dir) {
        None => Some(format!("it does not say how it was built ({ABOUT}): an older builder made it")),
        Some(about) => about.stale(),
    }
}

/// The default rootfs: built first if missing, rebuilt if an older builder or a poorer host
/// made it.
pub fn default_rootfs() -> Result<Rootfs> {
    let dir = Path::new(DEFAULT_DIR);
    refresh(dir, stale, |building| build(building, Source::Auto))?;
    hold(dir)?;
    Rootfs::open(dir)
}

/// Makes sure `dest` holds a rootfs, building it from `source` when it does not exist yet.
/// Returns whether this call built it.
pub fn ensure(dest: &Path, source: Source) -> Result<bool> {
    build_once(dest, |building| build(building, source))
}

/// Makes sure the directory `dest` exists, calling `build` to make it when it does not: under a
/// lock (an `flock` of the directory it is made in), in `.NAME.building`, renamed to `dest` once
/// complete, so that runtimes starting at once build it once and none sees it half-built. A
/// build left half-done by a killed builder is removed by the next one. Returns whether this
/// call built it.
pub fn build_once(dest: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<bool> {
    refresh(dest, |_| None, build)
}

/// [`build_once`], and also rebuilds `dest` when `stale` says why it is out of date: the new
/// build is made beside it and swapped in with one rename, and the old one is removed once no
/// runtime uses it (see [`hold`]).
pub fn refresh(
    dest: &Path,
    stale: impl Fn(&Path) -> Option<String>,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<bool> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .ok_or_else(|| Error::new(format!("{} is not a directory name", dest.display())))?
        .to_string_lossy()
        .into_owned();
    if dest.is_dir() && stale(dest).is_none() {
        remove_unused(parent, &name);
        return Ok(false);
    }
    fs::create_dir_all(parent).context(format!("creating {}", parent.display()))?;
    let _lock = lock_dir(parent)?;
    remove_unused(parent, &name);
    let why = if dest.is_dir() {
        match stale(dest) {
            None => return Ok(false), // another runtime built it while we waited
            why => why,
        }
    } else {
        None
    };
    let building = parent.join(format!(".{name}.building"));
    if building.exists() {
        fs::remove_dir_all(&building).context(format!("removing a half-built {}", building.display()))?;
    }
    if let Some(why) = &why {
        eprintln!("rebuilding {}: {why}", dest.display());
    }
    let built = build(&building).and_then(|()| match why {
        None => fs::rename(&building, dest).context(format!("renaming it to {}", dest.display())),
        Some(_) => {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            fs::rename(dest, &old)
                .and_then(|()| fs::rename(&building, dest))
                .context(format!("putting the new build in place of {}", dest.display()))?;
            remove_unused(parent, &name);
            Ok(())
        }
    });
    if built.is_err() {
        let _ = fs::remove_dir_all(&building);
    }
    built.map(|()| true)
}

/// Takes an exclusive `flock` of the directory `dir` itself, leaving no lock file behind.
fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let file = File::open(dir).context(format!("opening {}", dir.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::new(format!("locking {}: {errno}", dir.display())))
}

/// Marks the build in `dir` in use by this runtime until it exits (a shared `flock` on it, on an
/// fd closed at exec), so that a rebuild does not remove it from under a running container.
pub fn hold(dir: &Path) -> Result<()> {
    let file = File::open(dir).context(format!("opening {}", dir.display()))?;
    let held = Flock::lock(file, FlockArg::LockShared)
        .map_err(|(_, errno)| Error::new(format!("locking {}: {errno}", dir.display())))?;
    std::mem::forget(held); // the lock lasts as long as the process
    Ok(())
}

/// Removes the replaced builds `.NAME.old-*` in `parent` that no runtime holds any more.
fn remove_unused(parent: &Path, name: &str) {
    let prefix = format!(".{name}.old-");
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let unused = File::open(entry.path())
            .ok()
            .and_then(|file| Flock::lock(file, FlockArg::LockExclusiveNonblock).ok());
        if unused.is_some() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Builds a rootfs in `dest`, which must not exist, and says on stderr which of [`COMMANDS`]
/// it lacks because the host has no such program.
pub fn build(dest: &Path, source: Source) -> Result<()> {
    let source = source.resolve()?;
    skeleton(dest)?;
    let (flavour, from, missing) = match (source, static_busybox()) {
        (Source::Auto | Source::Busybox, Some(busybox)) => {
            let missing = from_busybox(dest, &busybox)?;
            ("busybox", format!("busybox ({})", busybox.display()), missing)
        }
        (Source::Busybox, None) => {
            return Err(Error::new(
                "no static busybox on this host (Debian/Ubuntu: apt install busybox-static)",
            ));
        }
        (Source::Auto | Source::Host, _) => {
            let missing = from_host(dest)?;
            ("host", "the host's binaries and their libraries".to_owned(), missing)
        }
    };
    if !missing.is_empty() {
        eprintln!(
            "rootfs: building from {from}, without {} (the host has no such program; scripts/test \
             installs what the workshop needs, busybox-static among it)",
            missing.join(", ")
        );
    }
    let about = format!(
        "# A rootfs built by the container workshop from {from}.\nbuilder={BUILDER}\nflavour={flavour}\n\
         missing={}\n",
        missing.join(" ")
    );
    fs::write(dest.join(ABOUT), about).context(format!("writing /{ABOUT}"))
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

fn from_busybox(dest: &Path, busybox: &Path) -> Result<Vec<String>> {
    copy_into(dest, busybox, Path::new("/bin/busybox"))?;
    let list = Command::new(busybox).arg("--list-full").output().context("busybox --list-full")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|line| !line.is_empty()) {
        let link = dest.join(applet);
        if fs::symlink_metadata(&link).is_err() {
            symlink("/bin/busybox", &link).context(format!("linking /{applet}"))?;
        }
    }
    let mut missing = Vec::new();
    for program in COMMANDS {
        let in_rootfs = ["bin", "sbin", "usr/bin", "usr/sbin"]
            .iter()
            .any(|dir| fs::symlink_metadata(dest.join(dir).join(program)).is_ok());
        if !in_rootfs && !copy_host_program(dest, program)? {
            missing.push(program.to_string());
        }
    }
    Ok(missing)
}

fn from_host(dest: &Path) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for program in COMMANDS {
        if !copy_host_program(dest, program)? {
            if *program == "sh" {
                return Err(Error::new("the host has no sh to copy into the rootfs"));
            }
            missing.push(program.to_string());
        }
    }
    Ok(missing)
}

/// Where the host's `program` is on PATH, if it has one.
fn host_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// Copies the host's `program` (found on PATH) to /bin in `dest`, with the loader and the
/// libraries it needs. Returns false when the host has no such program.
fn copy_host_program(dest: &Path, program: &str) -> Result<bool> {
    let Some(found) = host_program(program) else {
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
