//! Bad limits get one clear line and exit 125, before anything is made.

use std::path::Path;
use std::process::{Command, Stdio};

use workshop_testkit::contract::assert_one_line_error;
use workshop_testkit::step_binary;

fn refused(args: &[&str], mentions: &str) {
    workshop_testkit::require_root();
    let child = Command::new(step_binary!())
        .args(args)
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(125), "{args:?}: {stdout}{stderr}");
    assert_one_line_error(&stderr, mentions);
    assert!(!stdout.contains("start a container"), "nothing may start: {stdout}");
    let name = format!("step07-cgroup-{pid}");
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"] {
        let dir = Path::new(root).join("workshop").join(&name);
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
}

#[test]
fn memory_sizes_that_are_not_sizes() {
    for bad in ["banana", "1Q", "-1", "1.5g", ""] {
        refused(&["--memory", bad], "--memory");
    }
}

#[test]
fn memory_too_small_for_a_shell() {
    refused(&["--memory", "0"], "at least 6m");
    refused(&["--memory", "512k"], "at least 6m");
}

#[test]
fn cpus_out_of_range() {
    refused(&["--cpus", "0"], "above 0");
    refused(&["--cpus", "-1"], "above 0");
    refused(&["--cpus", "banana"], "above 0");
    refused(&["--cpus", "4096"], "this machine has");
}

#[test]
fn pids_zero() {
    refused(&["--pids", "0"], "at least 1");
}
