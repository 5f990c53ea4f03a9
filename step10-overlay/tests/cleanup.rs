//! Nothing of a container's overlay stays on the host: not the overlay mount (it only ever
//! exists in the container's mount namespace), not its writable layer, not its state directory;
//! after a normal exit, after a setup that failed once the overlay was mounted, and after the
//! runtime was killed with SIGKILL (then the next run reclaims what it left).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use workshop_testkit::{Shell, alive, child_running, eventually, named_after, run, step_binary};

/// The state directory of the runtime with this pid, which holds the container's layers.
fn state_dir(runtime: u32) -> PathBuf {
    PathBuf::from(format!("/run/workshop/step10-overlay-{runtime}"))
}

/// Whether any mount of the host's mount table is, or comes from, `dir`.
fn host_mounts_mention(dir: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo").unwrap().contains(dir.to_str().unwrap())
}

fn assert_nothing_left(runtime: u32) {
    let state = state_dir(runtime);
    assert!(!state.exists(), "{} was left", state.display());
    assert!(!host_mounts_mention(&state), "a mount of {} is left on the host", state.display());
    let left = named_after(runtime);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_overlay_and_the_writable_layer_go_when_the_container_exits() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let runtime = shell.runtime_pid().as_raw() as u32;
    let first = child_running(shell.runtime_pid(), "sh");
    shell.run("echo written > /etc/motd");
    let state = state_dir(runtime);
    assert!(state.join("overlay/upper/etc/motd").is_file(), "the writable layer is in the state directory");
    let container_mounts = fs::read_to_string(format!("/proc/{first}/mountinfo")).unwrap();
    assert!(
        container_mounts.lines().any(|l| l.split(' ').nth(4) == Some("/") && l.contains(" - overlay ")),
        "the container's / is an overlay:\n{container_mounts}"
    );
    assert!(!host_mounts_mention(&state), "the overlay is the container's mount, not the host's");
    assert_eq!(shell.exit(0), 0);
    assert_nothing_left(runtime);
}

#[test]
fn nothing_stays_when_setup_fails_after_the_overlay_was_mounted() {
    workshop_testkit::require_root();
    // /proc/sys is read-only: the volume's mount point cannot be made, in the container, after
    // it mounted the overlay.
    let runtime = workshop_testkit::fails_inside(
        Command::new(step_binary!()).args(["-v", "/tmp:/proc/sys/workshop-volume", "true"]),
        "workshop-volume",
    );
    assert_nothing_left(runtime);
}

#[test]
fn a_killed_runtimes_writable_layer_is_reclaimed_by_the_next_run() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let runtime = shell.runtime_pid().as_raw() as u32;
    let first = child_running(shell.runtime_pid(), "sh");
    shell.run("echo written > /etc/motd");
    kill(shell.runtime_pid(), Signal::SIGKILL).unwrap();
    eventually("the container to die with its runtime", || (!alive(first)).then_some(()));
    let _ = shell.session.process_mut().wait();
    let state = state_dir(runtime);
    assert!(state.join("overlay/upper/etc/motd").is_file(), "a runtime killed by SIGKILL cannot clean up");
    assert!(!host_mounts_mention(&state), "the overlay died with the container's mount namespace");
    // The next runtime finds the state of a pid that no longer runs.
    let out = run(&step_binary!(), &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_nothing_left(runtime);
}
