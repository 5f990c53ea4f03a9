//! Bad network options get one clear line and exit 125, before a container starts, and leave
//! nothing behind (no lease; no bridge either when the subnet is refused).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::TestBridge;
use workshop_testkit::contract::refused;
use workshop_testkit::{HostProcess, child_running, step_binary};

fn step(args: &[&str]) -> Command {
    let mut command = Command::new(step_binary!());
    command.args(args).arg("true");
    command
}

/// The step on the test's bridge (`--bridge NAME --subnet SUBNET`), with `args`; the command
/// is still to add.
fn on(bridge: &TestBridge, args: &[&str]) -> Command {
    let mut command = Command::new(step_binary!());
    command.args(bridge.args()).args(args);
    command
}

#[test]
fn addresses_that_are_not_addresses() {
    for bad in ["banana", "10.213.0.300", "10.213.0.9/33", "10.213.0.9/", "", "::1"] {
        refused(&mut step(&["--ip", bad]), "--ip");
    }
    for bad in ["banana", "10.213.0.0", "10.213.0.0/31", "10.213.0.0/4", "10.213.0.9/24"] {
        refused(&mut step(&["--subnet", bad]), "--subnet");
    }
    refused(step(&[]).env("WORKSHOP_SUBNET", "banana"), "--subnet");
}

#[test]
fn an_ip_outside_the_subnet() {
    refused(&mut step(&["--ip", "10.214.0.9/24"]), "outside the subnet 10.213.0.0/24");
    refused(&mut step(&["--ip", "192.168.1.9"]), "outside the subnet");
    refused(&mut step(&["--ip", "10.213.0.9/16"]), "prefix length is 24");
    refused(&mut step(&["--ip", "10.213.0.1"]), "the bridge's own address");
    refused(&mut step(&["--ip", "10.213.0.0"]), "network address");
    refused(&mut step(&["--ip", "10.213.0.255"]), "broadcast address");
}

#[test]
fn an_ip_already_in_use() {
    let bridge = TestBridge::new("use", 102);
    let taken = bridge.address(9).to_string();
    let mut first = HostProcess::start(
        on(&bridge, &["--ip", &taken]).args(["sleep", "300"]).stdin(Stdio::null()).stdout(Stdio::null()),
    );
    child_running(first.pid(), "sleep");
    refused(on(&bridge, &["--ip", &taken]).arg("true"), "in use");
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn ip_without_a_network() {
    refused(&mut step(&["--net", "none", "--ip", "10.213.0.9"]), "--ip needs a network");
    refused(&mut step(&["--net", "host"]), "--net");
}

#[test]
fn bridge_names_the_kernel_would_not_take() {
    for bad in ["a-name-of-16-byt", "a/b", "a b", "", "..", "br:0"] {
        refused(&mut step(&["--bridge", bad]), "--bridge");
    }
}

#[test]
fn a_bridge_name_that_is_not_a_bridge() {
    refused(&mut step(&["--bridge", "lo"]), "lo exists on the host and is not a bridge");
}

#[test]
fn a_subnet_that_overlaps_the_hosts() {
    // Every host has 127.0.0.1/8 on lo.
    let bridge = TestBridge::new("ovl", 103);
    refused(&mut step(&["--bridge", &bridge.name, "--subnet", "127.1.0.0/16"]), "overlaps 127.0.0.1/8 of lo");
    assert!(!Path::new("/sys/class/net").join(&bridge.name).exists(), "the bridge was made all the same");
}

#[test]
fn a_subnet_other_than_the_bridges() {
    let bridge = TestBridge::new("sub", 104);
    let out = workshop_testkit::run_command(&mut on(&bridge, &["true"]));
    assert_eq!(out.code, 0, "{out:?}");
    refused(
        &mut step(&["--bridge", &bridge.name, "--subnet", "10.213.105.0/24"]),
        &format!(
            "has the address 10.213.104.1/24, not 10.213.105.1/24: use --subnet {}",
            bridge.subnet_arg()
        ),
    );
}
