//! What a running container tells the host about itself, so that `exec` and `ps` can find it.
//!
//! Until step 10 a container was known only to the runtime that started it. To enter one from
//! another terminal, something must say *which* process is its first one, and that must be
//! safe to believe: a pid is only a number, and once a container has ended its pid can be
//! given to any new process of the host. So a container publishes, in its state directory
//! (`/run/workshop/step11-exec-PID/container`, one `key=value` a line, only root may write
//! it):
//!
//! - its **name** (`--name`, unique among running containers) and its runtime's pid;
//! - its first process's host pid **and that process's start time** (field 22 of
//!   `/proc/PID/stat`, in clock ticks since boot): a recycled pid has another start time, so
//!   the pair names one process for ever ([`Identity`]);
//! - its uid and gid maps, its cgroup's directories, its image and writable layer, its command
//!   and when it started (for `ps`).
//!
//! The file goes with the state directory, on every path out of the runtime; a runtime killed
//! with SIGKILL leaves it, and then the identity no longer matches a live process, and the
//! next runtime removes the directory (step 06's `reclaim_stale`).
//!
//! A name is taken in two moves under one lock (`/run/workshop/names.lock`): look at every
//! published name of a live container, then, if the name is free, create the state directory
//! and write the name into it. Two runtimes started at once with the same name cannot both
//! see it free.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{Pid, pipe2};
use step01_clone::error::{Context, Error, Result};
use step06_rootfs::state::{self, STATE_ROOT, StateDir};
use step08_userns::userns::IdMap;

/// The file, in a container's state directory, that holds what it publishes.
pub const PUBLISHED_FILE: &str = "container";
/// The lock under which names are taken.
pub const NAMES_LOCK: &str = "/run/workshop/names.lock";
/// The longest name accepted.
pub const MAX_NAME: usize = 64;

// ANCHOR: name
/// A container's name: 1 to 64 letters, digits, `_`, `.` or `-`, starting with a letter or a
/// digit (Docker's rule). It is safe in a path and on a command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// The name of a container started without `--name`: `container-<runtime pid>`, printed in
    /// the runtime's banner.
    pub fn generate() -> Name {
        Name(format!("container-{}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let usage = "a name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or a digit";
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let starts_well = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if name.len() > MAX_NAME || !starts_well || !name.chars().all(allowed) {
            return Err(format!("{name:?} is not a container name: {usage}"));
        }
        Ok(Name(name.to_owned()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
// ANCHOR_END: name

// ANCHOR: identity
/// One process, for ever: its pid and the time it started. The kernel may give a pid to a new
/// process once the old one has been reaped; it cannot give it the old one's start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub pid: Pid,
    /// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
    pub start_time: u64,
}

impl Identity {
    /// The identity of the process that has `pid` now.
    pub fn of(pid: Pid) -> Result<Identity> {
        let (start_time, _) = stat(pid).ok_or_else(|| Error::new(format!("no process {pid}")))?;
        Ok(Identity { pid, start_time })
    }

    /// Whether the process still runs: its pid is in use, by a process that started when it
    /// did, and is not a zombie (ended, waiting for its parent to reap it).
    pub fn is_running(&self) -> bool {
        stat(self.pid).is_some_and(|(start, state)| start == self.start_time && state != 'Z' && state != 'X')
    }
}

/// The start time and state of `pid`, from `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself: the fields after it are counted from
/// the last `)`.
fn stat(pid: Pid) -> Option<(u64, char)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after the name: state is field 3 (index 0 here), starttime is field 22 (index 19).
    let state = fields.first()?.chars().next()?;
    Some((fields.get(19)?.parse().ok()?, state))
}
// ANCHOR_END: identity

// ANCHOR: published
/// What a running container publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub name: Name,
    /// The runtime that started the container.
    pub runtime: Identity,
    /// The container's first process, as the host sees it; `None` while it is starting.
    pub init: Option<Identity>,
    /// When it started, in seconds since 1970.
    pub started: u64,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    /// Its cgroup: one directory on cgroup v2, one per hierarchy on v1.
    pub cgroup: Vec<PathBuf>,
    /// The image it runs, and its writable layer on the host.
    pub image: PathBuf,
    pub upper: PathBuf,
    /// The command it runs, for `ps`.
    pub command: String,
}
// ANCHOR_END: published

impl Published {
    /// Nothing but the name, as the runtime takes it.
    fn claim(name: &Name) -> Result<Published> {
        Ok(Published {
            name: name.clone(),
            runtime: Identity::of(nix::unistd::getpid())?,
            init: None,
            started: now(),
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            cgroup: Vec::new(),
            image: PathBuf::new(),
            upper: PathBuf::new(),
            command: String::new(),
        })
    }

    fn to_text(&self) -> String {
        let maps = |map: &[IdMap]| map.iter().map(IdMap::to_string).collect::<Vec<_>>().join(",");
        let mut text = format!(
            "name={}\nruntime={} {}\nstarted={}\nuid_map={}\ngid_map={}\nimage={}\nupper={}\ncommand={}\n",
            self.name,
            self.runtime.pid,
            self.runtime.start_time,
            self.started,
            maps(&self.uid_map),
            maps(&self.gid_map),
            self.image.display(),
            self.upper.display(),
            self.command.replace('\n', " "),
        );
        if let Some(init) = self.init {
            text.push_str(&format!("init={} {}\n", init.pid, init.start_time));
        }
        for dir in &self.cgroup {
            text.push_str(&format!("cgroup={}\n", dir.display()));
        }
        text
    }

    fn parse(text: &str) -> Option<Published> {
        let identity = |value: &str| {
            let (pid, start) = value.split_once(' ')?;
            Some(Identity { pid: Pid::from_raw(pid.parse().ok()?), start_time: start.parse().ok()? })
        };
        let maps = |value: &str| -> Option<Vec<IdMap>> {
            value.split(',').filter(|l| !l.is_empty()).map(|l| l.parse().ok()).collect()
        };
        let (mut name, mut runtime, mut init, mut started) = (None, None, None, 0);
        let (mut uid_map, mut gid_map, mut cgroup) = (Vec::new(), Vec::new(), Vec::new());
        let (mut image, mut upper, mut command) = (PathBuf::new(), PathBuf::new(), String::new());
        for line in text.lines() {
            let (key, value) = line.split_once('=')?;
            match key {
                "name" => name = value.parse().ok(),
                "runtime" => runtime = identity(value),
                "init" => init = identity(value),
                "started" => started = value.parse().ok()?,
                "uid_map" => uid_map = maps(value)?,
                "gid_map" => gid_map = maps(value)?,
                "cgroup" => cgroup.push(PathBuf::from(value)),
                "image" => image = PathBuf::from(value),
                "upper" => upper = PathBuf::from(value),
                "command" => command = value.to_owned(),
                _ => {}
            }
        }
        Some(Published {
            name: name?,
            runtime: runtime?,
            init,
            started,
            uid_map,
            gid_map,
            cgroup,
            image,
            upper,
            command,
        })
    }

    /// Whether the container is running: its runtime is, and so is its first process once it
    /// has published one.
    pub fn is_running(&self) -> bool {
        self.runtime.is_running() && self.init.is_none_or(|init| init.is_running())
    }
}

// ANCHOR: claim
/// In the runtime, before anything else is made: takes `name` and creates the container's
/// state directory with the name in it. Refused, in one line and with nothing made, when a
/// running container has the name.
pub fn claim(name: &Name) -> Result<StateDir> {
    fs::create_dir_all(STATE_ROOT).context(format!("creating {STATE_ROOT}"))?;
    // ANCHOR: exercise-claim => // TODO: take NAMES_LOCK (state::lock), and refuse the name if a running container (published(), is_running) has it
    let _lock = state::lock(Path::new(NAMES_LOCK))?;
    if let Some(other) = published().into_iter().find(|p| &p.name == name && p.is_running()) {
        return Err(Error::new(format!(
            "the name {name} is taken by a running container (runtime pid {}): pick another --name, \
             or enter that one with `exec {name}`",
            other.runtime.pid
        )));
    }
    // ANCHOR_END: exercise-claim
    let state = StateDir::create()?;
    write(&state, &Published::claim(name)?)?;
    Ok(state)
}
// ANCHOR_END: claim

// ANCHOR: publish
/// What the runtime tells about its container when it publishes it.
#[derive(Clone, Copy, Debug)]
pub struct Details<'a> {
    pub uid_map: &'a [IdMap],
    pub gid_map: &'a [IdMap],
    pub cgroup: &'a [PathBuf],
    pub image: &'a Path,
    pub upper: &'a Path,
    pub command: &'a [OsString],
}

/// In the runtime, once the container's first process `init` is ready (its root is its own,
/// it is about to exec the command): publishes it. The runtime has not reaped that process,
/// so its pid cannot have been given to another yet: the identity read here is the
/// container's.
pub fn publish(state: &StateDir, init: Pid, details: Details<'_>) -> Result<()> {
    let claimed = read(state.path()).ok_or_else(|| Error::new("the container's name was not claimed"))?;
    let published = Published {
        init: Some(Identity::of(init)?),
        uid_map: details.uid_map.to_vec(),
        gid_map: details.gid_map.to_vec(),
        cgroup: details.cgroup.to_vec(),
        image: details.image.to_owned(),
        upper: details.upper.to_owned(),
        command: details.command.iter().map(|arg| arg.to_string_lossy()).collect::<Vec<_>>().join(" "),
        ..claimed
    };
    write(state, &published)
}
// ANCHOR_END: publish

/// Writes the file whole, then renames it into place: a reader sees the old one or the new
/// one, never half of one.
fn write(state: &StateDir, published: &Published) -> Result<()> {
    let file = state.path().join(PUBLISHED_FILE);
    let temporary = state.path().join(format!(".{PUBLISHED_FILE}.new"));
    fs::write(&temporary, published.to_text()).context(format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, &file).context(format!("writing {}", file.display()))
}

fn read(dir: &Path) -> Option<Published> {
    Published::parse(&fs::read_to_string(dir.join(PUBLISHED_FILE)).ok()?)
}

/// Everything published under `/run/workshop`, running or not (by any step from 11 on).
pub fn published() -> Vec<Published> {
    let Ok(entries) = fs::read_dir(STATE_ROOT) else { return Vec::new() };
    let mut all: Vec<Published> = entries.flatten().filter_map(|entry| read(&entry.path())).collect();
    all.sort_by(|a, b| (a.started, a.name.as_str()).cmp(&(b.started, b.name.as_str())));
    all
}

// ANCHOR: find
/// The running container called `name`, for `exec`: one line saying so when there is none,
/// or when it has ended. One that is still starting (it published its name, not yet its first
/// process) is waited for, a little.
pub fn find(name: &Name) -> Result<Published> {
    for _ in 0..200 {
        let mine: Vec<Published> = published().into_iter().filter(|p| &p.name == name).collect();
        let Some(found) = mine.iter().find(|p| p.is_running()) else {
            return Err(Error::new(if mine.is_empty() {
                format!("no container is named {name} (`ps` lists the running ones)")
            } else {
                format!("the container {name} has ended (`ps` lists the running ones)")
            }));
        };
        if found.init.is_some() {
            return Ok(found.clone());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(Error::new(format!("the container {name} is still starting: try again")))
}
// ANCHOR_END: find

// ANCHOR: ready
/// The container's word to its runtime that it is ready to be entered: its root is its own
/// (after pivot_root), and it is about to exec the command. Before that, its mount namespace
/// still holds the host's whole tree: an exec then would see the host's `/`. So the runtime
/// publishes the container only once it has heard this, a byte on a pipe.
#[derive(Debug)]
pub struct Ready {
    receiver: OwnedFd,
    sender: Option<OwnedFd>,
}

impl Ready {
    /// Before clone.
    pub fn new() -> Result<Ready> {
        let (receiver, sender) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
        Ok(Ready { receiver, sender: Some(sender) })
    }

    /// In the container, last thing before the exec.
    pub fn signal(&self) -> Result<()> {
        let sender = self.sender.as_ref().expect("only wait() takes the sender");
        nix::unistd::write(sender, b"r").map(drop).context("telling the runtime the container is ready")
    }

    /// In the runtime, once the container was let go: true when it is ready, false when it
    /// ended before (every copy of the sender is then closed, and the pipe is at its end).
    pub fn wait(mut self) -> Result<bool> {
        drop(self.sender.take()); // ours: only the container's copy may remain
        let mut byte = [0u8];
        loop {
            match nix::unistd::read(&self.receiver, &mut byte) {
                Err(Errno::EINTR) => continue,
                other => return Ok(other.context("waiting for the container")? == 1),
            }
        }
    }
}
// ANCHOR_END: ready

// ANCHOR: ps
/// `ps`: the running containers, their first process's host pid, when they started, their
/// command and how many processes are in their PID namespace.
pub fn ps() -> Result<u8> {
    println!("{:<24} {:>8}  {:<19}  {:>9}  COMMAND", "NAME", "PID", "STARTED (UTC)", "PROCESSES");
    for container in published().into_iter().filter(Published::is_running) {
        let Some(init) = container.init else { continue }; // still starting
        println!(
            "{:<24} {:>8}  {:<19}  {:>9}  {}",
            container.name.as_str(),
            init.pid.as_raw(),
            utc(container.started),
            processes_in_pid_namespace_of(init.pid),
            container.command
        );
    }
    Ok(0)
}

// ANCHOR: processes
/// How many processes share the PID namespace of `pid` (that namespace's inode, which
/// `/proc/N/ns/pid` shows for every process N of the host).
pub fn processes_in_pid_namespace_of(pid: Pid) -> usize {
    // ANCHOR: exercise-processes_in_pid_namespace_of count the /proc/N whose ns/pid has the (dev, inode) of /proc/PID/ns/pid
    let id = |path: String| fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let Some(theirs) = id(format!("/proc/{pid}/ns/pid")) else { return 0 };
    let Ok(entries) = fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|entry| id(format!("{}/ns/pid", entry.path().display())) == Some(theirs))
        .count()
    // ANCHOR_END: exercise-processes_in_pid_namespace_of
}
// ANCHOR_END: processes
// ANCHOR_END: ps

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `seconds` since 1970 as `YYYY-MM-DD HH:MM:SS` (UTC), for `ps`.
pub fn utc(seconds: u64) -> String {
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["web", "a", "web-1.2_x", &"x".repeat(64)] {
            assert!(good.parse::<Name>().is_ok(), "{good:?} was refused");
        }
        for bad in ["", "-web", ".web", "a/b", "..", "a b", "wéb", &"x".repeat(65), "a\nb"] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn published_state_reads_back() {
        let published = Published {
            name: "web".parse().unwrap(),
            runtime: Identity { pid: Pid::from_raw(10), start_time: 20 },
            init: Some(Identity { pid: Pid::from_raw(11), start_time: 21 }),
            started: 1_700_000_000,
            uid_map: vec!["0:100000:65536".parse().unwrap()],
            gid_map: vec!["0:100000:1".parse().unwrap(), "1:200000:10".parse().unwrap()],
            cgroup: vec![PathBuf::from("/sys/fs/cgroup/memory/workshop/step11-exec-10")],
            image: PathBuf::from("/var/lib/workshop/images/default"),
            upper: PathBuf::from("/run/workshop/step11-exec-10/overlay/upper"),
            command: "/bin/sh -c echo hi".into(),
        };
        assert_eq!(Published::parse(&published.to_text()), Some(published));
    }

    #[test]
    fn an_identity_is_a_pid_and_its_start_time() {
        let me = Identity::of(nix::unistd::getpid()).unwrap();
        assert!(me.is_running());
        // The same pid with another start time: a recycled pid, not this process.
        let recycled = Identity { start_time: me.start_time + 1, ..me };
        assert!(!recycled.is_running());
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_180_645), "2026-12-02 03:04:05");
    }
}
