//! Replacing the container's first process with the command.

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::unistd::execvp;

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
    let errno = execvp(&args[0], &args).unwrap_err();
    Err(match errno {
        Errno::ENOENT | Errno::ENOTDIR => {
            Error::new(format!("{name}: command not found in the container (check its PATH)"))
                .with_code(EXIT_NOT_FOUND)
        }
        Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => {
            Error::new(format!("{name}: cannot execute: {}", errno.desc())).with_code(EXIT_CANNOT_EXEC)
        }
        other => Error::new(format!("exec {name}: {other}")),
    })
}
// ANCHOR_END: exec

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
