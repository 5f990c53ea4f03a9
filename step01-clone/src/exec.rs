//! Replacing the container's first process with the command.

use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::unistd::execv;

use crate::error::{EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, Error, Result};

/// Executes `argv` (searching `PATH` when the command has no `/`), with the environment as it is.
/// Returns only on failure: 127 when the command is not found, 126 when it cannot be executed.
// ANCHOR: exec
pub fn exec(argv: &[OsString]) -> Result<Infallible> {
    let name = argv[0].to_string_lossy().into_owned();
    let args = argv
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::new(format!("{name}: an argument contains a NUL byte")))?;
    close_inherited_fds_on_exec();
    set_prompt();
    let mut cannot_execute = None;
    for candidate in candidates(&argv[0]) {
        let errno = execv(&candidate, &args).unwrap_err();
        // A PATH directory that does not exist, or that we may not search (EACCES too), does
        // not hold the command; something that is there but will not run does.
        let exists = std::fs::metadata(OsStr::from_bytes(candidate.as_bytes())).is_ok();
        if exists || !matches!(errno, Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES) {
            cannot_execute.get_or_insert(errno);
        }
    }
    Err(match cannot_execute {
        None => Error::new(format!("{name}: command not found in the container (check its PATH)"))
            .with_code(EXIT_NOT_FOUND),
        Some(errno @ (Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM)) => {
            Error::new(format!("{name}: cannot execute: {}", errno.desc())).with_code(EXIT_CANNOT_EXEC)
        }
        Some(other) => Error::new(format!("exec {name}: {other}")),
    })
}

/// Where to look for `command`: itself when it holds a `/`, else in each directory of `PATH`.
fn candidates(command: &OsStr) -> Vec<CString> {
    let join = |dir: &[u8]| {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir }; // an empty entry is "."
        CString::new([dir, b"/", command.as_bytes()].concat()).ok()
    };
    if command.as_bytes().contains(&b'/') {
        return CString::new(command.as_bytes()).ok().into_iter().collect();
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    path.as_bytes().split(|&b| b == b':').filter_map(join).collect()
}
// ANCHOR_END: exec

/// A shell in the container shows its hostname in its prompt, `[box]# `, so that a transcript
/// tells the container's lines from the host's `# `. A `PS1` given by the caller is kept.
fn set_prompt() {
    if std::env::var_os("PS1").is_none() {
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        // SAFETY: the container's process has one thread here, about to exec: nothing else
        // reads the environment while it changes.
        unsafe { std::env::set_var("PS1", format!("[{host}]# ")) };
    }
}

/// No file descriptor of the runtime's but stdin, stdout and stderr may reach the command: an
/// open descriptor to a host directory is a way out of the container (runc's CVE-2024-21626).
fn close_inherited_fds_on_exec() {
    // SAFETY: close_range only changes flags on our own descriptors.
    let marked = unsafe { libc::syscall(libc::SYS_close_range, 3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if marked == 0 {
        return;
    }
    // Kernels before 5.11: walk our descriptors.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: sets FD_CLOEXEC on a descriptor number; a stale one just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}
