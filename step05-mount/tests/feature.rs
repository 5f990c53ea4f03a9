//! Step 05's feature: the container has its own /proc, and the host's /proc survives it even
//! when the host's `/` is a shared mount. `scripts/progression` checks that each of these fails
//! against step 04.

use std::process::Command;

use workshop_testkit::{Shell, run_command, step_binary};

/// The pids that `ps -e` lists.
fn pids(ps_output: &str) -> Vec<u32> {
    ps_output.split_whitespace().map(|pid| pid.parse().expect("ps -o pid= prints numbers")).collect()
}

#[test]
fn ps_shows_only_the_containers_processes() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let listed = pids(&shell.run("ps -e -o pid="));
    assert_eq!(listed.len(), 2, "the shell and ps itself, and nothing else: {listed:?}");
    assert!(listed.contains(&1), "the shell is PID 1: {listed:?}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn a_shared_root_keeps_the_hosts_proc_intact() {
    // A throwaway mount namespace stands in for a systemd host, whose `/` is shared. After the
    // container has run in it, its /proc must still show its processes (here: its own shell).
    let script = r#"
        mount --make-rshared /
        "$0" -- ps -e -o pid=
        if test -r /proc/$$/stat; then echo host-proc=intact; else echo host-proc=broken; fi
    "#;
    let out = run_command(
        Command::new("unshare")
            .args(["--mount", "--propagation", "unchanged", "--", "sh", "-c", script])
            .arg(step_binary!()),
    );
    let listed: Vec<&str> =
        out.stdout.lines().map(str::trim).filter(|line| line.parse::<u32>().is_ok()).collect();
    assert_eq!(listed, ["1"], "ps as the container's PID 1 should list itself only: {out:?}");
    assert!(out.stdout.contains("host-proc=intact"), "the container's /proc leaked onto the host: {out:?}");
}
