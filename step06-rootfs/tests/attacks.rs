//! Attacks on the paths the runtime resolves (book: "Paths a container can write"). Each is
//! attempted for real, against a private rootfs and sacrificial files in a private temporary
//! directory, never a real host file; each succeeded on the code before the fix.

mod common;

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use workshop_testkit::{HostProcess, TempDir, eventually, require_root, run, step_binary};

/// Builds tests/swap.c as a static program in `dir`.
fn build_swap(dir: &Path) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/swap.c");
    let program = dir.join("swap");
    let built = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&program).arg(&source).status();
    assert!(
        built.is_ok_and(|status| status.success()),
        "gcc must build tests/swap.c statically (install gcc and libc6-dev)"
    );
    program
}

/// How many containers start while the swap runs (see the numbers in the book's chapter on
/// these attacks: the code before the fix wrote outside the rootfs many times in as many).
const ATTEMPTS: usize = 1000;
/// How deep below /data the mount point is.
const DEPTH: usize = 24;

// ANCHOR: swap_attack
/// CVE-2021-30465's race: a directory of the rootfs on the way to a volume's mount point
/// (`/data`) is swapped, again and again, with a symbolic link to a directory outside the rootfs
/// which holds a sacrificial file `y`, while containers start with `-v FILE:/data/x` (a mount
/// point to make) or `-v FILE:/data/y` (one to make, where the link leads to the sacrificial
/// file). A runtime that checks `/data` and then creates the mount point by path creates `x`
/// outside the rootfs, or truncates `y`, now and then. Nothing outside the rootfs may change,
/// and nothing may be made inside it.
#[test]
fn a_mount_point_swapped_for_a_symlink_never_leads_out_of_the_rootfs() {
    require_root();
    let bin = step_binary!();
    let dir = TempDir::new("attack-swap");
    let (options, rootfs) = common::private_root(&bin, dir.path());
    // The same tree of DEPTH directories on both sides, so that every check below /data passes
    // whichever side it sees, and the runtime's window between checking /data and using the
    // path is as wide as DEPTH lookups.
    let deep: std::path::PathBuf = std::iter::repeat_n("d", DEPTH).collect();
    let outside = dir.path().join("victim");
    let victim = outside.join(&deep);
    fs::create_dir_all(&victim).unwrap();
    fs::write(victim.join("y"), "precious\n").unwrap();
    fs::create_dir_all(rootfs.join("data").join(&deep)).unwrap();
    symlink(&outside, rootfs.join("swap")).unwrap();
    let source = dir.path().join("source");
    fs::write(&source, "the volume\n").unwrap();

    let swap = build_swap(dir.path());
    let mut swapper =
        HostProcess::start(Command::new(&swap).arg(rootfs.join("data")).arg(rootfs.join("swap")));
    let (mut started, mut created, mut truncated) = (0, 0, 0);
    for attempt in 0..ATTEMPTS {
        let name = if attempt % 2 == 0 { "x" } else { "y" };
        let volume = format!("{}:{}", source.display(), Path::new("/data").join(&deep).join(name).display());
        let mut args: Vec<&str> = options.iter().map(String::as_str).collect();
        args.extend(["-v", &volume, "--", "true"]);
        if run(&bin, &args).code == 0 {
            started += 1;
        }
        if fs::remove_file(victim.join("x")).is_ok() {
            created += 1;
        }
        if fs::read_to_string(victim.join("y")).ok().as_deref() != Some("precious\n") {
            truncated += 1;
            fs::write(victim.join("y"), "precious\n").unwrap(); // to count the next one
        }
    }
    assert!(swapper.running(), "the swap loop ran all along");
    drop(swapper);
    eprintln!(
        "{ATTEMPTS} starts during the swap: {started} started; outside the rootfs, {created} made a file \
         and {truncated} truncated one"
    );
    assert_eq!((created, truncated), (0, 0), "starts that wrote outside the rootfs (made, truncated)");
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 1, "nothing else in the sacrificial directory");
    for name in ["data", "swap"] {
        let path = rootfs.join(name);
        if path.symlink_metadata().unwrap().is_dir() {
            let made = fs::read_dir(path.join(&deep)).unwrap().count();
            assert_eq!(made, 0, "a mount point was made in the rootfs");
        }
    }
    // The swap must not simply have made every start fail: a runtime that refused every volume
    // would pass the checks above.
    assert!(started > 0, "no container started in {ATTEMPTS} attempts");
}
// ANCHOR_END: swap_attack

/// A pipe whose buffer is full: a process writing to it blocks until someone reads.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    fcntl(write.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    while nix::unistd::write(&write, &[b'.'; 4096]).is_ok() {}
    fcntl(write.as_fd(), FcntlArg::F_SETFL(OFlag::empty())).unwrap();
    (read, write)
}

// ANCHOR: source_swap
/// The volume's source is swapped for a symbolic link after the runtime read the option and
/// before it mounts: the runtime's stdout is a full pipe, so it stops at its first line
/// (`Parent [...] - start a container!`, printed once everything is prepared and before the
/// container is made) until the test has made the swap. The container must see what the path
/// was when the option was read, not what it leads to by the time of the mount.
#[test]
fn a_volume_source_swapped_after_it_was_read_is_not_followed() {
    require_root();
    let bin = step_binary!();
    let dir = TempDir::new("attack-source");
    let (options, _) = common::private_root(&bin, dir.path());
    let (volume, secret, link) =
        (dir.path().join("volume"), dir.path().join("secret"), dir.path().join("link"));
    fs::create_dir(&volume).unwrap();
    fs::write(volume.join("which"), "original\n").unwrap();
    fs::create_dir(&secret).unwrap();
    fs::write(secret.join("which"), "secret\n").unwrap();
    symlink(&secret, &link).unwrap();

    let (read_end, write_end) = full_pipe();
    let spec = format!("{}:/data", volume.display());
    let mut runtime = HostProcess::start(
        Command::new(&bin)
            .args(&options)
            .args(["-v", &spec, "--", "cat", "/data/which"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::piped()),
    );
    let pid = runtime.pid();
    eventually("the runtime to block writing its first line", || {
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        (wchan == "pipe_write" || wchan == "anon_pipe_write").then_some(())
    });
    let (a, b) = (c_path(&volume), c_path(&link));
    // SAFETY: renameat2 with two NUL-terminated paths.
    let swapped = unsafe {
        libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
    };
    assert_eq!(swapped, 0, "swapping {} for a link", volume.display());
    assert!(volume.symlink_metadata().unwrap().file_type().is_symlink());

    let mut output = Vec::new();
    fs::File::from(read_end).read_to_end(&mut output).unwrap();
    let status = runtime.0.wait().unwrap();
    let mut stderr = String::new();
    runtime.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let output = String::from_utf8_lossy(&output).trim_start_matches('.').to_string();
    assert!(status.success(), "the container ran: {output}{stderr}");
    assert!(!output.contains("secret"), "the container got what the swapped-in link leads to:\n{output}");
    assert!(output.contains("original"), "the container sees the volume as it was when read:\n{output}");
}
// ANCHOR_END: source_swap

fn c_path(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap()
}
