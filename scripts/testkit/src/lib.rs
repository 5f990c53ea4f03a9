//! The harness every step's tests share.
//!
//! Tests start a step's real binary, as root, and talk to the real shell inside the container
//! through a pseudo-terminal ([`Shell`]) or run one command without a terminal ([`run`]). They
//! never create namespaces in the test process itself: it is multithreaded, and the kernel
//! refuses some namespaces to multithreaded processes.
//!
//! `WORKSHOP_BIN` points the tests at another binary than the step's own: `scripts/progression`
//! uses it to check that every step's feature tests fail against the step before it, and pass
//! against every later one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};

pub mod contract;

/// How long any one expectation may take before a test gives up (a guard against hangs, not a
/// measurement: tests never time things).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The binary under test: `own` (the step's), unless `WORKSHOP_BIN` names another.
pub fn binary(own: &str) -> PathBuf {
    std::env::var_os("WORKSHOP_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(own))
}

/// The binary of the package whose tests are being compiled (or `WORKSHOP_BIN`).
#[macro_export]
macro_rules! step_binary {
    () => {
        $crate::binary(env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME"))))
    };
}

/// Containers need root. Without it, fail and say how to run the tests.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests start real containers and need root: run `sudo -E cargo test --workspace` \
         (or `cargo test --workspace`, whose runner asks sudo), or run them in CI as root"
    );
}

/// What a step printed and how it ended, when run without a terminal.
#[derive(Debug)]
pub struct Output {
    /// The exit code; 128 + N when signal N killed it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `bin args…` with stdin from /dev/null, as CI or a script would.
pub fn run(bin: &Path, args: &[&str]) -> Output {
    run_command(Command::new(bin).args(args))
}

/// Runs a prepared command with stdin from /dev/null and collects its output.
pub fn run_command(command: &mut Command) -> Output {
    require_root();
    let out = command.stdin(Stdio::null()).output().expect("the binary under test can be started");
    Output {
        code: exit_code(out.status),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command whose setup fails inside the container, after the runtime made what it makes
/// (the container printed its banner): asserts a non-zero exit and an error that mentions
/// `mentions`. Returns the runtime's pid, for the caller to check that nothing named after it
/// is left.
pub fn fails_inside(command: &mut Command, mentions: &str) -> u32 {
    require_root();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary under test can be started");
    let runtime = child.id();
    let out = child.wait_with_output().expect("waiting for the runtime");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(mentions), "the error names {mentions}: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("inside the container"), "setup did start");
    runtime
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A container started with a terminal: its shell, driven line by line.
pub struct Shell {
    /// The rexpect session, for what the methods below do not cover.
    pub session: PtySession,
    runtime: Pid,
    commands: u32,
}

impl Shell {
    /// Starts `bin args…` on a new pseudo-terminal (the test is the user at the keyboard) and
    /// waits for the container's banner.
    pub fn start(bin: &Path, args: &[&str]) -> Shell {
        Self::start_command(Command::new(bin).args(args))
    }

    /// Like [`Shell::start`] for a prepared command (extra environment, a wrapper).
    pub fn start_command(command: &mut Command) -> Shell {
        require_root();
        // A wrapper shell prints its pid and execs the runtime, which keeps that pid.
        let mut wrapped = Command::new("sh");
        wrapped
            .args(["-c", "echo \"@@runtime-$$@@\"; exec \"$@\"", "sh"])
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        // An empty prompt keeps the shell's output to what the commands print.
        wrapped.env("PS1", "").env("PS2", "");
        let timeout = Some(TIMEOUT.as_millis() as u64);
        let mut session = spawn_command(wrapped, timeout).expect("the binary under test can be started");
        let (_, line) = session.exp_regex(r"@@runtime-\d+@@").expect("the runtime's pid");
        let runtime =
            Pid::from_raw(line.trim_matches('@').trim_start_matches("runtime-").parse().expect("a pid"));
        session.exp_string("inside the container!").expect("the container's banner");
        let mut shell = Shell { session, runtime, commands: 0 };
        // Let the shell print its greeting, if it has one (busybox's ash does), before the tests
        // read output.
        shell.run(":");
        shell
    }

    /// Types `command` at the shell and returns what it printed (without carriage returns and
    /// surrounding blank space), once it has finished.
    pub fn run(&mut self, command: &str) -> String {
        self.commands += 1;
        let done = format!("@@done-{}@@", self.commands);
        // The marker is printed by printf from two pieces, so the typed line never matches it.
        let line = format!("{command}\nprintf '@@%s-%d@@\\n' done {}", self.commands);
        self.session.send_line(&line).expect("typing at the container's shell");
        let before = self
            .session
            .exp_string(&done)
            .unwrap_or_else(|e| panic!("`{command}` did not finish in the container: {e}"));
        before.replace('\r', "").trim().to_owned()
    }

    /// Sends a control character, as typing Ctrl-`c` would.
    pub fn control(&mut self, c: char) {
        self.session.send_control(c).expect("typing a control character");
    }

    /// Waits until the output shows `text`; returns what came before it.
    pub fn expect(&mut self, text: &str) -> String {
        self.session.exp_string(text).unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"))
    }

    /// The runtime's pid (the process the test started).
    pub fn runtime_pid(&self) -> Pid {
        self.runtime
    }

    /// Leaves the shell with `exit code` and returns the runtime's exit code.
    pub fn exit(mut self, code: i32) -> i32 {
        self.session.send_line(&format!("exit {code}")).expect("typing exit");
        self.expect("Parent - container stopped!");
        self.wait()
    }

    /// Waits for the runtime to end and returns its exit code.
    pub fn wait(self) -> i32 {
        match self.session.process().wait().expect("waiting for the runtime") {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
            other => panic!("the runtime ended strangely: {other:?}"),
        }
    }
}

/// Runs a command on the host (outside any container) through `sh -c` and returns its stdout.
pub fn host(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().expect("sh runs on the host");
    assert!(out.status.success(), "`{script}` failed on the host: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `probe` until it returns something, for at most [`TIMEOUT`].
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first child of `parent` (the container's first process, for a runtime), once there is one
/// and it has exec'd `comm`.
pub fn child_running(parent: Pid, comm: &str) -> Pid {
    eventually(&format!("a child of {parent} running {comm}"), || {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
        let child: i32 = children.split_whitespace().next()?.parse().ok()?;
        let name = std::fs::read_to_string(format!("/proc/{child}/comm")).ok()?;
        (name.trim() == comm).then(|| Pid::from_raw(child))
    })
}

/// Whether a process exists (and is not a zombie waiting to be reaped).
pub fn alive(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// What the workshop keeps on the host per container that is named after the runtime's pid
/// (`…-PID`): state directories and cgroups; and the address leases it holds (step 09's
/// `/run/workshop/net/BRIDGE/ADDRESS`, which hold its pid). Empty once that runtime has cleaned
/// up.
pub fn named_after(runtime: u32) -> Vec<PathBuf> {
    let mut found = named_after_pid(runtime);
    found.extend(leases_of(runtime));
    found
}

/// The address leases held by `runtime`.
pub fn leases_of(runtime: u32) -> Vec<PathBuf> {
    let Ok(bridges) = std::fs::read_dir("/run/workshop/net") else { return Vec::new() };
    bridges
        .flatten()
        .filter_map(|bridge| std::fs::read_dir(bridge.path()).ok())
        .flat_map(|leases| leases.flatten().map(|lease| lease.path()))
        .filter(|lease| {
            lease
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        })
        .filter(|lease| std::fs::read_to_string(lease).is_ok_and(|owner| owner.trim() == runtime.to_string()))
        .collect()
}

/// What a builder left beside what it built in `dir`: the `.NAME.building` directories it
/// builds in before renaming them into place, lock files, and replaced builds (`.NAME.old-*`).
pub fn half_built_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("the directory the builders built in")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("building") || name.ends_with(".lock") || name.contains(".old-"))
        .collect()
}

/// Runs the shell script `script` as root in a mount namespace of its own whose
/// /var/lib/workshop is an empty directory, so that the default rootfs and image it builds (or
/// rebuilds) are its own and the host's cache is never touched. The empty directory is made on
/// the cache's own filesystem (`/var/lib/workshop/workshop-test-…`, bind-mounted over it, removed
/// afterwards), so that what works for the real cache works for it: a tmpfs could not be
/// idmapped before Linux 6.3, nor hold `user.*` attributes before 6.6. `envs` are set for it
/// (binaries under test are best passed this way: `"$STEP"` in the script).
pub fn with_empty_cache(script: &str, envs: &[(&str, &Path)]) -> Output {
    require_root();
    let empty = TempDir::within(Path::new("/var/lib/workshop"), "cache");
    let script = format!("mount --bind {} /var/lib/workshop\n{script}", empty.path().display());
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-ec", &script]);
    command.env_remove("WORKSHOP_ROOTFS_FROM"); // the script says which flavour it wants
    for (name, value) in envs {
        command.env(name, value);
    }
    run_command(&mut command)
}

fn named_after_pid(runtime: u32) -> Vec<PathBuf> {
    let suffix = format!("-{runtime}");
    let mut parents = vec![PathBuf::from("/run/workshop"), PathBuf::from("/sys/fs/cgroup/workshop")];
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        parents.extend(hierarchies.flatten().map(|h| h.path().join("workshop")));
    }
    parents
        .iter()
        .filter_map(|parent| std::fs::read_dir(parent).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(&suffix)))
        .collect()
}

/// A host process killed when the test ends, however it ends: a test that fails half-way must
/// not leave a runtime (and its container) running. Derefs to the [`std::process::Child`].
pub struct HostProcess(pub std::process::Child);

impl HostProcess {
    pub fn spawn(program: &str, args: &[&str]) -> HostProcess {
        HostProcess(Command::new(program).args(args).spawn().expect("starting a host process"))
    }

    /// Starts a prepared command (a runtime, usually, with its stdio set).
    pub fn start(command: &mut Command) -> HostProcess {
        require_root();
        HostProcess(command.spawn().expect("starting a host process"))
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }
}

impl std::ops::Deref for HostProcess {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for HostProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// A directory under /tmp for one test, removed with everything in it when the test ends.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(purpose: &str) -> TempDir {
        TempDir::within(&std::env::temp_dir(), purpose)
    }

    /// A new directory in `parent` (made when missing), removed when dropped.
    pub fn within(parent: &Path, purpose: &str) -> TempDir {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = parent.join(format!("workshop-test-{}-{n}-{purpose}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating a test directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the C program `source` statically as `program` (a static program runs in any
/// container's rootfs): the tests' small attack and probe programs. Fails the test, saying
/// what to install, when gcc or libc's static library is missing.
pub fn build_static(source: &Path, program: &Path) {
    let built = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(program).arg(source).status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "gcc must build {} statically (install gcc and libc6-dev, or run scripts/test)",
        source.display()
    );
}
