//! Bad input for step 06 gets one clear line and exit 125, and leaves nothing behind.

use std::fs;
use std::path::Path;
use std::process::Command;

use workshop_testkit::contract::assert_one_line_error;
use workshop_testkit::{TempDir, step_binary};

/// The step with `args` is refused: one line, exit 125, nothing left (see the testkit).
fn refused(args: &[&str], mentions: &str) {
    workshop_testkit::contract::refused(Command::new(step_binary!()).args(args), mentions);
}

#[test]
fn a_missing_rootfs() {
    refused(&["--rootfs", "/no/such/rootfs", "true"], "does not exist");
}

#[test]
fn a_rootfs_that_is_a_file() {
    refused(&["--rootfs", "/etc/passwd", "true"], "not a directory");
}

#[test]
fn a_volume_without_a_colon() {
    refused(&["-v", "tmp", "true"], "HOST:CONTAINER");
}

#[test]
fn a_volume_with_a_relative_container_path() {
    refused(&["-v", "/tmp:data", "true"], "must be absolute");
}

#[test]
fn a_volume_whose_host_path_is_missing() {
    refused(&["-v", "/no/such/host/path:/data", "true"], "does not exist");
}

#[test]
fn a_rootfs_without_the_command() {
    let empty = TempDir::new("empty-rootfs");
    let out = workshop_testkit::run(&step_binary!(), &["--rootfs", empty.path().to_str().unwrap()]);
    assert_eq!(out.code, 127, "{out:?}");
    assert_one_line_error(&out.stderr, "/bin/sh: command not found");
}

#[test]
fn a_volume_target_through_a_symlink_is_refused() {
    let rootfs = TempDir::new("symlink-rootfs");
    fs::create_dir(rootfs.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc", rootfs.path().join("escape")).unwrap();
    let out = workshop_testkit::run(
        &step_binary!(),
        &["--rootfs", rootfs.path().to_str().unwrap(), "-v", "/tmp:/escape/x", "true"],
    );
    assert_eq!(out.code, 125, "{out:?}");
    assert_one_line_error(&out.stderr, "symbolic link");
    assert!(!Path::new("/etc/x").exists(), "a mount point was made on the host");
}
