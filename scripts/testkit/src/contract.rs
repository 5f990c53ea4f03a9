//! The command-line contract every step keeps, as tests. Each step's `tests/contract.rs` runs
//! all of them against its own binary with [`contract_tests!`](crate::contract_tests).

use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};

use crate::{HostProcess, Shell, alive, child_running, eventually, require_root, run, run_command};

/// Expands to one `#[test]` per contract clause, run against the calling step's binary.
#[macro_export]
macro_rules! contract_tests {
    () => {
        $crate::contract_tests!(
            banners_in_order_and_exit_code_passed_on,
            command_not_found_is_127,
            command_not_executable_is_126,
            death_by_signal_is_128_plus_n,
            environment_passes_through,
            interactive_shell_has_job_control,
            ctrl_c_reaches_the_command_not_the_container,
            sigterm_to_runtime_stops_the_container,
            repeated_sigterms_do_not_postpone_the_sigkill,
            sigkill_to_runtime_kills_the_container,
            not_root_is_one_clear_line,
            unknown_option_is_one_clear_line,
        );
    };
    ($($clause:ident),+ $(,)?) => {
        $(
            #[test]
            fn $clause() {
                $crate::contract::$clause(&$crate::step_binary!());
            }
        )+
    };
}

/// A message is one line: what went wrong and, where there is one, the fix.
pub fn assert_one_line_error(stderr: &str, mentions: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{stderr}");
    assert!(lines[0].contains(mentions), "the error should mention {mentions:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "a panic: {stderr}");
}

/// Runs `command` (a step with bad input) and checks that it is refused the way every step
/// refuses: exit 125, one line on stderr that mentions `mentions`, no container started, and
/// nothing left behind that is named after the runtime (state directory, cgroups).
pub fn refused(command: &mut Command, mentions: &str) {
    require_root();
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(125), "{command:?}: {stdout}{stderr}");
    assert_one_line_error(&stderr, mentions);
    assert!(!stdout.contains("start a container"), "nothing may start: {stdout}");
    let left = crate::named_after(pid);
    assert!(left.is_empty(), "{command:?} left behind: {left:?}");
}

pub fn banners_in_order_and_exit_code_passed_on(bin: &Path) {
    let out = run(bin, &["--", "sh", "-c", "echo from-the-command; exit 7"]);
    assert_eq!(out.code, 7, "the runtime ends with the command's exit code: {out:?}");
    let at = |text: &str| out.stdout.find(text).unwrap_or_else(|| panic!("no {text:?} in {}", out.stdout));
    assert!(at("start a container!") < at("inside the container!"));
    assert!(at("inside the container!") < at("from-the-command"));
    assert!(at("from-the-command") < at("Parent - container stopped!"));
}

pub fn command_not_found_is_127(bin: &Path) {
    let out = run(bin, &["no-such-command-in-the-workshop"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert_one_line_error(&out.stderr, "not found");
}

pub fn command_not_executable_is_126(bin: &Path) {
    let out = run(bin, &["/"]);
    assert_eq!(out.code, 126, "{out:?}");
    assert_one_line_error(&out.stderr, "cannot execute");
}

pub fn death_by_signal_is_128_plus_n(bin: &Path) {
    let mut runtime = HostProcess::start(
        Command::new(bin).args(["sleep", "300"]).stdin(Stdio::null()).stdout(Stdio::null()),
    );
    let container = child_running(runtime.pid(), "sleep");
    kill(container, Signal::SIGKILL).unwrap();
    let status = runtime.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 9), "a command killed by SIGKILL (9) ends the runtime with 137");
}

pub fn environment_passes_through(bin: &Path) {
    let out = run_command(
        Command::new(bin).args(["sh", "-c", "echo \"[$WORKSHOP_PROBE]\""]).env("WORKSHOP_PROBE", "passed"),
    );
    assert!(out.stdout.contains("[passed]"), "{out:?}");
}

pub fn interactive_shell_has_job_control(bin: &Path) {
    let mut shell = Shell::start(bin, &[]);
    assert_eq!(shell.run("echo $((6 * 7))"), "42");
    // dash and bash both say "monitor on" when job control works on their terminal.
    let monitor = shell.run("set -o | grep monitor");
    assert!(monitor.contains("on"), "job control is off in the container's shell: {monitor}");
    assert_eq!(shell.exit(3), 3);
}

pub fn ctrl_c_reaches_the_command_not_the_container(bin: &Path) {
    let mut shell = Shell::start(bin, &[]);
    shell.run("echo ready");
    shell.session.send_line("sleep 300").unwrap();
    let container = child_running(shell.runtime_pid(), "sh");
    // Ctrl-C goes to the terminal's foreground process group: wait until the shell has made
    // sleep's group the foreground one (before that, the shell itself would get the SIGINT).
    let sleeper = eventually("sleep in the foreground inside the container", || {
        let children =
            std::fs::read_to_string(format!("/proc/{container}/task/{container}/children")).ok()?;
        let pid = children.split_whitespace().next()?.to_owned();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        // state ppid pgrp session tty_nr tpgid
        let fields: Vec<&str> = rest.split_whitespace().collect();
        (comm == "sleep" && fields.get(2)? == fields.get(5)?).then_some(pid)
    });
    shell.control('c');
    eventually("sleep to be interrupted", || {
        (!std::path::Path::new(&format!("/proc/{sleeper}")).exists()).then_some(())
    });
    assert_eq!(shell.run("echo still-here"), "still-here", "Ctrl-C ended the container's shell");
    assert_eq!(shell.exit(0), 0);
}

pub fn sigterm_to_runtime_stops_the_container(bin: &Path) {
    let mut runtime = HostProcess::start(
        Command::new(bin).args(["sleep", "300"]).stdin(Stdio::null()).stdout(Stdio::null()),
    );
    let container = child_running(runtime.pid(), "sleep");
    kill(runtime.pid(), Signal::SIGTERM).unwrap();
    let status = runtime.wait().unwrap();
    // sleep dies of SIGTERM (143); as PID 1 of a PID namespace it ignores it, and the runtime
    // sends SIGKILL after the grace period (137).
    assert!(matches!(status.code(), Some(143) | Some(137)), "{status:?}");
    assert!(!alive(container), "the container outlived its runtime");
}

/// A supervisor that keeps sending SIGTERM (rexpect does, every 100 ms) must not keep a container
/// that ignores it alive: the grace period starts at the first signal.
pub fn repeated_sigterms_do_not_postpone_the_sigkill(bin: &Path) {
    // A command that ignores SIGTERM, as a shell running as PID 1 does.
    let mut runtime = HostProcess::start(
        Command::new(bin)
            .args(["sh", "-c", "trap '' TERM; exec sleep 300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let container = child_running(runtime.pid(), "sleep");
    let started = std::time::Instant::now();
    // Twice the grace period: plenty for it to end, far from sleep's 300 s.
    while runtime.try_wait().unwrap().is_none() && started.elapsed().as_secs() < 10 {
        let _ = kill(runtime.pid(), Signal::SIGTERM);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ended = runtime.try_wait().unwrap();
    assert!(ended.is_some(), "SIGTERM every 100 ms kept the container running for 10 s");
    assert!(!alive(container), "the container outlived its runtime");
}

pub fn sigkill_to_runtime_kills_the_container(bin: &Path) {
    let mut runtime = HostProcess::start(
        Command::new(bin).args(["sleep", "300"]).stdin(Stdio::null()).stdout(Stdio::null()),
    );
    let container = child_running(runtime.pid(), "sleep");
    runtime.kill().unwrap();
    runtime.wait().unwrap();
    // The kernel sends the parent-death signal while the runtime exits, before the runtime can
    // be reaped: by now the container is dying or dead. Asking only whether it dies "eventually"
    // would let a later runtime's reclaim of stale cgroups kill it, and hide a missing signal.
    assert!(
        dying_or_dead(container),
        "the container outlived its runtime: no SIGKILL is pending for it (PR_SET_PDEATHSIG lost?)"
    );
    eventually("the container to die with its runtime", || (!alive(container)).then_some(()));
}

/// Whether `pid` is gone, a zombie, or has SIGKILL pending (bit 9 of SigPnd or ShdPnd).
fn dying_or_dead(pid: nix::unistd::Pid) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let field = |name: &str| status.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
    let sigkill_pending = ["SigPnd:", "ShdPnd:"].iter().any(|name| {
        field(name)
            .and_then(|mask| u64::from_str_radix(mask, 16).ok())
            .is_some_and(|mask| mask & (1 << 8) != 0)
    });
    sigkill_pending || field("State:").is_some_and(|state| state.starts_with('Z') || state.starts_with('X'))
}

pub fn not_root_is_one_clear_line(bin: &Path) {
    require_root();
    let out = run_command(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin)
            .arg("true"),
    );
    assert_ne!(out.code, 0);
    assert_one_line_error(&out.stderr, "must run as root");
    assert!(!out.stdout.contains("start a container"), "nothing starts without root: {out:?}");
}

pub fn unknown_option_is_one_clear_line(bin: &Path) {
    let out = run(bin, &["--no-such-option"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert_one_line_error(&out.stderr, "--no-such-option");
}
