//! Bad id maps, and a host without user namespaces, get one clear line and exit 125, before
//! anything is made.

use std::process::Command;

use workshop_testkit::step_binary;

fn step(args: &[&str]) -> Command {
    let mut command = Command::new(step_binary!());
    command.args(args).arg("true");
    command
}

#[test]
fn maps_that_are_not_maps() {
    for bad in ["banana", "0:100000", "0:100000:65536:1", "0:100000:0", "-1:100000:10"] {
        workshop_testkit::contract::refused(&mut step(&["--uid-map", bad]), "--uid-map");
        workshop_testkit::contract::refused(&mut step(&["--gid-map", bad]), "--gid-map");
    }
}

#[test]
fn maps_beyond_32_bits() {
    workshop_testkit::contract::refused(&mut step(&["--uid-map", "0:4294967295:2"]), "largest id");
    workshop_testkit::contract::refused(&mut step(&["--gid-map", "4294967000:0:1000"]), "largest id");
}

#[test]
fn overlapping_maps() {
    workshop_testkit::contract::refused(
        &mut step(&["--uid-map", "0:100000:1000", "--uid-map", "500:300000:10"]),
        "overlap",
    );
    workshop_testkit::contract::refused(
        &mut step(&["--gid-map", "0:100000:1000", "--gid-map", "2000:100500:10"]),
        "overlap",
    );
}

#[test]
fn a_map_without_root() {
    workshop_testkit::contract::refused(&mut step(&["--uid-map", "1:100000:1000"]), "must map id 0");
}

#[test]
fn user_namespaces_turned_off() {
    // user.max_user_namespaces is a limit of each user namespace for the ones below it: set to
    // 0 in a namespace of the test's own, it turns them off there, and the host is untouched.
    let script = r#"echo 0 > /proc/sys/user/max_user_namespaces && exec "$@" true"#;
    workshop_testkit::contract::refused(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "sh", "-c", script, "sh"])
            .arg(step_binary!()),
        "user.max_user_namespaces",
    );
}
