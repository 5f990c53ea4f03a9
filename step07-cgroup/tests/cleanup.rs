//! The container's cgroup is gone after it ends, on every path: a normal exit, a setup that
//! failed after the cgroup was made, SIGTERM to the runtime, and SIGKILL to the runtime (then
//! the next run reclaims it).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{cgroup_dir, is_workshop_cgroup, unified};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use workshop_testkit::{HostProcess, Shell, alive, child_running, eventually, step_binary};

/// The container's cgroup directories, in every hierarchy it was put in.
fn cgroups_of(pid: Pid) -> Vec<PathBuf> {
    let controllers: &[&str] = if unified() { &["cpu"] } else { &["cpu", "cpuacct", "memory", "pids"] };
    let dirs: Vec<PathBuf> = controllers.iter().map(|c| cgroup_dir(pid, c)).collect();
    for dir in &dirs {
        assert!(is_workshop_cgroup(dir), "the container is not in a cgroup of its own: {}", dir.display());
    }
    dirs
}

fn assert_gone(dirs: &[PathBuf]) {
    let left: Vec<_> = dirs.iter().filter(|dir| dir.exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_cgroup_goes_when_the_container_exits() {
    let mut shell = Shell::start(&step_binary!(), &["--memory", "64m", "--cpus", "0.5", "--pids", "50"]);
    let dirs = cgroups_of(child_running(shell.runtime_pid(), "sh"));
    shell.run("true");
    assert_eq!(shell.exit(3), 3);
    assert_gone(&dirs);
}

#[test]
fn the_cgroup_goes_when_setup_fails_after_it_was_made() {
    workshop_testkit::require_root();
    // /proc/sys is read-only: the volume's mount point cannot be made, in the child, after the
    // cgroup was made and the child joined it.
    let runtime = workshop_testkit::fails_inside(
        Command::new(step_binary!()).args([
            "--memory",
            "64m",
            "-v",
            "/tmp:/proc/sys/workshop-volume",
            "true",
        ]),
        "workshop-volume",
    );
    let left = workshop_testkit::named_after(runtime);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_cgroup_goes_when_the_runtime_gets_sigterm() {
    workshop_testkit::require_root();
    let mut runtime = HostProcess::start(
        Command::new(step_binary!())
            .args(["--init", "--cpus", "0.5", "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let runtime_pid = Pid::from_raw(runtime.id() as i32);
    let first = child_running(runtime_pid, "step07-cgroup"); // the init, which runs `sleep`
    // Once `sleep` runs, the init has joined the cgroup (it does so before anything else).
    child_running(first, "sleep");
    let dirs = cgroups_of(first);
    kill(runtime_pid, Signal::SIGTERM).unwrap();
    let status = runtime.wait().unwrap();
    assert_eq!(status.code(), Some(143), "SIGTERM reached the command: {status:?}");
    assert_gone(&dirs);
}

#[test]
fn a_killed_runtimes_cgroup_is_reclaimed_by_the_next_run() {
    let mut shell = Shell::start(&step_binary!(), &["--pids", "50"]);
    let first = child_running(shell.runtime_pid(), "sh");
    let dirs = cgroups_of(first);
    kill(shell.runtime_pid(), Signal::SIGKILL).unwrap();
    eventually("the container to die with its runtime", || (!alive(first)).then_some(()));
    let _ = shell.session.process_mut().wait();
    // Its Drop never ran; the next runtime finds the cgroup of a pid that no longer runs.
    let out = workshop_testkit::run(&step_binary!(), &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_gone(&dirs);
}
