//! The runtime's own files for one container, in `/run/workshop/<step>-<pid>`: here the
//! `hostname`, `hosts` and `resolv.conf` that are bind-mounted into it. The directory goes when
//! the runtime is done with it, on every path ([`Drop`]); a runtime killed by SIGKILL cannot
//! clean up, so each new one first removes the directories of runtimes that no longer run.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use step01_clone::error::{Context, Error, Result, program_name};
use step02_uts::uts::Hostname;

/// Where the workshop keeps per-container state.
pub const STATE_ROOT: &str = "/run/workshop";

/// A container's state directory, removed when dropped.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Creates `/run/workshop/<program>-<pid>`: the runtime's pid makes it unique while it runs.
    pub fn create() -> Result<StateDir> {
        reclaim_stale();
        let path = Path::new(STATE_ROOT).join(format!("{}-{}", program_name(), std::process::id()));
        fs::create_dir_all(&path).context(format!("creating {}", path.display()))?;
        Ok(StateDir { path })
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    // ANCHOR: etc_files
    /// Writes the container's `hostname`, `hosts` and `resolv.conf` (the host's DNS settings).
    pub fn write_etc_files(&self, hostname: &Hostname) -> Result<()> {
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        );
        let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        for (name, content) in
            [("hostname", format!("{hostname}\n")), ("hosts", hosts), ("resolv.conf", resolv)]
        {
            let file = self.path.join(name);
            fs::write(&file, content).context(format!("writing {}", file.display()))?;
        }
        Ok(())
    }
    // ANCHOR_END: etc_files
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes the state directories whose runtime (the pid after the last `-`) is gone; returns
/// them.
pub fn reclaim_stale() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(STATE_ROOT) else { return removed };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid =
            name.to_str().and_then(|name| name.rsplit('-').next()).and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !runtime_alive(pid)
            && fs::remove_dir_all(entry.path()).is_ok()
        {
            removed.push(entry.path());
        }
    }
    removed
}

/// Whether the runtime with this pid still runs. What the workshop leaves on the host per
/// container (state directories, cgroups, address leases) carries its runtime's pid, and is stale
/// once that pid runs nothing.
pub fn runtime_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Takes an exclusive `flock` on the file `path` (made when missing), for runtimes that must not
/// do something at the same time: build the default rootfs, hand out addresses. The lock goes
/// with the returned value, or with the process, however it ends.
pub fn lock(path: &Path) -> Result<Flock<File>> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .context(format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::new(format!("locking {}: {errno}", path.display())))
}
