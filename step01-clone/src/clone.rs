//! Step 01's new idea: `clone()` makes the container's first process.
//!
//! clone(2) is fork(2) with options: the flags say which namespaces the child gets of its own
//! (none yet: later steps add them one by one), and the child starts in a function of ours, on a
//! stack we give it. The child waits until the parent lets it go (later steps set it up from
//! outside in between), then runs its part of the sequence and execs the command; the parent
//! waits for it and ends with its exit code.

use std::convert::Infallible;
use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, mprotect, munmap};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2, read, write};

use crate::error::{Context, EXIT_RUNTIME, Error, Result, report};
use crate::signals;
use crate::terminal::Terminal;

/// The child's stack: 1 MiB, as in the C programs this workshop follows.
pub const STACK_SIZE: usize = 1024 * 1024;

/// A container's first process, as its parent, the runtime, sees it.
#[derive(Debug)]
pub struct Container {
    pid: Pid,
    go: Option<OwnedFd>,
    terminal: Terminal,
    reaped: bool,
}

// ANCHOR: spawn
/// Starts `child_main` in a new process made by clone(2) with `flags`. The child first waits for
/// [`Container::start`]; then `child_main` runs, and must end by exec'ing the command.
pub fn spawn<F>(flags: CloneFlags, child_main: F) -> Result<Container>
where
    F: FnOnce() -> Result<Infallible>,
{
    spawn_sharing(Terminal::inherit(), flags, child_main)
}

/// [`spawn`], with the caller deciding whether the container shares the user's terminal
/// ([`Terminal::inherit`]) or not ([`Terminal::none`]: step 08 gives it a terminal of its own).
pub fn spawn_sharing<F>(terminal: Terminal, flags: CloneFlags, child_main: F) -> Result<Container>
where
    F: FnOnce() -> Result<Infallible>,
{
    spawn_in(None, terminal, flags, child_main)
}

/// [`spawn_sharing`], with the child created inside the cgroup `cgroup` (an `O_PATH` fd of a
/// cgroup v2 directory: step 07) when the kernel can, by clone3(2) with `CLONE_INTO_CGROUP`.
/// Without one, or when clone3 is refused, it is clone(2), and the child joins its cgroup itself.
pub fn spawn_in<F>(
    cgroup: Option<BorrowedFd<'_>>,
    terminal: Terminal,
    flags: CloneFlags,
    child_main: F,
) -> Result<Container>
where
    F: FnOnce() -> Result<Infallible>,
{
    // ANCHOR: exercise-spawn clone(2) a child on a stack of its own (Stack::new), running child_entry::<F> (given a cgroup, try clone_into_cgroup first); return the Container
    let (go, go_sender) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    let signal_mask = signals::prepare()?;
    let mut child = Child {
        main: Some(child_main),
        go: Some(go),
        go_sender: go_sender.as_raw_fd(),
        terminal: &terminal,
        signal_mask,
    };
    let pid = match cgroup.and_then(|cgroup| clone_into_cgroup(cgroup, flags, &mut child)) {
        Some(pid) => pid,
        None => {
            let stack = Stack::new(STACK_SIZE)?;
            // SAFETY: without CLONE_VM the child runs on a copy of our memory, so `child` and the
            // stack stay valid in it; SIGCHLD makes it a child that waitpid() can wait for.
            let pid = unsafe {
                libc::clone(
                    child_entry::<F>,
                    stack.top(),
                    flags.bits() | libc::SIGCHLD,
                    (&raw mut child).cast::<c_void>(),
                )
            };
            if pid == -1 {
                let errno = Errno::last();
                let _ = signals::unblock_in_child(&child.signal_mask);
                return Err(clone_error(errno, flags));
            }
            pid
        }
    };
    let container = Pid::from_raw(pid);
    let forwarding = signals::forward_to(container, &child.signal_mask);
    drop(child); // closes our copy of the read end of the pipe
    let container = Container { pid: container, go: Some(go_sender), terminal, reaped: false };
    forwarding?;
    Ok(container)
    // ANCHOR_END: exercise-spawn
}
// ANCHOR_END: spawn

// ANCHOR: clone3
/// `CLONE_INTO_CGROUP` (Linux 5.7): clone3 creates the child in the cgroup whose fd is in
/// `clone_args.cgroup`. libc's constant is a `c_int`, too small for this 64-bit flag.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The arguments of clone3(2), as the kernel defines them (`struct clone_args`, version 2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Creates the child inside `cgroup` with clone3(2), so that no process is ever moved into it:
/// moving one takes a lock whose writer may first wait for an RCU grace period (~10 ms, see the
/// benchmark appendix), creating one in place does not. Without a stack, clone3 is like fork:
/// the child goes on from here on a copy of our stack, and runs `child` there. Returns `None`
/// when the kernel refuses (before 5.7: ENOSYS or E2BIG; a seccomp filter in a container:
/// ENOSYS; or anything else), for the caller to fall back to clone(2) and the self-join.
fn clone_into_cgroup<F>(cgroup: BorrowedFd<'_>, flags: CloneFlags, child: &mut Child<'_, F>) -> Option<i32>
where
    F: FnOnce() -> Result<Infallible>,
{
    let args = CloneArgs {
        flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size given; without CLONE_VM the child has its
    // own copy of our memory, `child` included.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, size_of::<CloneArgs>()) };
    match pid {
        -1 => None,
        0 => {
            let code = child_entry::<F>((&raw mut *child).cast::<c_void>());
            // SAFETY: the child ends here, as a child made by clone(2) does when its function returns.
            unsafe { libc::_exit(code) }
        }
        pid => Some(pid as i32),
    }
}
// ANCHOR_END: clone3

impl Container {
    /// The pid of the container's first process, as the runtime sees it.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Lets the child go on with its part of the sequence.
    pub fn start(&mut self) -> Result<()> {
        let Some(go) = self.go.take() else {
            return Ok(());
        };
        match write(&go, b"g") {
            // EPIPE: the child is already gone; wait() tells how it ended.
            Ok(_) | Err(Errno::EPIPE) => Ok(()),
            Err(errno) => Err(Error::new(format!("starting the container: {errno}"))),
        }
    }

    // ANCHOR: wait
    /// Waits until the container's first process has ended and returns its exit code:
    /// the code it exited with, or 128 + N when signal N killed it (as shells report it).
    pub fn wait(mut self) -> Result<u8> {
        // ANCHOR: exercise-wait waitpid the child (retry on EINTR), mark it reaped, then turn its WaitStatus into an exit code
        let status = loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                other => break other.context("waitpid")?,
            }
        };
        self.reaped = true;
        signals::stop_forwarding();
        self.terminal.take_back();
        Ok(match status {
            WaitStatus::Exited(_, code) => code as u8,
            WaitStatus::Signaled(_, signal, _) => 128 + signal as u8,
            _ => EXIT_RUNTIME,
        })
        // ANCHOR_END: exercise-wait
    }
    // ANCHOR_END: wait
}

// ANCHOR: drop
impl Drop for Container {
    /// A container whose runtime gave up on it (an error before `wait`) does not outlive it.
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            while let Err(Errno::EINTR) = waitpid(self.pid, None) {}
            signals::stop_forwarding();
        }
    }
}
// ANCHOR_END: drop

/// What the child needs, passed through clone's `arg` pointer.
struct Child<'a, F> {
    main: Option<F>,
    go: Option<OwnedFd>,
    go_sender: RawFd,
    terminal: &'a Terminal,
    signal_mask: SigSet,
}

// ANCHOR: child
impl<F: FnOnce() -> Result<Infallible>> Child<'_, F> {
    fn run(&mut self) -> Result<Infallible> {
        signals::reset_in_child()?;
        // Die with the runtime, whatever kills it, even SIGKILL.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
        // Wait for the go. End of file instead means the runtime died before it could say it
        // (possibly before the line above took effect): give up quietly.
        // SAFETY: our copy of the write end, which must be closed to ever see end of file.
        unsafe { libc::close(self.go_sender) };
        let go = self.go.take().expect("the read end is set by spawn");
        if read(&go, &mut [0u8]) != Ok(1) {
            // SAFETY: ends this process without running anything of the parent's.
            unsafe { libc::_exit(EXIT_RUNTIME.into()) };
        }
        drop(go);
        self.terminal.give_to_this_process()?;
        signals::unblock_in_child(&self.signal_mask)?;
        (self.main.take().expect("the child runs once"))()
    }
}
// ANCHOR_END: child

/// In the container: runs `change`, a change of the process's user or group ids (step 08's
/// `become_root`), without losing what the child set first thing, the parent-death signal.
/// The kernel clears that signal on any change of ids (prctl(2)); without it, a runtime killed
/// with SIGKILL would leave its container running. So it is set again afterwards; and should the
/// runtime have died in between, while no signal was set, the container notices that its parent
/// changed and ends.
pub fn change_ids(change: impl FnOnce() -> Result<()>) -> Result<()> {
    let runtime = parent_pid()?;
    change()?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    if parent_pid()? != runtime {
        return Err(Error::new("the runtime ended while the container was starting"));
    }
    Ok(())
}

/// The parent's pid, from /proc/self/status. The host's /proc is still mounted when this is
/// called, so it names the runtime, or whoever took the child over when the runtime died
/// (`getppid()` says 0 either way: the parent is outside the child's PID namespace).
fn parent_pid() -> Result<String> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    Ok(status.lines().find_map(|line| line.strip_prefix("PPid:")).unwrap_or("").trim().to_owned())
}

extern "C" fn child_entry<F: FnOnce() -> Result<Infallible>>(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` that spawn() passed, in the child's copy of the memory.
    let child = unsafe { &mut *arg.cast::<Child<'_, F>>() };
    match child.run() {
        Ok(never) => match never {},
        Err(error) => {
            report(&error);
            error.code().into()
        }
    }
}

fn clone_error(errno: Errno, flags: CloneFlags) -> Error {
    let hint = match errno {
        Errno::EPERM => " (creating namespaces needs root)",
        Errno::ENOSPC | Errno::EUSERS => " (a limit in /proc/sys/user/max_*_namespaces was reached)",
        Errno::EINVAL => " (this kernel does not support one of the namespaces asked for)",
        _ => "",
    };
    Error::new(format!("clone({flags:?}): {errno}{hint}"))
}

// ANCHOR: stack
/// An mmap'd stack with a guard page below it: a stack overflow in the child faults instead of
/// overwriting memory. The stack grows down, so clone() is given its top.
struct Stack {
    base: NonNull<c_void>,
    len: usize,
}

impl Stack {
    fn new(size: usize) -> Result<Stack> {
        let guard = page_size();
        let len = size + guard;
        let nonzero = NonZeroUsize::new(len).expect("the stack has a size");
        let protection = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        let flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_STACK;
        // SAFETY: a fresh anonymous mapping, aliased by nothing.
        let base = unsafe { mmap_anonymous(None, nonzero, protection, flags) }.context("mmap stack")?;
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping we just made.
        unsafe { mprotect(base, guard, ProtFlags::PROT_NONE) }.context("mprotect guard page")?;
        Ok(stack)
    }

    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of our own mapping, which is where a downward stack starts.
        unsafe { self.base.as_ptr().cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our mapping; the child, if any, has its own copy.
        let _ = unsafe { munmap(self.base, self.len) };
    }
}
// ANCHOR_END: stack

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |size| size as usize)
}
