//! Attacks that work up to step 07 and fail from step 08 on: a container whose root is the
//! host's root, and which shares the user's terminal, can reach the host through the kernel's
//! interfaces that check for root (or for a controlling terminal) and nothing else. Each test
//! tries the attack itself, with a small program in the container, against targets the test
//! made (a pty, a loop device, a file), and asserts that it fails. `scripts/progression`
//! checks that each one *passes* against step 07 no more: there, the attack works.

use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use workshop_testkit::{TempDir, require_root, run, step_binary};

/// Builds tests/NAME.c as a static program in `dir` (which the container sees as a volume).
fn build(name: &str, dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/{name}.c"));
    let built = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(dir.join(name)).arg(&source).status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "gcc must build tests/{name}.c statically (install gcc and libc6-dev)"
    );
}

/// A directory of attack programs, writable by root in the container (uid 100000 from step 08).
fn tools(purpose: &str, programs: &[&str]) -> TempDir {
    let dir = TempDir::new(purpose);
    for program in programs {
        build(program, dir.path());
    }
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

// --- TIOCSTI: the user's terminal --------------------------------------------------------------

/// Where the runtime's stdout goes.
#[derive(Clone, Copy, PartialEq)]
enum Stdout {
    /// `runtime … | cat`
    Pipe,
    /// `runtime … > log`
    File,
    /// the user's terminal
    Terminal,
}

/// Runs tests/tiocsti.c in a container started from a terminal of the test's own (a pty pair
/// standing in for the user's: the runtime is a session leader with it as controlling
/// terminal, as a login shell's child is), with stdin on it or not and stdout where `stdout`
/// says. Fails when the program reports that it injected into that terminal, or when its text
/// waits in the terminal's input queue afterwards (what the user's shell would read next).
fn inject_into_the_users_terminal(stdin_tty: bool, stdout: Stdout) {
    require_root();
    let dir = tools("tiocsti", &["tiocsti"]);
    let user = nix::pty::openpty(None, None).expect("openpty");
    let (primary, terminal) = (user.master, user.slave);
    let device = nix::sys::stat::fstat(terminal.as_fd()).unwrap().st_rdev;
    let (major, minor) = (libc::major(device), libc::minor(device));
    let typed = format!("touch /tmp/pwned-{}", std::process::id());
    let clone = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut command = Command::new(step_binary!());
    command
        .arg("-v")
        .arg(format!("{}:/attack", dir.path().display()))
        .args(["--", "/attack/tiocsti", &typed, "/attack/report"])
        .stdin(if stdin_tty { clone(&terminal) } else { Stdio::piped() })
        .stdout(match stdout {
            Stdout::Pipe => Stdio::piped(),
            Stdout::File => Stdio::from(File::create(dir.path().join("log")).unwrap()),
            Stdout::Terminal => clone(&terminal),
        })
        .stderr(clone(&terminal));
    let controlling = terminal.as_raw_fd();
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::errno::Errno::result(libc::ioctl(controlling, libc::TIOCSCTTY, 0))?;
            Ok(())
        });
    }
    let mut child = command.spawn().expect("starting the runtime");
    drop(child.stdin.take()); // `true | runtime …`: stdin is a pipe with nothing in it
    let out = child.wait_with_output().expect("waiting for the runtime");
    let report = fs::read_to_string(dir.path().join("report")).unwrap_or_else(|_| {
        panic!("the attack program did not run in the container: {}", String::from_utf8_lossy(&out.stdout))
    });
    // What the user's shell would read next: the input queue of the terminal, without waiting.
    nix::fcntl::fcntl(terminal.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
    let mut queued = [0u8; 4096];
    let n = nix::unistd::read(&terminal, &mut queued).unwrap_or(0);
    drop(primary);
    let queued = String::from_utf8_lossy(&queued[..n]).into_owned();
    let injected = format!("(tty {major}:{minor}): injected");
    assert!(
        !report.contains(&injected) && !queued.contains(&typed),
        "the container typed into the user's terminal {major}:{minor}:\n{report}the user's shell would read: {queued:?}"
    );
    eprintln!("the user's terminal is {major}:{minor}\n{report}the user's shell would read: {queued:?}");
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_when_stdout_is_a_pipe() {
    inject_into_the_users_terminal(true, Stdout::Pipe);
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_when_stdout_is_a_file() {
    inject_into_the_users_terminal(true, Stdout::File);
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_when_stdin_is_a_pipe() {
    inject_into_the_users_terminal(false, Stdout::Terminal);
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_from_an_interactive_container() {
    inject_into_the_users_terminal(true, Stdout::Terminal);
}
