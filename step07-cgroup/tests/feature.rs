//! Step 07's feature: the container runs in a cgroup of its own, whose limits the kernel
//! enforces. Measured from the host through the kernel's own accounting, as `cat` would show it.
//! `scripts/progression` checks that each of these fails against step 06.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::{cgroup_dir, cpu_share, is_workshop_cgroup, nr_throttled, unified};
use workshop_testkit::{Shell, child_running, step_binary};

/// Starts a shell in a container with `args`, and a busy loop in it; returns the shell and the
/// host pid of the container's first process.
fn busy_container(args: &[&str]) -> (Shell, nix::unistd::Pid) {
    let mut shell = Shell::start(&step_binary!(), args);
    let first = child_running(shell.runtime_pid(), "sh");
    shell.run("while :; do :; done &");
    (shell, first)
}

#[test]
fn a_cpu_quota_holds_a_busy_loop_at_a_fifth_of_a_cpu() {
    let (mut shell, first) = busy_container(&["--cpus", "0.2"]);
    let dir = cgroup_dir(first, "cpu");
    assert!(is_workshop_cgroup(&dir), "the container is not in a cgroup of its own: {}", dir.display());
    let throttled_before = nr_throttled(first);
    let share = cpu_share(first, 3);
    let throttled = nr_throttled(first) - throttled_before;
    shell.run("kill %1");
    assert_eq!(shell.exit(0), 0);
    assert!(
        (0.12..=0.25).contains(&share),
        "a busy loop under --cpus 0.2 used {:.1}% of a CPU",
        share * 100.0
    );
    // 3 s are 30 periods of 100 ms; the loop runs out of quota in nearly every one.
    assert!(throttled >= 20, "the cgroup was throttled in only {throttled} periods");
}

#[test]
fn without_a_quota_the_busy_loop_takes_a_whole_cpu() {
    let (mut shell, first) = busy_container(&[]);
    let dir = cgroup_dir(first, "cpu");
    assert!(is_workshop_cgroup(&dir), "the container is not in a cgroup of its own: {}", dir.display());
    let share = cpu_share(first, 3);
    shell.run("kill %1");
    assert_eq!(shell.exit(0), 0);
    assert!(share >= 0.5, "an unlimited busy loop used only {:.1}% of a CPU", share * 100.0);
}

/// Allocates and touches 96 MiB in the container's shell (dd's buffer); returns its status.
fn allocate_96_mib(memory: &str) -> String {
    let mut shell = Shell::start(&step_binary!(), &["--memory", memory]);
    let first = child_running(shell.runtime_pid(), "sh");
    let dir = cgroup_dir(first, "memory");
    assert!(is_workshop_cgroup(&dir), "the container is not in a cgroup of its own: {}", dir.display());
    let status = shell.run("dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null; echo status=$?");
    assert_eq!(shell.exit(0), 0);
    status
}

#[test]
fn a_memory_limit_oom_kills_what_allocates_beyond_it() {
    let status = allocate_96_mib("32m");
    assert!(status.ends_with("status=137"), "96 MiB under --memory 32m was not killed by SIGKILL: {status}");
}

#[test]
fn an_allocation_within_the_memory_limit_succeeds() {
    let status = allocate_96_mib("256m");
    assert!(status.ends_with("status=0"), "96 MiB under --memory 256m failed: {status}");
}

#[test]
fn a_pids_limit_stops_a_fork_loop() {
    let mut shell = Shell::start(&step_binary!(), &["--pids", "10"]);
    let first = child_running(shell.runtime_pid(), "sh");
    let out = shell.run("for i in $(seq 1 30); do sleep 60 & done");
    // Counted from the host: the shell itself cannot fork a `wc` any more.
    let dir = cgroup_dir(first, "pids");
    let current: u64 = std::fs::read_to_string(dir.join("pids.current")).unwrap().trim().parse().unwrap();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    let others: Vec<i32> =
        procs.lines().filter_map(|l| l.trim().parse().ok()).filter(|&pid| pid != first.as_raw()).collect();
    for &pid in &others {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert_eq!(shell.exit(0), 0);
    // busybox's sh says "can't fork", dash "Cannot fork".
    let said = out.to_lowercase();
    assert!(
        said.contains("can't fork") || said.contains("cannot fork"),
        "the fork loop was not stopped:\n{out}"
    );
    assert!(others.len() < 10, "{} processes besides the shell under --pids 10", others.len());
    assert!(current <= 10, "pids.current is {current} under --pids 10");
}

/// Runs the step on a pure v2 host, as most current distributions are: on one, as it is; on a
/// hybrid or v1 host, in a mount namespace of its own whose /sys/fs/cgroup is the cgroup2
/// filesystem (mounting it there again on a v2 host would fail: it is already mounted). On a
/// hybrid host that hierarchy has no cpu, memory or pids controller (they belong to v1); on a v2
/// host it has them.
fn on_a_v2_host(args: &[&str]) -> workshop_testkit::Output {
    workshop_testkit::run_command(&mut v2_host_command(args))
}

/// The command that runs the step with `args` on a v2 host: this one, when it is v2; on this
/// hybrid VM, in a mount namespace of its own with cgroup2 mounted at /sys/fs/cgroup.
fn v2_host_command(args: &[&str]) -> Command {
    if unified() {
        let mut command = Command::new(step_binary!());
        command.args(args);
        return command;
    }
    let script = r#"mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$@""#;
    let mut command = Command::new("unshare");
    command.args(["--mount", "sh", "-c", script, "sh"]).arg(step_binary!()).args(args);
    command
}

/// Runs `args` and `sleep 5` in a container on a v2 host (as above), and returns the
/// container's cgroup on the unified hierarchy, as the host sees it in /proc/PID/cgroup (from
/// step 12 on, the container's own view of it is `/`, the root of its cgroup namespace), and
/// the runtime's exit code.
fn v2_cgroup_seen_from_the_host(args: &[&str]) -> (String, Option<i32>) {
    let (path, _, code) = v2_cgroup_and_status_seen_from_the_host(args, |command| command);
    (path, code)
}

/// [`v2_cgroup_seen_from_the_host`], with the runtime's command changed by `wrap` first, and
/// the container's /proc/PID/status too.
fn v2_cgroup_and_status_seen_from_the_host(
    args: &[&str],
    wrap: impl FnOnce(&mut Command) -> &mut Command,
) -> (String, String, Option<i32>) {
    let mut command = v2_host_command(&[args, &["--", "sleep", "5"]].concat());
    let mut runtime = workshop_testkit::HostProcess::start(wrap(command.stdout(std::process::Stdio::null())));
    let first = child_running(runtime.pid(), "sleep");
    let membership = std::fs::read_to_string(format!("/proc/{first}/cgroup")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{first}/status")).unwrap_or_default();
    let path = membership.lines().find_map(|line| line.strip_prefix("0::")).unwrap_or_default().to_owned();
    (path, status, runtime.wait().expect("waiting for the runtime").code())
}

/// Where the cgroup2 hierarchy is mounted on the host: `/sys/fs/cgroup` or, on a hybrid host,
/// `/sys/fs/cgroup/unified`.
fn v2_on_the_host() -> &'static Path {
    if unified() { Path::new("/sys/fs/cgroup") } else { Path::new("/sys/fs/cgroup/unified") }
}

#[test]
fn on_cgroup_v2_the_container_gets_its_own_cgroup_which_goes_with_it() {
    let (path, code) = v2_cgroup_seen_from_the_host(&[]);
    assert_eq!(code, Some(0));
    assert!(path.starts_with("/workshop/step"), "not in a workshop cgroup on v2: {path:?}");
    let dir = v2_on_the_host().join(path.trim_start_matches('/'));
    assert!(!dir.exists(), "{} outlived the container", dir.display());
}

#[test]
fn on_cgroup_v2_limits_are_written_or_the_missing_controller_is_named() {
    let controllers = std::fs::read_to_string(v2_on_the_host().join("cgroup.controllers")).unwrap();
    let limits = ["--cpus", "0.5", "--memory", "64m", "--pids", "20"];
    if controllers.split_whitespace().any(|c| c == "cpu") {
        // A v2 host: the limits themselves are measured by the tests above.
        let (path, code) = v2_cgroup_seen_from_the_host(&limits);
        assert_eq!(code, Some(0));
        assert!(path.starts_with("/workshop/step"), "{path:?}");
    } else {
        let out = on_a_v2_host(&[&limits[..], &["true"]].concat());
        // This VM: the cpu controller is bound to a v1 hierarchy, so v2 cannot offer it.
        assert_eq!(out.code, 125, "{out:?}");
        workshop_testkit::contract::assert_one_line_error(&out.stderr, "'cpu' controller");
        assert!(out.stderr.contains("cgroup.controllers"), "{out:?}");
    }
}

/// Makes `command` run under a seccomp filter that answers clone3(2) with ENOSYS, as
/// Docker's default profile does (so that the C library falls back to clone): the
/// runtime under test must then fall back to clone(2) and the container join its cgroup itself.
fn without_clone3(command: &mut Command) -> &mut Command {
    const ARCH: u32 = if cfg!(target_arch = "x86_64") { 0xc000_003e } else { 0xc000_00b7 }; // AUDIT_ARCH_*
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        op(ld, 0, 0, 4), // seccomp_data.arch
        op(jeq, 0, 3, ARCH),
        op(ld, 0, 0, 0), // seccomp_data.nr
        op(jeq, 0, 1, libc::SYS_clone3 as u32),
        op(ret, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: between fork and exec the closure only makes two system calls on memory it owns.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
            let installed = libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                && libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &raw const program) == 0;
            if installed { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        })
    }
}

#[test]
fn on_cgroup_v2_without_clone3_the_container_joins_its_cgroup_itself() {
    // On v2 the runtime creates the container in its cgroup with clone3(CLONE_INTO_CGROUP);
    // where clone3 is refused, the container must still end up there, through the self-join.
    // Read from the host: from step 12 on, the container's own /proc/self/cgroup says `/`.
    let (path, status, code) = v2_cgroup_and_status_seen_from_the_host(&[], without_clone3);
    assert_eq!(code, Some(0));
    assert!(status.lines().any(|line| line == "Seccomp:\t2"), "not run under the filter: {status}");
    assert!(path.starts_with("/workshop/step"), "not in a workshop cgroup without clone3: {path:?}");
}
