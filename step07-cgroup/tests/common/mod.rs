//! Reading a container's cgroup from the host, as a person would with `cat`: which cgroup a
//! process is in (`/proc/PID/cgroup`), and what the kernel's accounting says about it.

#![allow(dead_code)] // each test file uses part of it

use std::fs;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

/// Whether this host's /sys/fs/cgroup is the unified (v2) hierarchy.
pub fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Where the hierarchy holding `controller` is mounted (on v2: the one hierarchy).
fn mount_point(controller: &str) -> PathBuf {
    if unified() {
        return PathBuf::from("/sys/fs/cgroup");
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let ours = fields[dash + 1] == "cgroup" && fields[dash + 3].split(',').any(|o| o == controller);
            ours.then(|| PathBuf::from(fields[4]))
        })
        .unwrap_or_else(|| panic!("no cgroup v1 hierarchy with {controller} is mounted"))
}

/// The directory of the cgroup that `pid` is in, for `controller`.
pub fn cgroup_dir(pid: Pid, controller: &str) -> PathBuf {
    let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = membership
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = if unified() {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == controller)
            };
            matches.then(|| path.to_owned())
        })
        .unwrap_or_else(|| panic!("{pid} is in no {controller} cgroup:\n{membership}"));
    mount_point(controller).join(path.trim_start_matches('/'))
}

/// Whether `dir` is a container's cgroup made by the workshop (not the host's, not the root).
pub fn is_workshop_cgroup(dir: &Path) -> bool {
    dir.parent().is_some_and(|parent| parent.ends_with("workshop"))
}

/// A `key value` line of a cgroup file such as `cpu.stat`.
pub fn stat(file: &Path, key: &str) -> u64 {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {}:\n{text}", file.display()))
}

/// CPU time used by the processes of `pid`'s cgroup, in nanoseconds.
pub fn cpu_usage_ns(pid: Pid) -> u64 {
    if unified() {
        stat(&cgroup_dir(pid, "cpu").join("cpu.stat"), "usage_usec") * 1000
    } else {
        let file = cgroup_dir(pid, "cpuacct").join("cpuacct.usage");
        fs::read_to_string(&file).unwrap().trim().parse().unwrap()
    }
}

/// How many CFS periods `pid`'s cgroup was throttled in.
pub fn nr_throttled(pid: Pid) -> u64 {
    stat(&cgroup_dir(pid, "cpu").join("cpu.stat"), "nr_throttled")
}

/// What `pid`'s cgroup used of one CPU over `seconds`, as a fraction (1.0 = a whole CPU).
pub fn cpu_share(pid: Pid, seconds: u64) -> f64 {
    let (start, started) = (cpu_usage_ns(pid), std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    let used = cpu_usage_ns(pid) - start;
    used as f64 / started.elapsed().as_nanos() as f64
}
