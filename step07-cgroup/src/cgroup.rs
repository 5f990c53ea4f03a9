//! Step 07's new idea: a control group, so the kernel limits what the container may use.
//!
//! Namespaces decide what a process can *see*; a cgroup decides how much it can *use*. A cgroup
//! is a directory in a special filesystem: `mkdir` makes one, writing a pid into its
//! `cgroup.procs` moves that process (and its future children) into it (`0` means the writer), its files set limits
//! and report usage, and `rmdir` removes it once no process is left.
//!
//! Two versions of that filesystem are in use, with different file names:
//!
//! | | cgroup v1 (one hierarchy per controller) | cgroup v2 (one unified hierarchy) |
//! |---|---|---|
//! | where | `/sys/fs/cgroup/cpu/…`, `/sys/fs/cgroup/memory/…`, … | `/sys/fs/cgroup/…` |
//! | CPU quota | `cpu.cfs_quota_us` / `cpu.cfs_period_us` | `cpu.max` (`quota period`) |
//! | memory | `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` | `memory.max`, `memory.swap.max` |
//! | processes | `pids.max` | `pids.max` |
//! | controllers | there when their hierarchy is mounted | enabled in the parent's `cgroup.subtree_control` |
//!
//! A host may also be *hybrid*: v1 controllers plus a cgroup2 mount at `/sys/fs/cgroup/unified`
//! that holds no useful controller. This module uses v2 when `/sys/fs/cgroup` is a cgroup2
//! filesystem and the v1 hierarchies otherwise.
//!
//! The container's cgroup is `workshop/<step>-<runtime pid>` in each hierarchy. It is removed
//! when the [`Cgroup`] is dropped, on every path out of the runtime; a runtime killed with
//! SIGKILL cannot do that, so every new runtime first removes the cgroups of dead ones.

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread::sleep;
use std::time::Duration;

use nix::fcntl::{OFlag, open};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
use nix::unistd::Pid;
use step01_clone::error::{Context, Error, Result, program_name};
use step06_rootfs::state::runtime_alive;

/// Where cgroup filesystems are mounted on every current distribution.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The directory, in each hierarchy, that holds the workshop's containers.
pub const PARENT: &str = "workshop";
/// The CFS period the CPU quota is a share of, in microseconds (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest memory limit accepted: a shell and the runtime's last steps need about this.
pub const MIN_MEMORY: u64 = 6 << 20;

// ANCHOR: limits
/// What the container may use. `None` leaves that resource unlimited.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// `--cpus`: CPU time per period, as a fraction of one CPU (0.2 = 20 ms every 100 ms).
    pub cpus: Option<Cpus>,
    /// `--memory`: bytes of memory, swap included.
    pub memory: Option<Memory>,
    /// `--pids`: how many processes and threads may exist at once.
    pub pids: Option<Pids>,
}
// ANCHOR_END: limits

/// A hard CPU limit in CPUs: `0.5` is half of one CPU, `2` is two whole CPUs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cpus(f64);

impl Cpus {
    /// The CPU time allowed per [`CPU_PERIOD_US`], in microseconds.
    pub fn quota_us(self) -> u64 {
        ((self.0 * CPU_PERIOD_US as f64).round() as u64).max(1000)
    }
}

impl FromStr for Cpus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let online = online_cpus();
        let usage = format!("a number of CPUs above 0 and at most {online} (this machine's), e.g. 0.5");
        match text.trim().parse::<f64>() {
            Ok(cpus) if cpus.is_finite() && cpus >= 0.01 && cpus <= online as f64 => Ok(Cpus(cpus)),
            Ok(cpus) if cpus.is_finite() && cpus > online as f64 => {
                Err(format!("this machine has {online} CPUs; use {usage}"))
            }
            _ => Err(format!("use {usage}")),
        }
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The number of CPUs online.
fn online_cpus() -> u64 {
    // SAFETY: sysconf only reads a value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as u64 } else { 1 }
}

/// A memory size, written like `512k`, `64m` or `1G` (powers of 1024; a bare number is bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory(u64);

impl Memory {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Memory {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "use a whole number with an optional unit k, m or g, e.g. 64m";
        let lower = text.trim().to_ascii_lowercase();
        let lower = lower.strip_suffix('b').unwrap_or(&lower);
        let (digits, shift) = match lower.char_indices().last() {
            Some((at, 'k')) => (&lower[..at], 10),
            Some((at, 'm')) => (&lower[..at], 20),
            Some((at, 'g')) => (&lower[..at], 30),
            _ => (lower, 0),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{text:?} is not a size: {usage}"));
        }
        let bytes = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        if bytes < MIN_MEMORY {
            return Err(format!("{text} is too little for a container: give it at least 6m"));
        }
        Ok(Memory(bytes))
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b if b % (1 << 30) == 0 => write!(f, "{}g", b >> 30),
            b if b % (1 << 20) == 0 => write!(f, "{}m", b >> 20),
            b if b % (1 << 10) == 0 => write!(f, "{}k", b >> 10),
            b => write!(f, "{b}"),
        }
    }
}

/// A limit on the number of processes (and threads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pids(u64);

impl FromStr for Pids {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Pids(n)),
            _ => Err("use a whole number of processes, at least 1 (the command itself)".into()),
        }
    }
}

/// The cgroup filesystems of this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One unified hierarchy at `/sys/fs/cgroup`, with the controllers it offers.
    V2 { root: PathBuf, controllers: Vec<String> },
    /// One hierarchy per controller (or group of controllers), each with its mount point.
    V1 { hierarchies: Vec<(Vec<String>, PathBuf)> },
}

/// The controllers a workshop container is put under in every case, for accounting, whether or
/// not it is limited.
const CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];

impl Layout {
    /// Looks at what is mounted at [`CGROUP_ROOT`].
    pub fn detect() -> Result<Layout> {
        let root = Path::new(CGROUP_ROOT);
        let fs = statfs(root).context(format!("{CGROUP_ROOT} (is sysfs mounted?)"))?;
        if fs.filesystem_type() == CGROUP2_SUPER_MAGIC {
            let list = fs::read_to_string(root.join("cgroup.controllers"))
                .context(format!("reading {CGROUP_ROOT}/cgroup.controllers"))?;
            let controllers = list.split_whitespace().map(str::to_owned).collect();
            return Ok(Layout::V2 { root: root.to_owned(), controllers });
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        let mut hierarchies = Vec::new();
        for line in mountinfo.lines() {
            // … mount-point options [optional fields] - fstype source super-options
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
            if fields.get(dash + 1) != Some(&"cgroup") {
                continue;
            }
            let controllers: Vec<String> = fields
                .get(dash + 3)
                .unwrap_or(&"")
                .split(',')
                .filter(|o| CONTROLLERS.contains(o))
                .map(str::to_owned)
                .collect();
            if !controllers.is_empty() && fields[4].starts_with(CGROUP_ROOT) {
                hierarchies.push((controllers, PathBuf::from(fields[4])));
            }
        }
        Ok(Layout::V1 { hierarchies })
    }

    /// Whether `controller` can be used.
    fn has(&self, controller: &str) -> bool {
        match self {
            Layout::V2 { controllers, .. } => controllers.iter().any(|c| c == controller),
            Layout::V1 { hierarchies } => {
                hierarchies.iter().any(|(cs, _)| cs.iter().any(|c| c == controller))
            }
        }
    }

    /// The directories that hold the workshop's cgroups: one on v2, one per hierarchy on v1.
    fn parents(&self) -> Vec<PathBuf> {
        match self {
            Layout::V2 { root, .. } => vec![root.join(PARENT)],
            Layout::V1 { hierarchies } => hierarchies.iter().map(|(_, mount)| mount.join(PARENT)).collect(),
        }
    }

    /// The error for a limit whose controller this host lacks, naming what to change.
    fn missing(&self, controller: &str, option: &str) -> Error {
        Error::new(match self {
            Layout::V2 { controllers, .. } => format!(
                "{option} needs the cgroup '{controller}' controller, which {CGROUP_ROOT}/cgroup.controllers \
                 does not offer (it has: {}); it is disabled on the kernel command line \
                 (cgroup_disable=) or held by a v1 hierarchy",
                if controllers.is_empty() { "none".to_owned() } else { controllers.join(" ") }
            ),
            Layout::V1 { .. } => format!(
                "{option} needs the cgroup '{controller}' controller, and no cgroup v1 hierarchy under \
                 {CGROUP_ROOT} has it: mount it (mount -t cgroup -o {controller} cgroup \
                 {CGROUP_ROOT}/{controller}) or enable it in the kernel (CONFIG_CGROUP_*)"
            ),
        })
    }
}

/// A container's cgroup (one directory per hierarchy on v1), removed when dropped.
#[derive(Debug)]
pub struct Cgroup {
    layout: Layout,
    dirs: Vec<PathBuf>,
    /// On v2: an `O_PATH` fd of the directory, for clone3(2) to create the container in it.
    fd: Option<OwnedFd>,
}

// ANCHOR: create
impl Cgroup {
    /// Makes the container's cgroup and writes its limits. No process is in it yet.
    pub fn create(limits: &Limits) -> Result<Cgroup> {
        // ANCHOR: exercise-create Layout::detect, check the controllers, make a directory named program-pid under each parent, then set_limits
        let layout = Layout::detect()?;
        for (wanted, controller, option) in [
            (limits.cpus.is_some(), "cpu", "--cpus"),
            (limits.memory.is_some(), "memory", "--memory"),
            (limits.pids.is_some(), "pids", "--pids"),
        ] {
            if wanted && !layout.has(controller) {
                return Err(layout.missing(controller, option));
            }
        }
        let _ = reclaim_stale(&layout);
        // v2 offers a controller to a cgroup's children only when the parent enables it.
        let enable: Vec<String> = match &layout {
            Layout::V2 { controllers, .. } => ["cpu", "memory", "pids"]
                .into_iter()
                .filter(|c| controllers.iter().any(|have| have == c))
                .map(|c| format!("+{c}"))
                .collect(),
            Layout::V1 { .. } => Vec::new(),
        };
        if let Layout::V2 { root, .. } = &layout {
            enable_controllers(root, &enable)?;
        }
        let name = format!("{}-{}", program_name(), std::process::id());
        let mut cgroup = Cgroup { dirs: Vec::new(), layout, fd: None };
        for parent in cgroup.layout.parents() {
            let dir = parent.join(&name);
            if dir.exists() {
                // Left by an earlier runtime that had our pid and was killed: it is stale.
                remove(&dir);
            }
            make_in(&parent, &dir)?;
            cgroup.dirs.push(dir);
        }
        if let Layout::V2 { root, .. } = &cgroup.layout {
            // Now that our cgroup is in it, nobody removes `workshop` (see Drop).
            enable_controllers(&root.join(PARENT), &enable)?;
            let dir = &cgroup.dirs[0];
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            cgroup.fd = Some(open(dir, flags, Mode::empty()).context(format!("opening {}", dir.display()))?);
        }
        cgroup.set_limits(limits)?;
        Ok(cgroup)
        // ANCHOR_END: exercise-create
    }
    // ANCHOR_END: create

    // ANCHOR: set_limits
    fn set_limits(&self, limits: &Limits) -> Result<()> {
        // ANCHOR: exercise-set_limits write cpu.max / memory.max / pids.max on v2, cpu.cfs_quota_us / memory.limit_in_bytes / pids.max on v1
        let v2 = matches!(self.layout, Layout::V2 { .. });
        if let Some(cpus) = limits.cpus {
            if v2 {
                self.write("cpu.max", &format!("{} {CPU_PERIOD_US}", cpus.quota_us()))?;
            } else {
                self.write("cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                self.write("cpu.cfs_quota_us", &cpus.quota_us().to_string())?;
            }
        }
        if let Some(memory) = limits.memory {
            let bytes = memory.bytes().to_string();
            // With swap, a memory limit only moves the container's pages to swap: limit swap too.
            if v2 {
                self.write("memory.max", &bytes)?;
                self.write_if_present("memory.swap.max", "0")?;
            } else {
                self.write("memory.limit_in_bytes", &bytes)?;
                self.write_if_present("memory.memsw.limit_in_bytes", &bytes)?;
            }
        }
        if let Some(pids) = limits.pids {
            self.write("pids.max", &pids.0.to_string())?;
        }
        Ok(())
        // ANCHOR_END: exercise-set_limits
    }
    // ANCHOR_END: set_limits

    // ANCHOR: join
    /// On cgroup v2, the cgroup's directory as an `O_PATH` fd, for
    /// [`spawn_in`](step01_clone::clone::spawn_in) to create the container in it with clone3(2)
    /// (Linux 5.7+); `None` on v1, which has no such thing.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Moves the calling process into the cgroup, unless it was born there. The container's
    /// first process calls it first thing, while it is still host root and before it execs, so
    /// that everything the container runs is in the cgroup. It writes `0`, "myself": on v1 into
    /// the per-thread file `tasks`, which lets the kernel move the calling thread without the
    /// global lock that moving another process takes (and that lock can wait for an RCU grace
    /// period, ~10 ms here: see the benchmark appendix). v2 has no per-thread file for a cgroup
    /// that is not threaded, so there it is `cgroup.procs`, and the lock; which is why, on v2,
    /// clone3 creates the container in its cgroup in the first place ([`Cgroup::fd`]), and then
    /// there is nothing to do here (`/proc/self/cgroup` says so: one line, `0::/workshop/…`).
    pub fn join(&self) -> Result<()> {
        // ANCHOR: exercise-join write 0 (myself) into cgroup.procs (v2) or tasks (v1) of each of the cgroup's directories
        let file = match self.layout {
            Layout::V2 { .. } if self.born_in() => return Ok(()),
            Layout::V2 { .. } => "cgroup.procs",
            Layout::V1 { .. } => "tasks",
        };
        for dir in &self.dirs {
            let path = dir.join(file);
            fs::write(&path, "0").context(format!("joining the cgroup: writing 0 to {}", path.display()))?;
        }
        Ok(())
        // ANCHOR_END: exercise-join
    }
    // ANCHOR_END: join

    /// On v2: whether the calling process is in the cgroup already (clone3 made it there).
    fn born_in(&self) -> bool {
        let Some(name) = self.dirs.first().and_then(|dir| dir.file_name()).and_then(|name| name.to_str())
        else {
            return false;
        };
        let ours = format!("/{PARENT}/{name}");
        fs::read_to_string("/proc/self/cgroup").is_ok_and(|text| {
            text.lines().any(|line| line.strip_prefix("0::").is_some_and(|path| path.ends_with(&ours)))
        })
    }

    /// The cgroup's directories (one on v2, one per hierarchy on v1).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Writes `value` to the file `name` in the directory of the hierarchy that has it.
    fn write(&self, name: &str, value: &str) -> Result<()> {
        let Some(file) = self.dirs.iter().map(|dir| dir.join(name)).find(|file| file.exists()) else {
            return Err(Error::new(format!("no cgroup file {name} in {}", self.describe())));
        };
        fs::write(&file, value).context(format!("writing {value} to {}", file.display()))
    }

    /// Like [`Cgroup::write`] for a file the kernel may lack (swap accounting off, no swap).
    fn write_if_present(&self, name: &str, value: &str) -> Result<()> {
        match self.dirs.iter().map(|dir| dir.join(name)).find(|file| file.exists()) {
            Some(file) => fs::write(&file, value).context(format!("writing {value} to {}", file.display())),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

// ANCHOR: drop
impl Drop for Cgroup {
    /// Kills what is left in the cgroup (the runtime has normally waited for the container
    /// already) and removes it; then the `workshop` parent too, when no other container's cgroup
    /// is in it (`rmdir` fails with `EBUSY` otherwise). A runtime that is making its cgroup in
    /// that parent at the same moment makes the parent again (see `make_in`).
    fn drop(&mut self) {
        for dir in &self.dirs {
            remove(dir);
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
    }
}
// ANCHOR_END: drop

/// Empties the cgroup `dir` and removes it. `rmdir` fails with EBUSY until the last process in
/// it has been reaped, so it is retried for a while.
fn remove(dir: &Path) {
    for _ in 0..200 {
        let kill_file = dir.join("cgroup.kill"); // v2, Linux 5.14+: kills the whole cgroup at once
        if !(kill_file.exists() && fs::write(&kill_file, "1").is_ok()) {
            let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|line| line.trim().parse().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        match fs::remove_dir(dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => sleep(Duration::from_millis(10)),
            _ => return,
        }
    }
}

/// Removes the cgroups of runtimes that no longer run (killed with SIGKILL, so their [`Drop`]
/// never ran). The runtime's pid is the last part of the name; a live runtime's cgroup is left
/// alone, and so is a `workshop` parent with a cgroup still in it. Returns the cgroups removed.
pub fn reclaim_stale(layout: &Layout) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for parent in layout.parents() {
        let Ok(entries) = fs::read_dir(&parent) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.rsplit('-').next()).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && entry.path().is_dir()
                && !runtime_alive(pid)
            {
                remove(&entry.path());
                removed.push(entry.path());
            }
        }
        let _ = fs::remove_dir(&parent); // only when empty: see Drop
    }
    removed
}

/// Makes the cgroup `dir` in `parent`, and `parent` when it is missing. Another runtime whose
/// container just ended removes `parent` when it is empty: if that happens between the two
/// `mkdir`s, the second fails with `ENOENT`, and both are made again.
fn make_in(parent: &Path, dir: &Path) -> Result<()> {
    for _ in 0..100 {
        make_dir(parent)?;
        match fs::create_dir(dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            other => return other.context(format!("creating the cgroup {}", dir.display())),
        }
    }
    Err(Error::new(format!("creating the cgroup {}: its parent keeps disappearing", dir.display())))
}

fn make_dir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            Err(e).context(format!("creating the cgroup {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Enables `controllers` (`+cpu` …) for the children of the v2 cgroup `dir`.
fn enable_controllers(dir: &Path, controllers: &[String]) -> Result<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let file = dir.join("cgroup.subtree_control");
    fs::write(&file, controllers.join(" ")).context(format!(
        "enabling {} in {} (a cgroup that holds processes cannot pass controllers on; is the runtime \
         in a container of its own?)",
        controllers.join(" "),
        file.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!("64m".parse::<Memory>().unwrap().bytes(), 64 << 20);
        assert_eq!("1G".parse::<Memory>().unwrap().bytes(), 1 << 30);
        assert_eq!("8192k".parse::<Memory>().unwrap().bytes(), 8 << 20);
        assert_eq!("32MB".parse::<Memory>().unwrap().bytes(), 32 << 20);
        assert_eq!("104857600".parse::<Memory>().unwrap().bytes(), 100 << 20);
        assert_eq!("64m".parse::<Memory>().unwrap().to_string(), "64m");
        for bad in ["0", "-1", "banana", "1Q", "", "m", "1.5g", "512k", "99999999999999999999g"] {
            assert!(bad.parse::<Memory>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn cpu_quotas() {
        assert_eq!("0.2".parse::<Cpus>().unwrap().quota_us(), 20_000);
        assert_eq!("1".parse::<Cpus>().unwrap().quota_us(), 100_000);
        assert_eq!("0.01".parse::<Cpus>().unwrap().quota_us(), 1_000);
        for bad in ["0", "-1", "nan", "inf", "abc", "1000000"] {
            assert!(bad.parse::<Cpus>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn pids_limits() {
        assert_eq!("10".parse::<Pids>().unwrap(), Pids(10));
        for bad in ["0", "-1", "x"] {
            assert!(bad.parse::<Pids>().is_err(), "{bad:?} was accepted");
        }
    }
}
