//! Signals sent to the runtime reach the container.
//!
//! `kill <runtime>`, a closed terminal (SIGHUP) or `docker stop`-style tooling talk to the
//! runtime, not to the container. The runtime passes SIGHUP, SIGINT, SIGQUIT and SIGTERM on to
//! the container's first process and, like `docker stop`, sends SIGKILL when the container has
//! not ended [`GRACE_SECONDS`] later (a shell running as PID 1 ignores SIGTERM: see chapter 4).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// Seconds between passing a signal on and killing the container.
pub const GRACE_SECONDS: u32 = 5;

/// The signals passed on to the container.
pub const FORWARDED: [Signal; 4] = [Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM];

/// The container's pid as the handlers see it; 0 when there is none.
static CONTAINER: AtomicI32 = AtomicI32::new(0);
/// Whether the grace period runs: only the first signal starts it. (Re-arming the alarm with
/// what `alarm` returns would not do: it rounds to whole seconds, so a signal every 100 ms would
/// push the SIGKILL back for ever.)
static GRACE_STARTED: AtomicBool = AtomicBool::new(false);

// ANCHOR: pass_on
extern "C" fn pass_on(signal: libc::c_int) {
    let pid = CONTAINER.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill and alarm are async-signal-safe.
        unsafe {
            libc::kill(pid, signal);
            if !GRACE_STARTED.swap(true, Ordering::SeqCst) {
                libc::alarm(GRACE_SECONDS);
            }
        }
    }
}

extern "C" fn grace_over(_: libc::c_int) {
    let pid = CONTAINER.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
// ANCHOR_END: pass_on

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    set.add(Signal::SIGALRM);
    set
}

/// Before clone: block the signals we pass on and install the handlers. The child inherits the
/// blocked mask, so nothing can reach it half-way between clone and [`reset_in_child`]; a signal
/// sent meanwhile stays pending until [`forward_to`].
pub fn prepare() -> Result<SigSet> {
    let mut previous = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled()), Some(&mut previous)).context("sigprocmask")?;
    for signal in FORWARDED {
        install(signal, SigHandler::Handler(pass_on))?;
    }
    install(Signal::SIGALRM, SigHandler::Handler(grace_over))?;
    Ok(previous)
}

/// In the parent, right after clone: the handlers now know the container; unblock.
pub fn forward_to(container: Pid, previous: &SigSet) -> Result<()> {
    CONTAINER.store(container.as_raw(), Ordering::SeqCst);
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(previous), None).context("sigprocmask")
}

/// In the parent, once the container is gone: stop passing signals on (its pid may be reused).
pub fn stop_forwarding() {
    CONTAINER.store(0, Ordering::SeqCst);
    // SAFETY: cancels a pending alarm; no memory is involved.
    unsafe { libc::alarm(0) };
    GRACE_STARTED.store(false, Ordering::SeqCst);
}

/// In the child, first thing after clone: the runtime's handlers are not the container's. Back
/// to the defaults, SIGPIPE too (Rust ignores it, and an ignored signal stays ignored across
/// exec: `yes | head` would complain of a broken pipe). The signals stay blocked.
pub fn reset_in_child() -> Result<()> {
    for signal in FORWARDED.into_iter().chain([Signal::SIGALRM, Signal::SIGPIPE]) {
        install(signal, SigHandler::SigDfl)?;
    }
    Ok(())
}

/// In the child, when it goes on: unblock what [`prepare`] blocked.
pub fn unblock_in_child(previous: &SigSet) -> Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(previous), None).context("sigprocmask")
}

fn install(signal: Signal, handler: SigHandler) -> Result<()> {
    let action = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: our handlers only read an atomic and call async-signal-safe functions.
    unsafe { sigaction(signal, &action) }.map(drop).context(format!("sigaction {signal}"))
}
