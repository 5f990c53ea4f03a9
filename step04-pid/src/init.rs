//! PID 1's duties, for commands that are not a shell: `--init`.
//!
//! The first process of a PID namespace is that namespace's *init*, and the kernel treats it
//! apart from every other process:
//!
//! - **Signals.** It gets no default actions: SIGTERM, SIGINT and SIGHUP that it has no handler
//!   for are dropped, whether they come from inside the namespace or from the runtime passing
//!   on a `kill`. Only SIGKILL (and SIGSTOP) from an ancestor namespace always work.
//! - **Orphans.** A process whose parent exits is re-parented to init, which must `wait` for it,
//!   or it stays a zombie in the process table.
//! - **The end.** When init exits, the kernel kills every other process in the namespace.
//!
//! An interactive shell does well enough at both duties. Most programs do neither: `sleep`,
//! a web server or a build tool as PID 1 ignores `kill` and leaves zombies. With `--init`, the
//! container's first process stays a small init of ours (as `docker run --init` puts `tini`
//! there): it forks the command, passes on the signals sent to it, reaps every child, and exits
//! with the command's status when the command ends.

use std::convert::Infallible;
use std::ffi::OsString;
use std::mem::MaybeUninit;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use step01_clone::error::{Context, Result, report};
use step01_clone::exec;

/// The signals init passes on to the command.
const PASSED_ON: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

// ANCHOR: init
/// Runs `argv` as the child of a minimal init, which this process becomes. Returns only if the
/// command could not be started.
pub fn exec_with_init(argv: &[OsString]) -> Result<Infallible> {
    // ANCHOR: exercise-init block the signals init waits for, fork the command, then loop: reap on SIGCHLD, pass the others on
    let mut waited = SigSet::empty();
    for signal in PASSED_ON.into_iter().chain([Signal::SIGCHLD]) {
        waited.add(signal);
    }
    // Blocked signals are queued even for init, and sigwaitinfo() below takes them one by one.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None).context("sigprocmask")?;
    // SAFETY: the container's first process is single-threaded.
    let command = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&waited), None);
            let error = exec::exec(argv).unwrap_err();
            report(&error);
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(error.code().into()) }
        }
        ForkResult::Parent { child } => child,
    };
    loop {
        let (signal, from_terminal) = wait_for_signal(&waited)?;
        if signal == Signal::SIGCHLD {
            if let Some(code) = reap_children(command) {
                std::process::exit(code);
            }
        } else if !from_terminal {
            // Ctrl-C and friends already reached the command: it is in our process group.
            let _ = kill(command, signal);
        }
    }
    // ANCHOR_END: exercise-init
}
// ANCHOR_END: init

/// Waits for one of `set`; also says whether the terminal sent it (the kernel, rather than
/// a process calling kill).
fn wait_for_signal(set: &SigSet) -> Result<(Signal, bool)> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    loop {
        // SAFETY: `info` is written by the kernel before it is read.
        let number = unsafe { libc::sigwaitinfo(set.as_ref(), info.as_mut_ptr()) };
        if number == -1 {
            match Errno::last() {
                Errno::EINTR => continue,
                errno => return Err(errno).context("sigwaitinfo"),
            }
        }
        // SAFETY: sigwaitinfo succeeded, so it filled `info`.
        let from_terminal = unsafe { info.assume_init() }.si_code == libc::SI_KERNEL;
        return Ok((Signal::try_from(number).context("sigwaitinfo")?, from_terminal));
    }
}

/// Reaps every child that has ended. Returns the exit code for init when `command` is one of
/// them: its own, or 128 + N when signal N killed it.
fn reap_children(command: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => result = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == command => result = Some(128 + signal as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {} // an orphan, reaped
        }
    }
}
