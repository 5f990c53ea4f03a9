//! Bad limits get one clear line and exit 125, before anything is made.

use std::process::Command;

use workshop_testkit::step_binary;

/// The step with `args` is refused: one line, exit 125, nothing left (see the testkit).
fn refused(args: &[&str], mentions: &str) {
    workshop_testkit::contract::refused(Command::new(step_binary!()).args(args).arg("true"), mentions);
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
