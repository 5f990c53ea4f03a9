//! Step 12's feature: the defences behind the namespaces. Each test makes the attack an attacker
//! in the container would make, and checks that the kernel refuses it; `scripts/progression`
//! checks that each of these fails against the step before, where the attack works.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
use step10_overlay::image::DEFAULT_IMAGE;
use workshop_testkit::{Shell, TempDir, run, step_binary};

/// Docker's 14 default capabilities as /proc/PID/status shows a set of them.
const DOCKER_CAPS: &str = "00000000a80425fb";

/// Builds tests/attack.c as a static program in `dir`, readable and runnable by every user.
fn build_attack(dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attack.c");
    let built = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("attack"))
        .arg(&source)
        .output()
        .expect("gcc runs (install gcc and libc6-dev)");
    assert!(
        built.status.success(),
        "gcc must build tests/attack.c statically (install gcc and libc6-dev): {}",
        String::from_utf8_lossy(&built.stderr)
    );
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory with the attack program, and the volume option that shows it at /opt/attack.
fn attack_volume() -> (TempDir, String) {
    let tools = TempDir::new("attack");
    build_attack(tools.path());
    let volume = format!("{}:/opt/attack:ro", tools.path().display());
    (tools, volume)
}

#[test]
fn a_mount_in_a_nested_user_namespace_is_refused() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    // The way in to CVE-2022-0185 and its kind: a user namespace of one's own, where root has
    // every capability again, and a filesystem the kernel parses on its behalf.
    let nested = shell.run("unshare -U -r -m sh -c 'mount -t tmpfs attack /mnt && echo mounted' 2>&1");
    assert!(refused(&nested) && !nested.contains("mounted"), "{nested}");
    let user_ns = shell.run("unshare -U true 2>&1; echo status $?");
    assert!(refused(&user_ns) && user_ns.ends_with("status 1"), "{user_ns}");
    // Nor in the container's own mount namespace, nor into another namespace.
    let direct = shell.run("mount -t tmpfs attack /mnt 2>&1 && echo mounted");
    assert!(refused(&direct) && !direct.contains("mounted"), "{direct}");
    let enter = shell.run("nsenter -t 1 -m true 2>&1; echo status $?");
    assert!(refused(&enter) && !enter.ends_with("status 0"), "{enter}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_kernel_keyring_is_out_of_reach() {
    let (_tools, volume) = attack_volume();
    let mut shell = Shell::start(&step_binary!(), &["-v", &volume]);
    assert_eq!(shell.run("/opt/attack/attack add_key"), "add_key: refused: Operation not permitted");
    assert_eq!(shell.run("/opt/attack/attack keyctl"), "keyctl: refused: Operation not permitted");
    assert_eq!(shell.run("cat /proc/keys"), "", "/proc/keys lists keys");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn typing_into_a_terminal_with_tiocsti_is_refused() {
    let (_tools, volume) = attack_volume();
    let mut shell = Shell::start(&step_binary!(), &["-v", &volume]);
    // On a pty the attack program makes for itself, not on the test's terminal.
    assert_eq!(shell.run("/opt/attack/attack tiocsti"), "tiocsti: refused: Operation not permitted");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_hosts_files_in_proc_and_sys_are_masked() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    // Files: /dev/null, which reads as nothing. /proc/kcore is not on every kernel (not on this
    // one, say): the runtime masks what there is.
    for file in ["/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug", "/proc/timer_stats"] {
        if shell.run(&format!("test -e {file} && echo there")) != "there" {
            continue;
        }
        assert_eq!(shell.run(&format!("stat -c %t,%T {file}")), "1,3", "{file} is not /dev/null");
        assert_eq!(shell.run(&format!("cat {file} 2>&1; echo status $?")), "status 0", "{file}");
    }
    for always in ["/proc/keys", "/proc/timer_list"] {
        assert_eq!(shell.run(&format!("test -e {always} && echo there")), "there", "{always}");
    }
    // Directories: an empty read-only tmpfs (/sys/firmware has the host's acpi and memmap).
    for dir in ["/sys/firmware", "/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/devices/virtual/powercap"]
    {
        let listed = shell.run(&format!("test -d {dir} && ls -A {dir} | wc -l"));
        assert!(listed.is_empty() || listed == "0", "{dir} shows {listed} entries");
    }
    assert_eq!(shell.run("test -d /sys/firmware && echo there"), "there");
    let touched = shell.run("touch /sys/firmware/x 2>&1");
    assert!(touched.ends_with("Read-only file system"), "{touched}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_kernels_settings_are_read_only() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    // Opened for writing and closed, nothing written: on a step where the open succeeds, no
    // setting changes (and /proc/sysrq-trigger, where this kernel has it, triggers nothing).
    let mut probed = 0;
    for file in ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/hostname", "/proc/sysrq-trigger"] {
        if shell.run(&format!("test -e {file} && echo there")) != "there" {
            continue;
        }
        probed += 1;
        let refused = shell.run(&format!("(true > {file}) 2>&1 && echo opened"));
        assert!(refused.ends_with("Read-only file system"), "{file}: {refused}");
    }
    assert!(probed >= 2, "/proc/sys has its files");
    for dir in ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"] {
        let options = shell.run(&format!("awk '$2 == \"{dir}\" {{ print $4 }}' /proc/mounts"));
        if shell.run(&format!("test -e {dir} && echo there")) == "there" {
            assert!(options.split(',').any(|o| o == "ro"), "{dir} is mounted {options:?}");
        }
    }
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn root_has_dockers_capabilities_and_no_more() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    // /proc/self is grep, a command the shell started: what exec gave it.
    let status = shell.run("grep -E '^Cap' /proc/self/status");
    let expected = format!(
        "CapInh:\t{DOCKER_CAPS}\nCapPrm:\t{DOCKER_CAPS}\nCapEff:\t{DOCKER_CAPS}\nCapBnd:\t{DOCKER_CAPS}\nCapAmb:\t0000000000000000"
    );
    assert_eq!(status, expected);
    // Without CAP_SYS_ADMIN, the hostname is the runtime's to set, as in Docker.
    let renamed = shell.run("hostname attacker 2>&1; hostname");
    assert!(renamed.ends_with("\ncontainer") && renamed.lines().count() == 2, "{renamed}");
    assert_eq!(shell.exit(0), 0);
}

/// Whether a tool said EPERM, as busybox's or util-linux's tools say it.
fn refused(output: &str) -> bool {
    let output = output.to_lowercase();
    output.contains("operation not permitted") || output.contains("permission denied")
}

/// Whether ping's summary says the one ping was answered (busybox's or iputils').
fn received_one(output: &str) -> bool {
    output.contains(", 1 packets received") || output.contains(", 1 received")
}

/// Pings the container's gateway (the host's bridge) once.
fn ping_gateway(shell: &mut Shell) -> String {
    shell.run("ping -c 1 -W 2 $(ip route | awk '/^default/ { print $3 }') 2>&1")
}

#[test]
fn cap_drop_and_cap_add_change_what_root_may_do() {
    let mut dropped = Shell::start(&step_binary!(), &["--cap-drop", "NET_RAW"]);
    assert_eq!(dropped.run("grep CapBnd /proc/self/status"), "CapBnd:\t00000000a80405fb");
    let refused = ping_gateway(&mut dropped);
    assert!(self::refused(&refused) && !received_one(&refused), "{refused}");
    assert_eq!(dropped.exit(0), 0);

    let mut added = Shell::start(&step_binary!(), &["--cap-drop", "all", "--cap-add", "cap_net_raw"]);
    assert_eq!(added.run("grep CapBnd /proc/self/status"), "CapBnd:\t0000000000002000");
    let pinged = ping_gateway(&mut added);
    assert!(received_one(&pinged), "{pinged}");
    assert_eq!(added.exit(0), 0);

    let all = run(&step_binary!(), &["--cap-add", "ALL", "--", "grep", "CapBnd", "/proc/self/status"]);
    assert!(all.stdout.contains("CapBnd:\t000001ffffffffff"), "{all:?}");
    let unknown = run(&step_binary!(), &["--cap-add", "NET_BOGUS", "true"]);
    assert_eq!(unknown.code, 125, "{unknown:?}");
    workshop_testkit::contract::assert_one_line_error(&unknown.stderr, "unknown capability \"NET_BOGUS\"");
    let bogus = run(&step_binary!(), &["--security-opt", "apparmor=unconfined", "true"]);
    assert_eq!(bogus.code, 125, "{bogus:?}");
    workshop_testkit::contract::assert_one_line_error(
        &bogus.stderr,
        "seccomp=unconfined and systempaths=unconfined",
    );
}

#[test]
fn no_new_privs_and_seccomp_are_on() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    assert_eq!(
        shell.run("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"),
        "NoNewPrivs:\t1\nSeccomp:\t2"
    );
    // And a command's command (grep started by a shell started by the shell) still has them.
    assert_eq!(shell.run("sh -c \"grep '^Seccomp:' /proc/self/status\""), "Seccomp:\t2");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn a_setuid_root_binary_in_the_image_gives_a_user_nothing() {
    let (tools, _) = attack_volume();
    // An image: the default image's base, and a layer with a setuid-root copy of `attack ids`.
    assert_eq!(run(&step_binary!(), &["true"]).code, 0, "the default image is built");
    let image = TempDir::new("suid-image");
    let dir = image.path();
    // A layer is a real directory of its image: a copy of the default image's base.
    let base = Path::new(DEFAULT_IMAGE).join("base");
    let copied = Command::new("cp").arg("-a").arg(&base).arg(dir.join("base")).status().unwrap();
    assert!(copied.success(), "copying {}", base.display());
    let bin = dir.join("suid/usr/local/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(tools.path().join("attack"), bin.join("attack")).unwrap();
    fs::copy(tools.path().join("attack"), bin.join("suid-ids")).unwrap();
    fs::set_permissions(bin.join("suid-ids"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(dir.join("layers"), "base\nsuid\n").unwrap();

    let mut shell = Shell::start(&step_binary!(), &["--image", dir.to_str().unwrap()]);
    assert_eq!(shell.run("stat -c '%A %u' /usr/local/bin/suid-ids"), "-rwsr-xr-x 0", "setuid root inside");
    // User 1000 runs it: the setuid bit would make it root in the container.
    let ids = shell.run("/usr/local/bin/attack as 1000 /usr/local/bin/suid-ids ids");
    assert_eq!(ids, "uid=1000 euid=1000");
    assert_eq!(shell.exit(0), 0);
}

/// Whether the host's cgroups are v2 (the container's, then, too).
fn cgroup_v2() -> bool {
    statfs("/sys/fs/cgroup").expect("statfs /sys/fs/cgroup").filesystem_type() == CGROUP2_SUPER_MAGIC
}

#[test]
fn the_container_sees_its_own_cgroup_as_the_root() {
    let mut shell = Shell::start(&step_binary!(), &["--memory", "64m"]);
    // Every hierarchy's line ends in `/`: v2 has one line, `0::/`; v1 one per hierarchy.
    let lines = shell.run("cat /proc/self/cgroup");
    assert!(lines.lines().all(|line| line.ends_with(":/")), "{lines}");
    if cgroup_v2() {
        assert_eq!(lines, "0::/");
    } else {
        assert!(lines.contains(":memory:/"), "{lines}");
    }
    // The cgroup filesystem shows the container's own cgroup, read-only: its limit, no other.
    let limit =
        if cgroup_v2() { "/sys/fs/cgroup/memory.max" } else { "/sys/fs/cgroup/memory/memory.limit_in_bytes" };
    assert_eq!(shell.run(&format!("cat {limit}")), "67108864");
    assert_eq!(shell.run("find /sys/fs/cgroup -mindepth 1 -name 'workshop*'"), "", "the host's tree shows");
    let attack = if cgroup_v2() { "/sys/fs/cgroup/attack" } else { "/sys/fs/cgroup/memory/attack" };
    let made = shell.run(&format!("mkdir {attack} 2>&1"));
    assert!(made.ends_with("Read-only file system"), "{made}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn security_opt_turns_a_defence_off_for_the_exercise() {
    // Without the filter, the nested user namespace is there again (capabilities do not stop
    // it: making a user namespace needs none)...
    let mut shell = Shell::start(&step_binary!(), &["--security-opt", "seccomp=unconfined"]);
    assert_eq!(shell.run("grep '^Seccomp:' /proc/self/status"), "Seccomp:\t0");
    assert_eq!(
        shell.run("unshare -U -r -m sh -c 'mount -t tmpfs attack /mnt && echo mounted' 2>&1"),
        "mounted"
    );
    // ...but the masks still stand: a new /proc, which would show what they hide, is refused
    // by the kernel in there, because the container's /proc has mounts over parts of it.
    let proc = shell.run("unshare -U -r -m -p -f sh -c 'mount -t proc proc /mnt && echo mounted' 2>&1");
    assert!(!proc.contains("mounted"), "{proc}");
    assert_eq!(shell.exit(0), 0);
    let unmasked = run(
        &step_binary!(),
        &["--security-opt", "systempaths=unconfined", "--", "ls", "-A", "/sys/firmware"],
    );
    assert!(unmasked.stdout.contains("acpi") || unmasked.stdout.contains("memmap"), "{unmasked:?}");
}

/// A container name unique to this test process and call.
fn unique(what: &str) -> String {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("h{}-{}-{what}", std::process::id(), COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

#[test]
fn processes_that_exec_starts_are_restricted_too() {
    let name = unique("exec");
    let mut shell = Shell::start(&step_binary!(), &["--name", &name, "--cap-drop", "NET_RAW"]);
    shell.run(":");
    let exec = |script: &str| {
        let out = run(&step_binary!(), &["exec", &name, "--", "sh", "-c", script]);
        let printed: Vec<&str> =
            out.stdout.lines().filter(|l| !l.contains("inside the container!")).collect();
        (out.code, printed.join("\n"))
    };
    // The container's capabilities (without NET_RAW, as it was started), not all of them, and
    // no_new_privs and the filter: setns into a user namespace gives every capability in it.
    let (code, status) = exec("grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(code, 0, "{status}");
    assert_eq!(
        status,
        "CapEff:\t00000000a80405fb\nCapBnd:\t00000000a80405fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2"
    );
    let (_, nested) =
        exec("unshare -U -r -m sh -c 'mount -t tmpfs attack /mnt && echo mounted' 2>&1; echo status $?");
    assert!(refused(&nested) && !nested.contains("mounted") && nested.ends_with("status 1"), "{nested}");
    // The masks and the cgroup namespace are the container's namespaces': exec is in them.
    let (_, seen) = exec("stat -c %t,%T /proc/keys; cat /proc/self/cgroup");
    let mut lines = seen.lines();
    assert_eq!(lines.next(), Some("1,3"), "{seen}");
    assert!(lines.all(|line| line.ends_with(":/")), "{seen}");
    assert_eq!(shell.exit(0), 0);
}
