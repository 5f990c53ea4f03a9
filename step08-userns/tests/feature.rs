//! Step 08's feature: root in the container is an unprivileged uid on the host, and the
//! container has a terminal of its own. `scripts/progression` checks that each of these fails
//! against step 07.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use workshop_testkit::{Shell, TempDir, child_running, step_binary};

/// The uid (real, effective, saved, filesystem) of a host process, from /proc/PID/status.
fn host_uids(pid: nix::unistd::Pid) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn root_inside_is_an_unprivileged_uid_outside() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let first = child_running(shell.runtime_pid(), "sh");
    assert_eq!(shell.run("id -u"), "0", "the container's shell is not root inside");
    assert_eq!(host_uids(first), "100000 100000 100000 100000", "seen from the host");
    assert_eq!(
        shell.run("cat /proc/self/uid_map").split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_maps_can_be_chosen() {
    let args = ["--uid-map", "0:200000:1000", "--gid-map", "0:300000:1000"];
    let shell = Shell::start(&step_binary!(), &args);
    let first = child_running(shell.runtime_pid(), "sh");
    assert_eq!(host_uids(first), "200000 200000 200000 200000");
    let gids = fs::read_to_string(format!("/proc/{first}/status")).unwrap();
    assert!(
        gids.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["Gid:", "300000", "300000", "300000", "300000"]),
        "{gids}"
    );
    assert_eq!(shell.exit(0), 0);
}

/// A host directory that anyone may write, with a file in it that only host root may.
fn volume() -> TempDir {
    let dir = TempDir::new("userns-volume");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.path().join("hosts-file");
    fs::write(&file, "host\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

#[test]
fn a_file_made_in_a_volume_belongs_to_the_mapped_uid_on_the_host() {
    let dir = volume();
    let spec = format!("{}:/data", dir.path().display());
    let mut shell = Shell::start(&step_binary!(), &["-v", &spec]);
    shell.run("touch /data/made-inside");
    assert_eq!(shell.exit(0), 0);
    let made = fs::metadata(dir.path().join("made-inside")).expect("the container made the file");
    assert_eq!((made.uid(), made.gid()), (100000, 100000), "owner on the host");
}

#[test]
fn root_inside_cannot_write_a_host_roots_file() {
    let dir = volume();
    let spec = format!("{}:/data", dir.path().display());
    let mut shell = Shell::start(&step_binary!(), &["-v", &spec]);
    let answer =
        shell.run("ls -ln /data/hosts-file | cut -c1-30; echo inside >> /data/hosts-file; echo status=$?");
    assert_eq!(shell.exit(0), 0);
    // The redirection fails: status 1 in busybox's sh, 2 in dash.
    let status = answer.rsplit("status=").next().unwrap_or("0");
    assert!(answer.contains("status=") && status != "0", "root inside wrote host root's file: {answer}");
    assert!(answer.contains("65534"), "host root shows as the overflow id inside: {answer}");
    assert_eq!(fs::read_to_string(dir.path().join("hosts-file")).unwrap(), "host\n");
}

#[test]
fn the_container_has_a_terminal_of_its_own() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    // The shell leads a session of its own, on the terminal the runtime made for it, which is
    // the container's /dev/console.
    let stat = shell.run("cat /proc/$$/stat");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    assert_eq!(fields[3], "1", "the shell (pid 1) does not lead its own session: {stat}");
    assert_eq!(shell.run("tty"), "/dev/console");
    assert_eq!(shell.exit(0), 0);
}
