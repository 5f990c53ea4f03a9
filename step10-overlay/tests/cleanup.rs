//! Nothing of a container's overlay stays on the host: not the overlay mount (it only ever
//! exists in the container's mount namespace), not its writable layer (on a tmpfs in the
//! runtime's own mount namespace, which the host never sees), not its state directory; after a
//! normal exit, after a setup that failed once the overlay was mounted, and after the runtime
//! was killed with SIGKILL (then the writable layer went with the runtime's namespace, and the
//! next run reclaims the empty state directory).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use workshop_testkit::{Shell, alive, child_running, eventually, named_after, run, step_binary};

/// The state directory of the runtime with this pid, which holds the container's layers.
fn state_dir(runtime: u32) -> PathBuf {
    PathBuf::from(format!("/run/workshop/step10-overlay-{runtime}"))
}

/// Whether this kernel's runtime keeps the writable layer on a tmpfs of its own (Linux 6.6 and
/// later), or on the host's /run as `--keep` does.
fn writable_layer_on_tmpfs() -> bool {
    let release = nix::sys::utsname::uname().unwrap().release().to_string_lossy().into_owned();
    step10_overlay::overlay::tmpfs_has_user_xattrs(&release)
}

/// The runtime's view of its state directory: `/proc/PID/root` resolves paths in the mount
/// namespace of that process, where the runtime's tmpfs is.
fn in_runtimes_namespace(runtime: u32, dir: &Path) -> PathBuf {
    Path::new(&format!("/proc/{runtime}/root")).join(dir.strip_prefix("/").unwrap())
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
    let upper = in_runtimes_namespace(runtime, &state.join("overlay/upper"));
    assert!(upper.join("etc/motd").is_file(), "the writable layer is in the runtime's state directory");
    let runtime_mounts = fs::read_to_string(format!("/proc/{runtime}/mountinfo")).unwrap();
    let overlay_dir = state.join("overlay");
    let tmpfs = runtime_mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == overlay_dir.to_str() && l.contains(" - tmpfs "));
    if writable_layer_on_tmpfs() {
        assert!(tmpfs, "the runtime has a tmpfs on {}:\n{runtime_mounts}", overlay_dir.display());
        assert!(
            !state.join("overlay/upper").exists(),
            "the writable layer is on the runtime's tmpfs, not the host's disk"
        );
    } else {
        assert!(!tmpfs, "no tmpfs for the writable layer before Linux 6.6:\n{runtime_mounts}");
        assert!(
            state.join("overlay/upper/etc/motd").is_file(),
            "before Linux 6.6, the writable layer is on /run"
        );
    }
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
fn a_killed_runtimes_writable_layer_goes_with_it_and_its_state_is_reclaimed_by_the_next_run() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let runtime = shell.runtime_pid().as_raw() as u32;
    let first = child_running(shell.runtime_pid(), "sh");
    shell.run("echo written > /etc/motd");
    kill(shell.runtime_pid(), Signal::SIGKILL).unwrap();
    eventually("the container to die with its runtime", || (!alive(first)).then_some(()));
    let _ = shell.session.process_mut().wait();
    let state = state_dir(runtime);
    assert!(state.is_dir(), "a runtime killed by SIGKILL cannot remove its state directory");
    if writable_layer_on_tmpfs() {
        assert!(
            !state.join("overlay/upper").exists(),
            "the writable layer went with the runtime's mount namespace"
        );
    } else {
        assert!(
            state.join("overlay/upper/etc/motd").is_file(),
            "before Linux 6.6, the writable layer is on /run"
        );
    }
    assert!(!host_mounts_mention(&state), "the overlay died with the container's mount namespace");
    // The next runtime finds the state of a pid that no longer runs.
    let out = run(&step_binary!(), &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_nothing_left(runtime);
}
