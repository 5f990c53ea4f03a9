//! Attacks that work up to step 07 and fail from step 08 on: a container whose root is the
//! host's root, and which shares the user's terminal, can reach the host through the kernel's
//! interfaces that check for root (or for a controlling terminal) and nothing else. Each test
//! tries the attack itself, with a small program in the container, against targets the test
//! made (a pty, a loop device, a file), and asserts that it fails. `scripts/progression`
//! checks that each one *passes* against step 07 no more: there, the attack works.

use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use workshop_testkit::{TempDir, require_root, run, step_binary};

/// Builds tests/NAME.c as a static program in `dir` (which the container sees as a volume).
fn build(name: &str, dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/{name}.c"));
    workshop_testkit::build_static(&source, &dir.join(name));
}

/// A directory of attack programs, writable by root in the container (uid 100000 from step 08).
fn tools(purpose: &str, programs: &[&str]) -> TempDir {
    let dir = TempDir::new(purpose);
    for program in programs {
        build(program, dir.path());
    }
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

// --- TIOCSTI: the user's terminal --------------------------------------------------------------

/// Where the runtime's stdout goes.
#[derive(Clone, Copy, PartialEq)]
enum Stdout {
    /// `runtime … | cat`
    Pipe,
    /// `runtime … > log`
    File,
    /// the user's terminal
    Terminal,
}

/// Runs tests/tiocsti.c in a container started from a terminal of the test's own (a pty pair
/// standing in for the user's: the runtime is a session leader with it as controlling
/// terminal, as a login shell's child is), with stdin on it or not and stdout where `stdout`
/// says. Fails when the program reports that it injected into that terminal, or when its text
/// waits in the terminal's input queue afterwards (what the user's shell would read next).
fn inject_into_the_users_terminal(stdin_tty: bool, stdout: Stdout) {
    require_root();
    let dir = tools("tiocsti", &["tiocsti"]);
    let user = nix::pty::openpty(None, None).expect("openpty");
    let (primary, terminal) = (user.master, user.slave);
    let device = nix::sys::stat::fstat(terminal.as_fd()).unwrap().st_rdev;
    let (major, minor) = (libc::major(device), libc::minor(device));
    let typed = format!("touch /tmp/pwned-{}", std::process::id());
    let clone = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut command = Command::new(step_binary!());
    command
        .arg("-v")
        .arg(format!("{}:/attack", dir.path().display()))
        .args(["--", "/attack/tiocsti", &typed, "/attack/report"])
        .stdin(if stdin_tty { clone(&terminal) } else { Stdio::piped() })
        .stdout(match stdout {
            Stdout::Pipe => Stdio::piped(),
            Stdout::File => Stdio::from(File::create(dir.path().join("log")).unwrap()),
            Stdout::Terminal => clone(&terminal),
        })
        .stderr(clone(&terminal));
    let controlling = terminal.as_raw_fd();
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::errno::Errno::result(libc::ioctl(controlling, libc::TIOCSCTTY, 0))?;
            Ok(())
        });
    }
    let mut child = command.spawn().expect("starting the runtime");
    drop(child.stdin.take()); // `true | runtime …`: stdin is a pipe with nothing in it
    let out = child.wait_with_output().expect("waiting for the runtime");
    let report = fs::read_to_string(dir.path().join("report")).unwrap_or_else(|_| {
        panic!("the attack program did not run in the container: {}", String::from_utf8_lossy(&out.stdout))
    });
    // What the user's shell would read next: the input queue of the terminal, without waiting.
    nix::fcntl::fcntl(terminal.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .unwrap();
    let mut queued = [0u8; 4096];
    let n = nix::unistd::read(&terminal, &mut queued).unwrap_or(0);
    drop(primary);
    let queued = String::from_utf8_lossy(&queued[..n]).into_owned();
    let injected = format!("(tty {major}:{minor}): injected");
    assert!(
        !report.contains(&injected) && !queued.contains(&typed),
        "the container typed into the user's terminal {major}:{minor}:\n{report}the user's shell would read: {queued:?}"
    );
    eprintln!("the user's terminal is {major}:{minor}\n{report}the user's shell would read: {queued:?}");
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_when_stdout_is_a_pipe() {
    inject_into_the_users_terminal(true, Stdout::Pipe);
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_when_stdout_is_a_file() {
    inject_into_the_users_terminal(true, Stdout::File);
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_when_stdin_is_a_pipe() {
    inject_into_the_users_terminal(false, Stdout::Terminal);
}

#[test]
fn tiocsti_cannot_type_into_the_users_terminal_from_an_interactive_container() {
    inject_into_the_users_terminal(true, Stdout::Terminal);
}

// --- Root is root: the kernel's interfaces that only ask for root ------------------------------

/// A read-only loop device over a small ext4 image the test made, holding one file: a disk of
/// the host's that the container must not read. Detached when dropped.
struct LoopDisk {
    device: String,
    _dir: TempDir,
}

impl LoopDisk {
    fn with_file(name: &str, content: &str) -> LoopDisk {
        let dir = TempDir::new("disk");
        let files = dir.path().join("files");
        fs::create_dir(&files).unwrap();
        fs::write(files.join(name), format!("{content}\n")).unwrap();
        let image = dir.path().join("disk.img");
        let made = Command::new("mkfs.ext4").args(["-q", "-d"]).arg(&files).arg(&image).arg("4M").status();
        assert!(made.is_ok_and(|s| s.success()), "mkfs.ext4 -d must make the test's disk image (e2fsprogs)");
        // -r: read-only, so nothing in the test can write to it.
        let out = Command::new("losetup").args(["-f", "--show", "-r"]).arg(&image).output().expect("losetup");
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        LoopDisk { device: String::from_utf8_lossy(&out.stdout).trim().to_owned(), _dir: dir }
    }

    /// MAJOR MINOR, as mknod wants them.
    fn numbers(&self) -> String {
        let name = self.device.trim_start_matches("/dev/");
        fs::read_to_string(format!("/sys/block/{name}/dev")).unwrap().trim().replace(':', " ")
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

#[test]
fn mknod_of_a_host_disk_and_mount_fail() {
    let dir = tools("hostdisk", &["hostdisk"]);
    let secret = format!("the host's disk {}", std::process::id());
    let disk = LoopDisk::with_file("secret", &secret);
    let volume = format!("{}:/attack:ro", dir.path().display());
    let numbers = disk.numbers();
    let (major, minor) = numbers.split_once(' ').unwrap();
    let out = run(&step_binary!(), &["-v", &volume, "--", "/attack/hostdisk", major, minor, "secret"]);
    eprintln!("{}", out.stdout);
    assert!(!out.stdout.contains(&secret), "the container mounted {} and read it: {out:?}", disk.device);
    assert!(out.stdout.contains("mknod /dev/hostdisk"), "the container did try mknod: {out:?}");
}

/// A directory of the test's own on the filesystem of the default rootfs (the container's "/"
/// in steps 06 to 09), outside it: in /tmp when that is the same filesystem, as usual, or else
/// beside the caches in /var/lib/workshop (never in them). Removed when dropped.
struct BesideTheRootfs(std::path::PathBuf);

impl BesideTheRootfs {
    fn new() -> BesideTheRootfs {
        let rootfs = Path::new("/var/lib/workshop/rootfs");
        if !rootfs.exists() {
            run(&step_binary!(), &["true"]); // builds it, in the steps that use it
        }
        let tmp = std::env::temp_dir();
        let parent = match (fs::metadata(rootfs), fs::metadata(&tmp)) {
            (Ok(r), Ok(t)) if r.dev() != t.dev() => rootfs.parent().unwrap().to_path_buf(),
            _ => tmp,
        };
        let dir = parent.join(format!("workshop-test-{}-shocker-target", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        BesideTheRootfs(dir)
    }
}

impl Drop for BesideTheRootfs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn open_by_handle_at_cannot_reach_a_host_file() {
    let dir = tools("shocker", &["shocker"]);
    // A file of the host's on the same filesystem as the container's root (/), outside it.
    let target = BesideTheRootfs::new();
    let secret = format!("a host file {}", std::process::id());
    fs::write(target.0.join("secret"), format!("{secret}\n")).unwrap();
    let on_host =
        Command::new(dir.path().join("shocker")).arg("handle").arg(target.0.join("secret")).output().unwrap();
    let handle = String::from_utf8_lossy(&on_host.stdout).trim().to_owned();
    let (kind, hex) = handle.split_once(' ').expect("a file handle from the host");
    // On /mnt, which the rootfs has: a mount point it lacks would put a tmpfs of the container's
    // own over "/" (see chapter 6), and the handle is opened through "/".
    let volume = format!("{}:/mnt:ro", dir.path().display());
    let out = run(&step_binary!(), &["-v", &volume, "--", "/mnt/shocker", "open", kind, hex]);
    eprintln!("{}", out.stdout);
    if let Ok(rootfs) = fs::metadata("/var/lib/workshop/rootfs") {
        assert_eq!(
            fs::metadata(&target.0).unwrap().dev(),
            rootfs.dev(),
            "the target must be on the rootfs's filesystem for the attack to mean anything"
        );
    }
    assert!(!out.stdout.contains(&secret), "the container opened a host file by its handle: {out:?}");
    assert!(out.stdout.contains("open_by_handle_at"), "the attack did run: {out:?}");
}

#[test]
fn proc_sys_kernel_core_pattern_cannot_be_opened_for_writing() {
    // `true >>` opens for writing and writes nothing: the host's core_pattern stays as it is.
    let script = "if (true >> /proc/sys/kernel/core_pattern) 2>/dev/null; then echo 'core_pattern: open for writing'; \
                  else echo 'core_pattern: refused'; fi";
    let before = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let out = run(&step_binary!(), &["--", "sh", "-c", script]);
    eprintln!("{}", out.stdout);
    assert_eq!(fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(), before);
    assert!(
        out.stdout.contains("core_pattern: refused"),
        "root in the container may rewrite the host's core_pattern: {out:?}"
    );
}

#[test]
fn a_container_cannot_mount_cgroupfs_and_leave_its_pids_limit() {
    // Mount the pids hierarchy (v1) or the unified one (v2) and move into its top cgroup.
    let script = "mkdir /tmp/cg; (mount -t cgroup -o pids pids /tmp/cg 2>/dev/null || mount -t cgroup2 cgroup2 /tmp/cg) \
                  && echo $$ > /tmp/cg/cgroup.procs && echo moved; cat /proc/self/cgroup; readlink /proc/self/ns/cgroup";
    let out = run(&step_binary!(), &["--pids", "20", "--", "sh", "-c", script]);
    eprintln!("{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let pids = lines
        .iter()
        .find(|l| l.contains(":pids:"))
        .or_else(|| lines.iter().find(|l| l.starts_with("0::")))
        .unwrap_or_else(|| panic!("the container's cgroups: {out:?}"));
    // From step 12 on the container has a cgroup namespace whose root is its own cgroup: there
    // it says `/`, and a cgroup above it would show as `/..`.
    let host_ns = fs::read_link("/proc/self/ns/cgroup").unwrap();
    let own_ns = lines.iter().any(|l| l.starts_with("cgroup:[") && Path::new(l) != host_ns);
    let inside = if own_ns { pids.ends_with(":/") } else { pids.contains("/workshop/") };
    assert!(inside, "the container left its pids cgroup: {pids} ({out:?})");
    assert!(!out.stdout.contains("moved"), "{out:?}");
}
