//! Step 04's feature: the container's first process is PID 1 and cannot reach the host's.
//! `scripts/progression` checks that each of these fails against step 03.

use workshop_testkit::{HostProcess, Shell, step_binary};

#[test]
fn the_shell_is_pid_1() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    assert_eq!(shell.run("echo $$"), "1");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_banner_shows_pid_1() {
    let out = workshop_testkit::run(&step_binary!(), &["true"]);
    assert!(out.stdout.contains("Container [    1] - inside the container!"), "{out:?}");
}

#[test]
fn host_processes_cannot_be_signalled_from_inside() {
    let mut victim = HostProcess::spawn("sleep", &["300"]);
    let mut shell = Shell::start(&step_binary!(), &[]);
    let answer = shell.run(&format!("kill -9 {} 2>/dev/null; echo status=$?", victim.pid()));
    assert_eq!(answer, "status=1", "kill of a host pid should fail inside");
    assert!(victim.running(), "a host process was killed from inside the container");
    assert_eq!(shell.exit(0), 0);
}

/// Starts the runtime without a terminal; returns it and its container's first process.
fn start(args: &[&str]) -> (HostProcess, nix::unistd::Pid) {
    workshop_testkit::require_root();
    let runtime = HostProcess::start(
        std::process::Command::new(step_binary!())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null()),
    );
    let runtime_pid = nix::unistd::Pid::from_raw(runtime.id() as i32);
    let first = workshop_testkit::eventually("the container's first process", || {
        let children =
            std::fs::read_to_string(format!("/proc/{runtime_pid}/task/{runtime_pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok().map(nix::unistd::Pid::from_raw)
    });
    (runtime, first)
}

/// The children of `pid` that are zombies (ended, not yet reaped).
fn zombie_children(pid: nix::unistd::Pid) -> usize {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .count()
}

#[test]
fn with_init_sigterm_stops_a_command_that_is_not_a_shell() {
    let (mut runtime, _) = start(&["--init", "--", "sleep", "300"]);
    workshop_testkit::child_running(
        workshop_testkit::eventually("init", || {
            let pid = runtime.id();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
            children.split_whitespace().next()?.parse().ok().map(nix::unistd::Pid::from_raw)
        }),
        "sleep",
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(runtime.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // sleep itself died of SIGTERM (143): not ignored by PID 1, not killed after the grace period (137).
    assert_eq!(runtime.wait().unwrap().code(), Some(143));
}

#[test]
fn with_init_orphans_are_reaped() {
    // The subshell starts `sleep 0.5` and exits: the sleep is an orphan, re-parented to PID 1.
    let orphan_maker = ["sh", "-c", "(sleep 0.5 &); exec sleep 300"];
    // Without an init, PID 1 is the exec'd `sleep 300`, which never waits: a zombie appears.
    let (mut runtime, first) = start(&orphan_maker);
    workshop_testkit::eventually("a zombie under a PID 1 that does not reap", || {
        (zombie_children(first) == 1).then_some(())
    });
    runtime.kill().unwrap();
    runtime.wait().unwrap();

    let mut args = vec!["--init", "--"];
    args.extend(orphan_maker);
    let (mut runtime, init) = start(&args);
    let children = || {
        let listed =
            std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
        listed.split_whitespace().count()
    };
    workshop_testkit::eventually("the orphan to be re-parented to init", || (children() == 2).then_some(()));
    workshop_testkit::eventually("init to reap it", || {
        (children() == 1 && zombie_children(init) == 0).then_some(())
    });
    runtime.kill().unwrap();
    runtime.wait().unwrap();
}
