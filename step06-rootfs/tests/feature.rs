//! Step 06's feature: the container's `/` is a rootfs of its own, with the mounts a Linux system
//! expects, the runtime's /etc files, volumes, and no way back to the host's tree.
//! `scripts/progression` checks that each of these fails against step 05.

use std::fs;
use std::path::Path;
use std::process::Command;

mod common;

use workshop_testkit::{Shell, TempDir, host, run, run_command, step_binary};

#[test]
fn the_root_is_the_rootfs_and_the_host_is_out_of_sight() {
    let host_only = std::env::current_exe().unwrap(); // this test program exists on the host only
    let mut shell = Shell::start(&step_binary!(), &[]);
    assert!(shell.run("cat /etc/workshop-rootfs").starts_with("# A rootfs built by the container workshop"));
    assert_eq!(shell.run(&format!("test -e {} && echo visible || echo gone", host_only.display())), "gone");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_mount_table_is_the_containers_own() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let mounts = shell.run("cut -d' ' -f5,9 /proc/self/mountinfo");
    let expected = [
        "/ ",
        "/proc proc",
        "/sys sysfs",
        "/dev tmpfs",
        "/dev/pts devpts",
        "/dev/shm tmpfs",
        "/tmp tmpfs",
        "/run tmpfs",
        "/etc/hostname ",
        "/etc/hosts ",
        "/etc/resolv.conf ",
    ];
    // Later steps may mount more of the same kind: the mounts under /sys that a bind of the
    // host's /sys brings along, device nodes bound into /dev and /dev/console (step 08's user
    // namespace), and step 12's masks and read-only binds over parts of /proc. Nothing else,
    // and nothing of the host's tree.
    let later = |line: &&str| {
        line.starts_with("/sys/") || line.starts_with("/proc/") || line.starts_with("/dev/console ") || {
            let point = line.split(' ').next().unwrap_or("");
            point
                .strip_prefix("/dev/")
                .is_some_and(|dev| ["null", "zero", "full", "random", "urandom", "tty"].contains(&dev))
        }
    };
    let lines: Vec<&str> = mounts.lines().filter(|line| !later(line)).collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "no mount but the container's own (the old root is gone):\n{mounts}"
    );
    for (line, want) in lines.iter().zip(expected) {
        assert!(line.starts_with(want), "expected a mount {want:?}, got {line:?} in\n{mounts}");
    }
    assert_eq!(
        shell.run("touch /sys/probe 2>&1 || echo refused").lines().last(),
        Some("refused"),
        "/sys is read-only"
    );
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn dev_holds_only_the_harmless_devices() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    // /dev/console, the container's own terminal, comes with step 08 (on a terminal only).
    let listing = shell.run("ls /dev | grep -vx console | tr '\\n' ' '");
    assert_eq!(listing, "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero");
    assert_eq!(shell.run("echo gone > /dev/null && head -c 5 /dev/zero | wc -c"), "5");
    assert_eq!(shell.run("head -c 16 /dev/urandom | wc -c"), "16");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn etc_files_come_from_the_runtime_and_the_image_is_untouched() {
    let image_hostname = fs::read("/var/lib/workshop/rootfs/etc/hostname").ok();
    let mut shell = Shell::start(&step_binary!(), &["--hostname", "web-2"]);
    assert_eq!(shell.run("cat /etc/hostname"), "web-2");
    assert!(shell.run("cat /etc/hosts").contains("web-2"));
    assert_eq!(shell.run("cat /etc/resolv.conf"), host("cat /etc/resolv.conf"));
    assert_eq!(shell.exit(0), 0);
    assert_eq!(fs::read("/var/lib/workshop/rootfs/etc/hostname").ok(), image_hostname, "the image changed");
}

#[test]
fn volumes_are_mounted_read_write_or_read_only() {
    let data = TempDir::new("volume-rw");
    // Writable by anyone: from step 08 on, root in the container is not root on the host.
    fs::set_permissions(data.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let config = TempDir::new("volume-ro");
    fs::write(config.path().join("setting"), "from the host\n").unwrap();
    let rw = format!("{}:/data", data.path().display());
    let ro = format!("{}:/srv/config:ro", config.path().display());
    let mut shell = Shell::start(&step_binary!(), &["-v", &rw, "--volume", &ro]);
    shell.run("echo from the container > /data/note");
    assert_eq!(fs::read_to_string(data.path().join("note")).unwrap(), "from the container\n");
    assert_eq!(shell.run("cat /srv/config/setting"), "from the host");
    let refused = shell.run("echo x > /srv/config/setting 2>&1 || echo refused");
    assert!(refused.ends_with("refused") && refused.contains("Read-only"), "{refused}");
    assert_eq!(shell.exit(0), 0);
    assert_eq!(fs::read_to_string(config.path().join("setting")).unwrap(), "from the host\n");
}

// ANCHOR: anonymous_volume_test
#[test]
fn an_anonymous_volume_is_the_containers_own_and_goes_with_it() {
    let mut shell = Shell::start(&step_binary!(), &["-v", "/data"]);
    let runtime = shell.runtime_pid();
    assert_eq!(shell.run("echo from the container > /data/note && echo written"), "written");
    // On the host: a directory in the container's state directory, while it runs.
    let state = fs::read_dir("/run/workshop")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with(&format!("-{runtime}")))
        .expect("the container's state directory");
    let volumes: Vec<_> = fs::read_dir(state.join("volumes")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(fs::read_to_string(volumes[0].join("note")).unwrap(), "from the container\n");
    assert_eq!(shell.exit(0), 0);
    assert!(!volumes[0].exists(), "the anonymous volume goes with the container");
}
// ANCHOR_END: anonymous_volume_test

// ANCHOR: untouched_test
#[test]
fn volumes_leave_the_rootfs_as_it_was_built() {
    let bin = step_binary!();
    let dir = TempDir::new("untouched");
    let (options, rootfs) = common::private_root(&bin, dir.path());
    let before = common::listing(&rootfs);
    let data = TempDir::new("untouched-volume");
    // Writable by anyone: from step 08 on, root in the container is not root on the host.
    fs::set_permissions(data.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    fs::write(data.path().join("file"), "a file\n").unwrap();
    let (dir_volume, file) =
        (data.path().display().to_string(), data.path().join("file").display().to_string());
    let mut args: Vec<String> = options.clone();
    for volume in [
        format!("{dir_volume}:/data"),
        format!("{dir_volume}:/a/b/c:ro"),
        format!("{file}:/etc/extra"),
        format!("{dir_volume}:/usr/share/x"),
        "/anonymous".to_string(),
    ] {
        args.extend(["-v".to_string(), volume]);
    }
    let script = "cat /a/b/c/file /etc/extra && ls /usr/share/x && touch /data/new /anonymous/new";
    args.extend(["--", "sh", "-c", script].map(String::from));
    let out = run(&bin, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("a file\na file\nfile"), "{out:?}");
    assert!(data.path().join("new").exists(), "the volume was written");
    let after = common::listing(&rootfs);
    let changed: Vec<_> = after.iter().filter(|line| !before.contains(line)).collect();
    let gone: Vec<_> = before.iter().filter(|line| !after.contains(line)).collect();
    assert!(changed.is_empty() && gone.is_empty(), "the rootfs changed: new {changed:?}, gone {gone:?}");
}
// ANCHOR_END: untouched_test

/// Builds tests/escape.c as a static program in `dir`.
fn build_escape(dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/escape.c");
    let built =
        Command::new("gcc").args(["-static", "-O2", "-o"]).arg(dir.join("escape")).arg(&source).status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "gcc must build tests/escape.c statically (install gcc and libc6-dev)"
    );
}

#[test]
fn chroot_can_be_escaped_but_pivot_root_cannot() {
    let tools = TempDir::new("escape");
    build_escape(tools.path());
    let marker = tools.path().join("on-the-host");
    fs::write(&marker, "").unwrap();

    // The seeds' way, for comparison: chroot into a rootfs like the default one, built for the
    // test (the binary under test may not build one: step 10 runs images), in a throwaway mount
    // namespace, with a tmpfs on its /tmp. The escape works.
    let rootfs = TempDir::new("escape-rootfs");
    let built = run_command(Command::new(env!("CARGO_BIN_EXE_mkrootfs")).arg(rootfs.path()));
    assert_eq!(built.code, 0, "mkrootfs: {built:?}");
    let script = r#"mkdir -p "$1/tmp" && mount -t tmpfs tmpfs "$1/tmp" && cp "$2/escape" "$1/tmp/" && exec chroot "$1" /tmp/escape "$3""#;
    let chrooted = run_command(
        Command::new("unshare")
            .args(["--mount", "--fork", "--", "sh", "-c", script, "sh"])
            .arg(rootfs.path())
            .arg(tools.path())
            .arg(&marker),
    );
    assert_eq!(chrooted.stdout.trim(), "escaped", "the escape must work from a chroot: {chrooted:?}");

    let volume = format!("{}:/opt/escape:ro", tools.path().display());
    let out = run(&step_binary!(), &["-v", &volume, "--", "/opt/escape/escape", marker.to_str().unwrap()]);
    assert!(out.stdout.contains("contained") && !out.stdout.contains("escaped"), "{out:?}");
}
