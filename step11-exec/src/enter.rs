//! Step 11's new idea: `setns(2)`, to start a second process in a running container, as
//! `docker exec` does.
//!
//! A namespace lives as long as something refers to it, and every process shows the ones it
//! is in as files: `/proc/PID/ns/uts`, `/proc/PID/ns/mnt`, … (`ls -l` shows them as links to
//! `uts:[4026532290]`, the namespace's inode number: two processes in one namespace show the
//! same number). `setns(fd, type)` moves the caller into the namespace an open file of these
//! refers to; since Linux 5.8 `fd` may also be a *pidfd*, a file descriptor of the process
//! itself, and `type` several `CLONE_NEW*` flags at once: the kernel then moves the caller
//! into all of that process's namespaces in one step, or into none.
//!
//! `exec` is three processes:
//!
//! ```text
//! step11-exec exec web        (host: finds the container, holds a pidfd, relays the terminal)
//! └─ helper                   (joins the cgroup, then setns into the namespaces; waits)
//!    └─ COMMAND               (forked after setns: born in the container's PID namespace)
//! ```
//!
//! The order matters, and so does what the helper holds while it is inside:
//! - the **identity** of the container's first process is checked *after* a pidfd of it is
//!   open: from then on the pidfd names that process, even if its pid is given to another, and
//!   setns on it fails once it has ended ([`Target::open`]);
//! - the helper makes itself **not dumpable** first thing: a process that is not dumpable
//!   cannot be ptraced, nor its `/proc/PID/fd` opened, by root of the container, who could
//!   otherwise reach every host file descriptor it holds until the exec (runc's
//!   CVE-2016-9962);
//! - it **joins the cgroup** while it is still on the host, before the PID namespace, so that
//!   the command is born in it, under its limits;
//! - it drops its **supplementary groups** (the host's) while it still may: in the container's
//!   user namespace `setgroups` is denied;
//! - **setns**: user namespace first (that gives it the capabilities over the other
//!   namespaces, which the container's user namespace owns), mount namespace last (that
//!   changes its root and working directory, and `/proc` with them); with a pidfd, all at once;
//! - a PID namespace applies to the **children** of the process that joins it (a process's own
//!   pid never changes): so the helper forks, and the command is the container's process
//!   number N, not 1;
//! - every file descriptor but 0, 1 and 2 is closed or close-on-exec before the exec.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::Parser;
use clap::error::ErrorKind;
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, getpid, getppid, setgroups, setresgid, setresuid};
use step01_clone::error::{Context, EXIT_RUNTIME, Error, Result, program_name, report};
use step01_clone::{cli, exec, signals};
use step08_userns::console::Console;

use crate::published::{self, Name, Published};

// ANCHOR: cli
/// `step11-exec exec NAME [--] [COMMAND [ARG]...]`.
#[derive(Parser, Debug)]
#[command(name = "exec", bin_name = "step11-exec exec")]
pub struct ExecArgs {
    /// The running container to enter (`step11-exec ps` lists them)
    #[arg(value_name = "NAME")]
    pub name: Name,
    #[command(flatten)]
    pub command: cli::CommandArgs,
}

/// `step11-exec ps`.
#[derive(Parser, Debug)]
#[command(name = "ps", bin_name = "step11-exec ps")]
pub struct PsArgs {}

/// What the command line asks for. A first argument of exactly `exec` or `ps` names the
/// subcommand; anything else (`--`, an option) runs a container, so that `step11-exec -- ps`
/// runs a command called `ps` in a new container.
pub enum Subcommand {
    Exec(ExecArgs),
    Ps,
    Run,
}

pub fn subcommand() -> Subcommand {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    let rest: Vec<OsString> = args.collect();
    match rest.first().and_then(|first| first.to_str()) {
        Some("exec") => Subcommand::Exec(parse_subcommand(program, "exec", &rest[1..])),
        Some("ps") => {
            parse_subcommand::<PsArgs>(program, "ps", &rest[1..]);
            Subcommand::Ps
        }
        _ => Subcommand::Run,
    }
}

/// step 01's `cli::parse`, for a subcommand: `--help` prints and exits 0, a mistake is one line
/// and exit 125.
fn parse_subcommand<T: Parser>(program: OsString, name: &str, args: &[OsString]) -> T {
    let mut argv = vec![program];
    argv.extend_from_slice(args);
    match T::try_parse_from(argv) {
        Ok(args) => args,
        Err(err) if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => err.exit(),
        Err(err) => {
            let rendered = err.render().to_string();
            let mut lines = rendered.lines().map(str::trim).filter(|line| !line.is_empty());
            let mut first = lines.next().unwrap_or("invalid arguments").to_owned();
            if first.ends_with(':') {
                // "the following required arguments were not provided:" names them below.
                first = format!("{first} {}", lines.next().unwrap_or(""));
            }
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("{}: {name}: {first} (see {} {name} --help)", program_name(), program_name());
            std::process::exit(EXIT_RUNTIME.into())
        }
    }
}
// ANCHOR_END: cli

// ANCHOR: namespaces
/// The namespaces `exec` joins, in the order it joins them one by one (when it cannot join them
/// all at once): the user namespace first, the mount namespace last.
pub const NAMESPACES: [(CloneFlags, &str); 7] = [
    (CloneFlags::CLONE_NEWUSER, "user"),
    (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
    (CloneFlags::CLONE_NEWIPC, "ipc"),
    (CloneFlags::CLONE_NEWUTS, "uts"),
    (CloneFlags::CLONE_NEWNET, "net"),
    (CloneFlags::CLONE_NEWPID, "pid"),
    (CloneFlags::CLONE_NEWNS, "mnt"),
];
// ANCHOR_END: namespaces

/// Set to `files` to join the namespaces one by one through `/proc/PID/ns`, as on kernels
/// before 5.8 (which `exec` falls back to by itself there).
pub const SETNS_ENV: &str = "WORKSHOP_SETNS";

/// A running container, held: what it published, a pidfd of its first process whose identity
/// was checked, and `/proc` of that process.
#[derive(Debug)]
pub struct Target {
    published: Published,
    pidfd: OwnedFd,
    proc_dir: OwnedFd,
    /// The namespaces of the container that are not already ours.
    namespaces: CloneFlags,
}

impl Target {
    // ANCHOR: open
    /// Finds the running container `name` and takes hold of its first process.
    pub fn open(name: &Name) -> Result<Target> {
        // ANCHOR: exercise-open find the published container, pidfd_open its first process and open /proc/PID, THEN check it is still that process (is_running, alive); keep the NAMESPACES whose /proc/PID/ns inode is not ours
        let published = published::find(name)?;
        let init = published.init.expect("find returns published containers");
        let ended = || Error::new(format!("the container {name} has ended (`ps` lists the running ones)"));
        let pidfd = pidfd_open(init.pid).map_err(|errno| match errno {
            Errno::ESRCH => ended(),
            Errno::ENOSYS => Error::new("exec needs Linux 5.3 or later (pidfd_open)"),
            other => Error::new(format!("pidfd_open({}): {other}", init.pid)),
        })?;
        let proc_dir = open(
            Path::new(&format!("/proc/{}", init.pid)),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| ended())?;
        // The pidfd and /proc/PID were opened first, then the process they name is checked: if
        // it is still the container's (same start time) and alive, they name it for good.
        if !init.is_running() || !alive(&pidfd) {
            return Err(ended());
        }
        let mut namespaces = CloneFlags::empty();
        for (flag, ns) in NAMESPACES {
            let theirs = fs::metadata(format!("/proc/{}/ns/{ns}", init.pid));
            let ours = fs::metadata(format!("/proc/self/ns/{ns}"));
            if let (Ok(theirs), Ok(ours)) = (theirs, ours)
                && (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino())
            {
                namespaces |= flag;
            }
        }
        // The metadata was read by path: make sure it was still that process's.
        if !init.is_running() || !alive(&pidfd) {
            return Err(ended());
        }
        Ok(Target { published, pidfd, proc_dir, namespaces })
        // ANCHOR_END: exercise-open
    }
    // ANCHOR_END: open

    /// What the container published.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// The container's namespaces `exec` joins (those it does not share with the host).
    pub fn namespaces(&self) -> CloneFlags {
        self.namespaces
    }

    // ANCHOR: join
    /// In the helper, a child of the exec'ing process, still on the host: joins the container's
    /// cgroup and namespaces and becomes root inside. Nothing of the container may reach this
    /// process from now on until it has exec'd: it holds the host's file descriptors.
    pub fn join(&self) -> Result<()> {
        // ANCHOR: exercise-join not dumpable, join_cgroup, setgroups([]), self.setns(), become_root, not dumpable again, chdir /
        nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        self.join_cgroup()?;
        setgroups(&[]).context("setgroups: dropping the host's supplementary groups")?;
        self.setns()?;
        become_root()?;
        // Changing ids resets the dumpable flag from fs.suid_dumpable: set it again.
        nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        // setns(CLONE_NEWNS) put our root and working directory at the root of the container's
        // mount namespace: its `/`, since step 06's pivot_root.
        std::env::set_current_dir("/").context("chdir / in the container")
        // ANCHOR_END: exercise-join
    }
    // ANCHOR_END: join

    // ANCHOR: join_cgroup
    /// Moves this process into the container's cgroup (each hierarchy's directory on v1), by
    /// writing `0`, "myself", as step 07's container does: into `tasks` where there is one (v1),
    /// into `cgroup.procs` otherwise (v2). Before the PID namespace: the command is born in it.
    fn join_cgroup(&self) -> Result<()> {
        for dir in &self.published.cgroup {
            let tasks = dir.join("tasks");
            let file = if tasks.exists() { tasks } else { dir.join("cgroup.procs") };
            fs::write(&file, "0")
                .context(format!("joining the container's cgroup: writing 0 to {}", file.display()))?;
        }
        Ok(())
    }
    // ANCHOR_END: join_cgroup

    // ANCHOR: setns
    /// Joins the container's namespaces: all at once with setns on the pidfd (Linux 5.8+), else
    /// one by one through the files of `/proc/PID/ns`, opened first (the mount namespace changes
    /// what `/proc` is), user namespace first, mount namespace last.
    fn setns(&self) -> Result<()> {
        // ANCHOR: exercise-setns setns(pidfd, self.namespaces) all at once; on EINVAL or WORKSHOP_SETNS=files: open every ns/NAME under proc_dir first, check alive, then setns each in NAMESPACES order
        let one_by_one = std::env::var_os(SETNS_ENV).is_some_and(|v| v == "files");
        if !one_by_one {
            match setns(&self.pidfd, self.namespaces) {
                Ok(()) => return Ok(()),
                // EINVAL: a kernel before 5.8, where setns takes no pidfd.
                Err(Errno::EINVAL) => {}
                Err(errno) => return Err(self.setns_error("", errno)),
            }
        }
        let mut files = Vec::new();
        for (flag, ns) in NAMESPACES.into_iter().filter(|(flag, _)| self.namespaces.contains(*flag)) {
            let file = openat(
                &self.proc_dir,
                Path::new(&format!("ns/{ns}")),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| self.setns_error(ns, errno))?;
            files.push((flag, ns, file));
        }
        // The files were opened through /proc/PID: still the container's if it still runs.
        if !alive(&self.pidfd) {
            return Err(self.setns_error("", Errno::ESRCH));
        }
        for (flag, ns, file) in files {
            setns(file.as_fd(), flag).map_err(|errno| self.setns_error(ns, errno))?;
        }
        Ok(())
        // ANCHOR_END: exercise-setns
    }
    // ANCHOR_END: setns

    fn setns_error(&self, ns: &str, errno: Errno) -> Error {
        let name = &self.published.name;
        match errno {
            Errno::ESRCH => Error::new(format!("the container {name} ended before exec could enter it")),
            errno if ns.is_empty() => Error::new(format!("setns into the namespaces of {name}: {errno}")),
            errno => Error::new(format!("setns into the {ns} namespace of {name}: {errno}")),
        }
    }

    // ANCHOR: fork_exec
    /// In the helper, once it has joined: forks the command, which is born in the container's
    /// PID namespace, gives it the terminal `console`, runs `before_exec` in it (step 12 applies
    /// its restrictions there) and execs `argv`; then waits for the command and ends with its
    /// exit code (128 + N when signal N killed it). The container's end kills the command: it
    /// is in its PID namespace, and the kernel kills every process of a PID namespace whose
    /// first process has ended.
    pub fn fork_exec(
        &self,
        console: &Console,
        argv: &[OsString],
        before_exec: impl FnOnce() -> Result<()>,
    ) -> Result<Infallible> {
        // ANCHOR: exercise-fork_exec pass_on_to_command, then fork: the child runs self.command (report, _exit on error); the parent records COMMAND, restores the mask, close_all_but_stdio, _exit(wait_for(child))
        // Signals sent to the helper before it knows the command's pid wait, blocked.
        let blocked = pass_on_to_command()?;
        // SAFETY: the helper is single-threaded (a child of a single-threaded process).
        match unsafe { fork() }.context("fork")? {
            ForkResult::Child => {
                let error = match self.command(console, argv, &blocked, before_exec) {
                    Ok(never) => match never {},
                    Err(error) => error,
                };
                report(&error);
                // SAFETY: ends the forked child without running the helper's exit handlers.
                unsafe { libc::_exit(error.code().into()) }
            }
            ForkResult::Parent { child } => {
                COMMAND.store(child.as_raw(), Ordering::SeqCst);
                nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&blocked),
                    None,
                )
                .context("sigprocmask")?;
                close_all_but_stdio();
                let code = wait_for(child);
                // SAFETY: nothing of ours is left to run: end with the command's code.
                unsafe { libc::_exit(code) }
            }
        }
        // ANCHOR_END: exercise-fork_exec
    }

    /// In the command's process, in the container's PID namespace.
    fn command(
        &self,
        console: &Console,
        argv: &[OsString],
        blocked: &SigSet,
        before_exec: impl FnOnce() -> Result<()>,
    ) -> Result<Infallible> {
        signals::reset_in_child()?;
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
        // Our parent, the helper, is outside the container's PID namespace: getppid() says 0.
        // 1 would mean that it died and the container's first process adopted us.
        if getppid() != Pid::from_raw(0) {
            return Err(Error::new("exec's helper ended while the command was starting"));
        }
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(blocked), None)
            .context("sigprocmask")?;
        console.attach()?;
        println!("Exec [{:5}] - inside the container!", getpid());
        // ANCHOR: before_exec
        // The last point before the command runs: this process is in every namespace and the
        // cgroup of the container, root inside, not dumpable. Step 12 restricts it here.
        before_exec()?;
        // ANCHOR_END: before_exec
        exec::exec(argv)
    }
    // ANCHOR_END: fork_exec
}

// ANCHOR: become_root
/// After setns into the user namespace: this process still has the host's ids (root's, which
/// the container does not map, so they show as 65534 inside); take root's inside, as step 08's
/// container does. That clears the parent-death signal, which is set again; if the exec'ing
/// process died meanwhile, our parent changed, and we end.
fn become_root() -> Result<()> {
    let parent = getppid();
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .context("setresgid(0) in the container")?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .context("setresuid(0) in the container")?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    if getppid() != parent {
        return Err(Error::new("exec ended while entering the container"));
    }
    Ok(())
}
// ANCHOR_END: become_root

/// A pidfd of `pid` (Linux 5.3+), close-on-exec.
fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    Errno::result(fd)?;
    // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the process of `pidfd` has not ended: signal 0 checks without sending anything.
fn alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with signal 0 and no siginfo only checks.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), 0, std::ptr::null::<u8>(), 0) == 0
    }
}

/// The command's pid, for the helper's signal handler.
static COMMAND: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_on(signal: libc::c_int) {
    let pid = COMMAND.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

/// In the helper: SIGTERM and SIGHUP (from the exec'ing process, which passes on what it gets,
/// as step 01's runtime does) go on to the command. SIGINT and SIGQUIT are ignored: they come
/// from the terminal, which sends them to the command itself. Returns the signal mask to
/// restore, the signals being blocked until the command's pid is known.
fn pass_on_to_command() -> Result<SigSet> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    let mut previous = SigSet::empty();
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous))
        .context("sigprocmask")?;
    for (signal, handler) in [
        (Signal::SIGTERM, SigHandler::Handler(pass_on)),
        (Signal::SIGHUP, SigHandler::Handler(pass_on)),
        (Signal::SIGINT, SigHandler::SigIgn),
        (Signal::SIGQUIT, SigHandler::SigIgn),
    ] {
        let action = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
        // SAFETY: the handler reads an atomic and calls kill, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }.context(format!("sigaction {signal}"))?;
    }
    Ok(previous)
}

/// The helper keeps nothing open but stdin, stdout and stderr while it waits: not the
/// terminal's other end (the relay ends when the command's last copy closes), not the pidfd.
fn close_all_but_stdio() {
    // SAFETY: closes our own descriptors from 3 up; Rust holds none of them open here.
    unsafe { libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0) };
}

/// Waits for the command; its exit code, or 128 + N when signal N killed it.
fn wait_for(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) => continue,
            Err(_) => return EXIT_RUNTIME.into(),
        }
    }
}
