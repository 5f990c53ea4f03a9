//! Step 11's feature: `exec NAME` starts a command inside a running container, in its
//! namespaces and cgroup, and `ps` lists the running ones. Every name is unique to this test
//! process (others' containers run on this host at the same time). `scripts/progression`
//! checks that each of these fails against step 10's binary.

#[path = "../../step07-cgroup/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::unistd::Pid;
use workshop_testkit::contract::{assert_one_line_error, refused};
use workshop_testkit::{
    HostProcess, Output, Shell, TempDir, alive, child_running, eventually, named_after, run, step_binary,
};

/// A container name no other test, here or in another process, uses.
fn unique(what: &str) -> String {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    format!("t{}-{}-{what}", std::process::id(), COUNT.fetch_add(1, Ordering::SeqCst))
}

/// A container's shell, started with `--name name` and `args`, and its first process's host pid.
fn container(name: &str, args: &[&str]) -> (Shell, Pid) {
    let mut all = vec!["--name", name];
    all.extend_from_slice(args);
    let shell = Shell::start(&step_binary!(), &all);
    let first = child_running(shell.runtime_pid(), "sh");
    (shell, first)
}

/// `exec name argv…`, without a terminal.
fn exec(name: &str, argv: &[&str]) -> Output {
    let mut args = vec!["exec", name, "--"];
    args.extend_from_slice(argv);
    run(&step_binary!(), &args)
}

/// What the command printed: exec's output without its banner.
fn printed(out: &Output) -> String {
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.contains("inside the container!")).collect();
    lines.join("\n").trim().to_owned()
}

/// `exec name argv…` started in the background (stdin from /dev/null), and the host pid of the
/// command once it runs `comm`: exec's helper is its child, the command the helper's.
fn exec_in_background(name: &str, argv: &[&str], comm: &str) -> (HostProcess, Pid) {
    let exec = HostProcess::start(
        Command::new(step_binary!())
            .args(["exec", name, "--"])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let helper = child_running(exec.pid(), &runtime_comm());
    let command = child_running(helper, comm);
    (exec, command)
}

/// The name (comm) of a process running the binary under test, such as exec's helper: the
/// binary's file name (a later step's, under progression), cut to 15 bytes by the kernel.
fn runtime_comm() -> String {
    let binary = step_binary!();
    binary.file_name().unwrap().to_string_lossy().chars().take(15).collect()
}

fn namespace(pid: Pid, ns: &str) -> (u64, u64) {
    let meta = fs::metadata(format!("/proc/{pid}/ns/{ns}")).unwrap();
    (meta.dev(), meta.ino())
}

#[test]
fn exec_reads_a_file_written_in_the_container() {
    let name = unique("file");
    let (mut shell, _) = container(&name, &[]);
    shell.run("echo written-by-the-container > /root/mark");
    let out = exec(&name, &["cat", "/root/mark"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(printed(&out), "written-by-the-container", "{out:?}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn what_exec_writes_is_in_the_published_writable_layer_on_the_host() {
    let name = unique("upper");
    let (shell, _) = container(&name, &[]);
    let out = exec(&name, &["sh", "-c", "echo written-by-exec > /root/mark"]);
    assert_eq!(out.code, 0, "{out:?}");
    let published = fs::read_dir("/run/workshop")
        .unwrap()
        .filter_map(|entry| fs::read_to_string(entry.unwrap().path().join("container")).ok())
        .find(|text| text.lines().any(|line| line == format!("name={name}")))
        .unwrap_or_else(|| panic!("no container named {name} is published under /run/workshop"));
    let upper = published.lines().find_map(|line| line.strip_prefix("upper=")).expect("an upper= line");
    let mark = fs::read_to_string(Path::new(upper).join("root/mark"));
    assert_eq!(mark.ok().as_deref(), Some("written-by-exec\n"), "upper={upper}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn exec_sees_the_containers_hostname_and_address() {
    let name = unique("host");
    let hostname = format!("h{}", std::process::id());
    let (mut shell, _) = container(&name, &["--hostname", &hostname]);
    let address = shell.run("ip -4 -o addr show dev eth0 | awk '{ print $4 }'");
    assert!(address.starts_with("10."), "the container has an address on eth0: {address}");
    let out = exec(&name, &["sh", "-c", "hostname; ip -4 -o addr show dev eth0 | awk '{ print $4 }'"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(printed(&out), format!("{hostname}\n{address}"), "{out:?}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn exec_is_not_pid_1_and_ps_shows_both() {
    let name = unique("pid");
    let (shell, _) = container(&name, &[]);
    let out = exec(&name, &["sh", "-c", "echo $$; ps -e -o pid,comm; true"]);
    assert_eq!(out.code, 0, "{out:?}");
    let printed = printed(&out);
    let mut lines = printed.lines();
    let own: u32 = lines.next().unwrap().trim().parse().unwrap();
    assert!(own > 1, "exec's shell is the container's PID {own}");
    let ps: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(ps.contains(&vec!["1", "sh"]), "ps in exec shows the container's PID 1, its shell: {printed}");
    assert!(ps.contains(&vec![own.to_string().as_str(), "sh"]), "and exec's own shell: {printed}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn exec_is_in_every_namespace_and_the_cgroup_of_the_container() {
    let name = unique("ns");
    let (shell, first) = container(&name, &[]);
    let (mut exec, command) = exec_in_background(&name, &["sleep", "300"], "sleep");
    for ns in ["user", "mnt", "uts", "ipc", "net", "pid", "cgroup"] {
        assert_eq!(
            namespace(command, ns),
            namespace(first, ns),
            "exec is not in the container's {ns} namespace"
        );
    }
    let root = |pid: Pid| {
        let meta = fs::metadata(format!("/proc/{pid}/root/"));
        meta.map(|m| (m.dev(), m.ino())).unwrap_or_else(|e| panic!("/proc/{pid}/root: {e}"))
    };
    assert_eq!(root(command), root(first), "exec's / is not the container's");
    assert_ne!(root(command), root(Pid::this()), "exec's / is the host's");
    for controller in ["memory", "pids"] {
        let dir = common::cgroup_dir(first, controller);
        assert!(common::is_workshop_cgroup(&dir), "{}", dir.display());
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|pid| pid.trim() == command.to_string()),
            "exec's command {command} is not in the container's {controller} cgroup {}:\n{procs}",
            dir.display()
        );
    }
    let uid = fs::read_to_string(format!("/proc/{command}/status")).unwrap();
    let uid = uid.lines().find(|l| l.starts_with("Uid:")).unwrap().to_owned();
    assert!(uid.split_whitespace().skip(1).all(|id| id == "100000"), "not root inside: {uid}");
    exec.kill().unwrap();
    drop(exec);
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn exec_is_under_the_containers_memory_limit() {
    let name = unique("memory");
    let (mut shell, _) = container(&name, &["--memory", "32m"]);
    let script = "dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null; echo status=$?";
    let out = exec(&name, &["sh", "-c", script]);
    assert_eq!(printed(&out), "status=137", "96 MiB under --memory 32m in exec was not OOM-killed: {out:?}");
    let within =
        exec(&name, &["sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null; echo status=$?"]);
    assert_eq!(printed(&within), "status=0", "{within:?}");
    assert_eq!(shell.run("echo alive"), "alive");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn root_in_exec_cannot_write_a_host_root_file() {
    let dir = TempDir::new("host-file");
    let file = dir.path().join("owned-by-host-root");
    fs::write(&file, "host\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let name = unique("volume");
    let volume = format!("{}:/data", dir.path().display());
    let (shell, _) = container(&name, &["-v", &volume]);
    let out = exec(&name, &["sh", "-c", "id -u; echo changed > /data/owned-by-host-root && echo WROTE"]);
    let printed = printed(&out);
    assert!(printed.starts_with('0'), "exec is root inside: {out:?}");
    assert!(!printed.contains("WROTE"), "root in exec wrote a host root file: {out:?}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "host\n");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn an_exec_sleep_is_killed_when_the_container_ends() {
    let name = unique("dies");
    let (shell, _) = container(&name, &[]);
    let (mut exec, sleep) = exec_in_background(&name, &["sleep", "300"], "sleep");
    assert!(alive(sleep));
    assert_eq!(shell.exit(0), 0);
    eventually("exec's sleep to die with the container", || (!alive(sleep)).then_some(()));
    let status = exec.wait().unwrap();
    assert_eq!(status.code(), Some(137), "exec reports its command killed by SIGKILL");
}

#[test]
fn two_containers_are_entered_separately() {
    let (a, b) = (unique("a"), unique("b"));
    let (mut shell_a, _) = container(&a, &["--hostname", "host-a"]);
    let (mut shell_b, _) = container(&b, &["--hostname", "host-b"]);
    shell_a.run("echo in-a > /root/which");
    shell_b.run("echo in-b > /root/which");
    for (name, expected) in [(&a, "host-a\nin-a"), (&b, "host-b\nin-b")] {
        let out = exec(name, &["sh", "-c", "hostname; cat /root/which"]);
        assert_eq!(printed(&out), expected, "{out:?}");
    }
    assert_eq!(shell_a.exit(0), 0);
    assert_eq!(shell_b.exit(0), 0);
}

#[test]
fn exec_into_no_such_container_fails_cleanly() {
    let out = exec(&unique("nobody"), &["true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert_one_line_error(&out.stderr, "no container is named");
}

#[test]
fn exec_into_a_container_that_ended_fails_cleanly() {
    let name = unique("ended");
    let (shell, _) = container(&name, &[]);
    assert_eq!(shell.exit(0), 0);
    let out = exec(&name, &["true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert_one_line_error(&out.stderr, &name);
}

#[test]
fn a_container_whose_runtime_was_killed_is_not_entered_and_frees_its_name() {
    let name = unique("killed");
    let mut runtime = HostProcess::start(
        Command::new(step_binary!())
            .args(["--name", &name, "sleep", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let sleep = child_running(runtime.pid(), "sleep");
    assert_eq!(printed(&exec(&name, &["echo", "entered"])), "entered");
    // SIGKILL: the runtime cannot remove its state directory; the container dies with it.
    runtime.kill().unwrap();
    runtime.wait().unwrap();
    eventually("the container to die with its runtime", || (!alive(sleep)).then_some(()));
    let out = exec(&name, &["true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert_one_line_error(&out.stderr, &name);
    let again = run(&step_binary!(), &["--name", &name, "true"]);
    assert_eq!(again.code, 0, "the name of a dead container is free again: {again:?}");
}

#[test]
fn exec_passes_the_exit_code_on() {
    let name = unique("codes");
    let (shell, _) = container(&name, &[]);
    assert_eq!(exec(&name, &["sh", "-c", "exit 7"]).code, 7);
    let missing = exec(&name, &["no-such-command-in-the-workshop"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert_one_line_error(&missing.stderr, "not found");
    assert_eq!(exec(&name, &["sh", "-c", "kill -TERM $$"]).code, 128 + 15);
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn a_taken_name_is_refused() {
    let name = unique("taken");
    let (shell, _) = container(&name, &[]);
    refused(Command::new(step_binary!()).args(["--name", &name, "true"]), "is taken");
    assert_eq!(shell.exit(0), 0);
    // Free again once that container has ended.
    let out = run(&step_binary!(), &["--name", &name, "true"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn of_runtimes_started_at_once_with_one_name_one_runs() {
    let name = unique("race");
    let mut runtimes: Vec<HostProcess> = (0..4)
        .map(|_| {
            HostProcess::start(
                Command::new(step_binary!())
                    .args(["--name", &name, "sleep", "60"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
        })
        .collect();
    let refused = eventually("three of four runtimes to be refused", || {
        let ended: Vec<i32> =
            runtimes.iter_mut().filter_map(|r| r.try_wait().unwrap()).filter_map(|s| s.code()).collect();
        (ended.len() >= 3).then_some(ended)
    });
    assert_eq!(refused, vec![125; 3], "the others are refused with 125");
    let running: Vec<&mut HostProcess> =
        runtimes.iter_mut().filter_map(|r| r.running().then_some(r)).collect();
    assert_eq!(running.len(), 1, "exactly one container runs under the name");
    child_running(running[0].pid(), "sleep");
    let entered = exec(&name, &["echo", "entered"]);
    assert_eq!(printed(&entered), "entered", "{entered:?}");
}

#[test]
fn exec_leaves_nothing_behind() {
    let name = unique("clean");
    let (shell, first) = container(&name, &[]);
    let child = Command::new(step_binary!())
        .args(["exec", &name, "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let exec_pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(named_after(exec_pid).is_empty(), "exec left {:?}", named_after(exec_pid));
    let dir = common::cgroup_dir(first, "memory");
    let procs: Vec<String> =
        fs::read_to_string(dir.join("cgroup.procs")).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(procs, vec![first.to_string()], "only the container's shell is left in its cgroup");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn exec_holds_no_file_descriptor_but_stdio() {
    let name = unique("fds");
    let (shell, _) = container(&name, &[]);
    // ls opens the directory it lists: that is the one descriptor beyond 0, 1 and 2.
    let out = exec(&name, &["ls", "/proc/self/fd"]);
    let printed = printed(&out);
    let fds: BTreeSet<&str> = printed.split_whitespace().collect();
    assert_eq!(fds, BTreeSet::from(["0", "1", "2", "3"]), "{out:?}");
    assert_eq!(shell.exit(0), 0);
}

/// The number of `pid` in the innermost PID namespace it is in (the last field of NSpid).
fn pid_inside(pid: Pid) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap();
    nspid.split_whitespace().last().unwrap().to_owned()
}

/// runc's CVE-2016-9962: root of the container reaches into exec's process while it is inside
/// the container but has not exec'd yet, holding the runtime's descriptors. The window is held
/// open here by making exec's stdout a full pipe: its banner, printed just before the exec,
/// blocks.
#[test]
fn root_inside_cannot_reach_into_exec_before_it_has_exec_d() {
    use std::io::{Read, Write};
    use std::os::fd::{AsFd, OwnedFd};

    use nix::fcntl::{FcntlArg, OFlag, fcntl};

    let name = unique("cve");
    let (mut shell, _) = container(&name, &[]);
    let (mut reader, writer) = std::io::pipe().unwrap();
    let flags = OFlag::from_bits_truncate(fcntl(writer.as_fd(), FcntlArg::F_GETFL).unwrap());
    fcntl(writer.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
    let mut full = std::fs::File::from(OwnedFd::from(writer.try_clone().unwrap()));
    while full.write(&[b'x'; 4096]).is_ok() {}
    fcntl(writer.as_fd(), FcntlArg::F_SETFL(flags)).unwrap();
    drop(full);
    let exec = HostProcess::start(
        Command::new(step_binary!())
            .args(["exec", &name, "--", "sleep", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(writer))),
    );
    let helper = child_running(exec.pid(), &runtime_comm());
    // Forked, in the container, not exec'd: its name is still the runtime's.
    let waiting = child_running(helper, &runtime_comm());
    let inside = pid_inside(waiting);
    let attack = format!(
        "ls /proc/{inside}/fd >/dev/null 2>&1 && echo fds-read || echo fds-denied; \
         cat /proc/{inside}/environ >/dev/null 2>&1 && echo environ-read || echo environ-denied"
    );
    assert_eq!(
        shell.run(&attack),
        "fds-denied\nenviron-denied",
        "root inside reached into exec before its exec"
    );
    // Let it go on: once it has exec'd, it is a process of the container like any other, and
    // the same attack reads it (so the attack itself works).
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let sleep = child_running(helper, "sleep");
    assert_eq!(sleep, waiting, "the process that waited is the one that exec'd sleep");
    assert_eq!(
        shell.run(&attack),
        "fds-read\nenviron-read",
        "the attack does not work even on a plain process"
    );
    drop(exec);
    drain.join().unwrap();
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn an_interactive_exec_is_a_second_shell_in_the_container() {
    let name = unique("shell");
    let (mut first, _) = container(&name, &[]);
    let mut second = Shell::start(&step_binary!(), &["exec", &name]);
    assert_eq!(second.run("[ -t 0 ] && [ -t 1 ] && echo terminal"), "terminal");
    assert!(second.run("set -o | grep monitor").contains("on"), "no job control in exec's shell");
    let own = second.run("echo $$");
    assert_ne!(own, "1");
    second.run("echo from-the-second-shell > /tmp/note");
    assert_eq!(first.run("cat /tmp/note"), "from-the-second-shell");
    assert!(first.run("ps -e -o pid,comm").lines().any(|l| l.split_whitespace().eq([own.as_str(), "sh"])));
    second.session.send_line("exit 3").unwrap();
    assert_eq!(second.wait(), 3);
    assert_eq!(first.exit(0), 0);
}

#[test]
fn exec_joins_one_namespace_at_a_time_through_proc_too() {
    let name = unique("files");
    let (shell, first) = container(&name, &["--hostname", "by-files"]);
    let out = workshop_testkit::run_command(
        Command::new(step_binary!())
            .args(["exec", &name, "--", "sh", "-c", "hostname; readlink /proc/1/ns/pid"])
            .env("WORKSHOP_SETNS", "files"),
    );
    let host_view = fs::read_link(format!("/proc/{first}/ns/pid")).unwrap();
    assert_eq!(printed(&out), format!("by-files\n{}", host_view.display()), "{out:?}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn ps_lists_the_running_containers() {
    let name = unique("ps");
    let (shell, first) = container(&name, &[]);
    let out = run(&step_binary!(), &["ps"]);
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.lines().find(|l| l.split_whitespace().next() == Some(&name));
    let fields: Vec<&str> =
        line.unwrap_or_else(|| panic!("ps does not list {name}: {out:?}")).split_whitespace().collect();
    // NAME PID DATE TIME PROCESSES COMMAND
    assert_eq!(fields[1], first.to_string(), "ps shows the first process's host pid: {fields:?}");
    assert_eq!(fields[4], "1", "one process, the shell: {fields:?}");
    assert_eq!(fields[5], "/bin/sh", "{fields:?}");
    assert_eq!(shell.exit(0), 0);
    let after = run(&step_binary!(), &["ps"]);
    assert!(!after.stdout.contains(&name), "an ended container is listed: {after:?}");
}
