//! Step 02's feature: the container has a hostname of its own, and the host keeps its.
//! `scripts/progression` checks that each of these fails against step 01.

use workshop_testkit::{Shell, step_binary};

/// CAP_SYS_ADMIN's bit in the capability sets of /proc/PID/status (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

fn host_hostname() -> String {
    nix::unistd::gethostname().expect("gethostname").to_string_lossy().into_owned()
}

#[test]
fn the_container_is_called_container_and_the_host_keeps_its_name() {
    let host_name = host_hostname();
    let mut shell = Shell::start(&step_binary!(), &[]);
    assert_eq!(shell.run("hostname"), "container");
    assert_eq!(shell.run("uname -n"), "container");
    assert_eq!(host_hostname(), host_name, "the host was renamed while the container ran");
    assert_eq!(shell.exit(0), 0);
    assert_eq!(host_hostname(), host_name, "the host was renamed");
}

#[test]
fn hostname_option_names_the_container() {
    let mut shell = Shell::start(&step_binary!(), &["--hostname", "web-1"]);
    assert_eq!(shell.run("hostname"), "web-1");
    let said = shell.run("hostname renamed-inside 2>&1");
    let now = shell.run("hostname");
    if now != "renamed-inside" {
        // From step 12 on, root inside has Docker's capabilities, without CAP_SYS_ADMIN: the
        // runtime names the container, which may rename neither itself nor the host. Anything
        // else that stops the rename is a bug.
        let effective = shell.run("grep CapEff /proc/self/status");
        let bits =
            u64::from_str_radix(effective.trim_start_matches("CapEff:").trim(), 16).unwrap_or(u64::MAX);
        assert_eq!(bits & (1 << CAP_SYS_ADMIN), 0, "not renamed ({said}), with CAP_SYS_ADMIN: {effective}");
        assert!(!said.is_empty(), "the refusal says nothing");
        assert_eq!(now, "web-1");
    }
    assert_ne!(host_hostname(), "renamed-inside", "renaming inside renamed the host");
    assert_eq!(shell.exit(0), 0);
}
