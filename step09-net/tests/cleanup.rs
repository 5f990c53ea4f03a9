//! Nothing of a container's network is left after it ends, on every path: a normal exit, a
//! setup that failed after the network was attached, and SIGKILL to the runtime (then the next
//! run, or the cleanup command, reclaims the lease). The host end of the veth pair goes with the
//! container's network namespace, a moment after the container: hence `eventually`.

mod common;

use std::fs;
use std::process::Command;

use common::{BRIDGE, SUBNET, address_in, host_end, lease};
use nix::sys::signal::{Signal, kill};
use workshop_testkit::{Shell, TempDir, alive, child_running, eventually, step_binary};

fn assert_veth_goes(runtime: u32) {
    let link = host_end(runtime);
    eventually(&format!("{} to go", link.display()), || (!link.exists()).then_some(()));
}

#[test]
fn nothing_is_left_after_a_normal_exit() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let runtime = shell.runtime_pid().as_raw() as u32;
    let address = address_in(&mut shell, SUBNET);
    let lease = lease(BRIDGE, address);
    assert_eq!(
        fs::read_to_string(&lease).unwrap().trim(),
        runtime.to_string(),
        "the lease holds the runtime's pid"
    );
    assert!(host_end(runtime).exists(), "the host end of the pair is there while the container runs");
    assert_eq!(shell.exit(0), 0);
    assert!(!lease.exists(), "the lease is given back when the runtime ends");
    assert_veth_goes(runtime);
}

#[test]
fn nothing_is_left_when_setup_fails_after_the_network_was_attached() {
    workshop_testkit::require_root();
    // A volume whose mount point in the rootfs is a symbolic link: the container refuses it
    // while it mounts, after the parent attached the network and let it go.
    let rootfs = TempDir::new("net-closed");
    std::os::unix::fs::symlink("/etc", rootfs.path().join("escape")).unwrap();
    let runtime = workshop_testkit::fails_inside(
        Command::new(step_binary!()).args([
            "--rootfs",
            rootfs.path().to_str().unwrap(),
            "-v",
            "/tmp:/escape/x",
            "true",
        ]),
        "symbolic link",
    );
    assert!(workshop_testkit::leases_of(runtime).is_empty(), "a lease is left");
    assert_veth_goes(runtime);
}

/// Kills a container's runtime with SIGKILL; returns its pid and the lease it held.
fn kill_runtime() -> (u32, std::path::PathBuf) {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let runtime = shell.runtime_pid();
    let first = child_running(runtime, "sh");
    let lease = lease(BRIDGE, address_in(&mut shell, SUBNET));
    kill(runtime, Signal::SIGKILL).unwrap();
    eventually("the container to die with its runtime", || (!alive(first)).then_some(()));
    let _ = shell.session.process_mut().wait();
    assert_veth_goes(runtime.as_raw() as u32);
    (runtime.as_raw() as u32, lease)
}

#[test]
fn a_killed_runtimes_lease_is_reclaimed_by_the_next_run() {
    let (runtime, lease) = kill_runtime();
    // Its Drop never ran; the next runtime finds a lease held by a pid that no longer runs.
    eventually("the stale lease to be reclaimed", || {
        let out = workshop_testkit::run(&step_binary!(), &["true"]);
        assert_eq!(out.code, 0, "{out:?}");
        (!fs::read_to_string(&lease).is_ok_and(|owner| owner.trim() == runtime.to_string())).then_some(())
    });
}

#[test]
fn a_killed_runtimes_lease_is_reclaimed_by_the_cleanup_command() {
    let (runtime, lease) = kill_runtime();
    let out = workshop_testkit::run(env!("CARGO_BIN_EXE_workshop-cleanup").as_ref(), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !fs::read_to_string(&lease).is_ok_and(|owner| owner.trim() == runtime.to_string()),
        "the cleanup left the lease of a dead runtime: {out:?}"
    );
}
