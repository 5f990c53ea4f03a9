//! A terminal of the container's own: a pseudo-terminal whose other end the runtime relays to
//! the user's terminal, as `docker run -it` does.
//!
//! Up to step 07 the container shared the user's terminal (step 01's `terminal` module). Once
//! root in the container is nobody on the host, that is no longer right: any process holding a
//! terminal as its controlling tty may push characters into its input queue (`TIOCSTI`), and
//! what the container pushed would be read, after it ended, by the user's shell, as the
//! user (`dev.tty.legacy_tiocsti`, Linux 6.2, can turn that off; most hosts still have it on).
//! So the container gets a pseudo-terminal pair: its shell is a session leader with the
//! *secondary* end as controlling terminal (job control works as on any terminal) and the
//! runtime copies bytes between the *primary* end and the user's terminal, which it puts in raw
//! mode so that every key, Ctrl-C included, goes through untouched, and passes on changes of
//! the window size (SIGWINCH).
//!
//! The container never gets the user's terminal itself, whatever its stdin, stdout and stderr
//! are: `cmd | cat` leaves stdin on the terminal, `< input` leaves stdout and stderr there, and
//! any one of them is enough for `TIOCSTI` once the terminal is the container's controlling tty
//! (which it stays when the container does not start a session of its own). So the container
//! always calls `setsid()`, which leaves it without a controlling terminal, and each of its
//! stdin, stdout and stderr that is a terminal is replaced by the pty; pipes and files stay as
//! they were given. Without any terminal (CI, a script) there is no pty at all.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, openpty};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, getpgrp, isatty, setsid, tcgetpgrp};
use step01_clone::error::{Context, Result};
use step01_clone::terminal::Terminal;
use step06_rootfs::rootfs::{Rootfs, bind, ensure_in_root};

/// The pseudo-terminal the container gets when the runtime runs on a terminal.
#[derive(Debug)]
pub struct Console {
    pty: Option<Pty>,
}

#[derive(Debug)]
struct Pty {
    primary: OwnedFd,
    secondary: Option<OwnedFd>,
    /// Which of the runtime's stdin, stdout and stderr are terminals (the user's).
    terminals: [bool; 3],
}

impl Pty {
    /// The descriptor through which the user sees the container's terminal: stdout if it is a
    /// terminal, else stderr, else stdin (a terminal is normally open for reading and writing).
    fn user_output(&self) -> BorrowedFd<'static> {
        let fd = match self.terminals {
            [_, true, _] => 1,
            [_, false, true] => 2,
            _ => 0,
        };
        // SAFETY: 0, 1 and 2 stay open for the runtime's whole life.
        unsafe { BorrowedFd::borrow_raw(fd) }
    }
}

// ANCHOR: open
impl Console {
    /// Opens a pseudo-terminal like the user's when any of stdin, stdout and stderr is a
    /// terminal; otherwise a console that does nothing.
    pub fn open() -> Result<Console> {
        // SAFETY: 0, 1 and 2 stay open for the runtime's whole life.
        let fds = [0, 1, 2].map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
        let terminals = fds.map(|fd| isatty(fd).unwrap_or(false));
        let Some(user) = terminals.iter().position(|&t| t).map(|n| fds[n]) else {
            return Ok(Console { pty: None });
        };
        // The user's window size and terminal settings (echo, erase key, …), as `script` does.
        let size = window_size(user);
        let settings = tcgetattr(user).ok();
        let pair = openpty(size.as_ref(), settings.as_ref()).context("openpty")?;
        Ok(Console { pty: Some(Pty { primary: pair.master, secondary: Some(pair.slave), terminals }) })
    }
    // ANCHOR_END: open

    /// What the container does with the user's terminal: nothing, ever (it may have a console
    /// of its own).
    pub fn user_terminal(&self) -> Terminal {
        Terminal::none()
    }

    // ANCHOR: attach
    /// In the container's first process: start a session of its own, which has no controlling
    /// terminal, so the user's is out of reach even where a descriptor of it was inherited;
    /// then, with a pty, make the secondary end the controlling terminal and put it in place of
    /// each of stdin, stdout and stderr that was the user's terminal.
    pub fn attach(&self) -> Result<()> {
        setsid().context("setsid")?;
        let Some(pty) = self.pty.as_ref() else { return Ok(()) };
        let Some(secondary) = pty.secondary.as_ref() else { return Ok(()) };
        // SAFETY: TIOCSCTTY takes an int argument (0: do not steal the terminal from another
        // session; this one is new and nobody's).
        Errno::result(unsafe { libc::ioctl(secondary.as_raw_fd(), libc::TIOCSCTTY, 0) })
            .context("TIOCSCTTY")?;
        let [stdin, stdout, stderr] = pty.terminals;
        if stdin {
            dup2_stdin(secondary).context("dup2 stdin")?;
        }
        if stdout {
            dup2_stdout(secondary).context("dup2 stdout")?;
        }
        if stderr {
            dup2_stderr(secondary).context("dup2 stderr")?;
        }
        Ok(())
        // The primary end and the original secondary descriptor are close-on-exec.
    }
    // ANCHOR_END: attach

    // ANCHOR: dev_console
    /// In the container, once its /dev is mounted: bind-mount its terminal on `/dev/console`,
    /// as runc and LXC do. The terminal was made in the host's devpts instance, which the
    /// container does not see (its /dev/pts is an instance of its own); without this, `tty`
    /// would find no name for it.
    pub fn bind_to_dev_console(&self, root: &Rootfs) -> Result<()> {
        let Some(pty) = self.pty.as_ref() else { return Ok(()) };
        // Its name in the host's /dev/pts, which this mount namespace still sees (a copy of the
        // host's mount table; /proc/self/fd/N would not do: that names the host's own mount).
        let mut number: libc::c_uint = 0;
        // SAFETY: TIOCGPTN writes the terminal's number into the int we pass.
        Errno::result(unsafe { libc::ioctl(pty.primary.as_raw_fd(), libc::TIOCGPTN, &mut number) })
            .context("TIOCGPTN")?;
        let source = PathBuf::from(format!("/dev/pts/{number}"));
        let console = ensure_in_root(root, Path::new("/dev/console"), false)?;
        bind(&source, &console, MsFlags::empty())
            .context(format!("bind-mounting {} on /dev/console", source.display()))
    }
    // ANCHOR_END: dev_console

    // ANCHOR: relay
    /// In the runtime, once the container runs: copy between the user's terminal (in raw mode
    /// meanwhile) and the container's until the container has closed its end, that is, until
    /// it has ended.
    pub fn relay(&mut self) -> Result<()> {
        let Some(pty) = self.pty.as_mut() else { return Ok(()) };
        pty.secondary = None; // the container's now: our copy would keep the end open
        let stdin = std::io::stdin();
        let user_output = pty.user_output();
        // Keys go through untouched only when the user types into the container: stdin is
        // the terminal, and we are its foreground job (in the background, reading it or
        // changing its mode would stop us with SIGTTIN or SIGTTOU; `cmd > log &`).
        let mut stdin_open = pty.terminals[0] && tcgetpgrp(stdin.as_fd()) == Ok(getpgrp());
        let _raw = if stdin_open { Some(RawMode::enter(stdin.as_fd())?) } else { None };
        let _winch = WindowChanges::watch()?;
        let mut buffer = [0u8; 8192];
        loop {
            if RESIZED.swap(false, Ordering::SeqCst) {
                copy_window_size(user_output, pty.primary.as_fd());
            }
            let mut fds = vec![PollFd::new(pty.primary.as_fd(), PollFlags::POLLIN)];
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue, // SIGWINCH, or a signal passed on to the container
                other => other.context("poll")?,
            };
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            let (container_ready, user_ready) = (ready(&fds[0]), fds.get(1).is_some_and(ready));
            drop(fds);
            if container_ready {
                // EIO: every descriptor of the secondary end is closed, the container is gone.
                match nix::unistd::read(&pty.primary, &mut buffer) {
                    Ok(0) | Err(Errno::EIO) => return Ok(()),
                    Err(Errno::EINTR | Errno::EAGAIN) => {}
                    Err(errno) => return Err(errno).context("reading the container's terminal"),
                    Ok(n) if user_output.as_raw_fd() == 1 => {
                        let mut stdout = std::io::stdout().lock();
                        stdout
                            .write_all(&buffer[..n])
                            .and_then(|()| stdout.flush())
                            .context("writing to the terminal")?;
                    }
                    // stderr, or stdin (which may not be open for writing: then the echo of
                    // what the user types is lost, nothing else).
                    Ok(n) => {
                        let _ = write_all(user_output, &buffer[..n]);
                    }
                }
            }
            if user_ready {
                match stdin.lock().read(&mut buffer) {
                    Ok(0) => stdin_open = false,
                    Ok(n) => write_all(pty.primary.as_fd(), &buffer[..n])?,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).context("reading the terminal"),
                }
            }
        }
    }
    // ANCHOR_END: relay
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno).context("writing to the container's terminal"),
        }
    }
    Ok(())
}

fn window_size(terminal: BorrowedFd<'_>) -> Option<Winsize> {
    let mut size = Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills the struct we pass.
    let got = unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (got == 0).then_some(size)
}

/// Gives the container's terminal the user's window size; its kernel side then sends SIGWINCH
/// to the container's foreground job, as a terminal emulator's resize does.
fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some(size) = window_size(from) {
        // SAFETY: TIOCSWINSZ reads the struct we pass.
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

/// The user's terminal in raw mode (no echo, no line editing, no signals from keys: all of that
/// is the container's terminal's job now), restored on every path out.
struct RawMode<'a> {
    terminal: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(terminal: BorrowedFd<'a>) -> Result<RawMode<'a>> {
        let saved = tcgetattr(terminal).context("tcgetattr")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(terminal, SetArg::TCSANOW, &raw).context("tcsetattr raw")?;
        Ok(RawMode { terminal, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.terminal, SetArg::TCSADRAIN, &self.saved);
    }
}

static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn resized(_: libc::c_int) {
    RESIZED.store(true, Ordering::SeqCst);
}

/// A SIGWINCH handler for the time of the relay (it interrupts poll, which then copies the
/// size); the previous disposition is restored afterwards.
struct WindowChanges(SigAction);

impl WindowChanges {
    fn watch() -> Result<WindowChanges> {
        let action = SigAction::new(SigHandler::Handler(resized), SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler only stores to an atomic.
        let previous = unsafe { sigaction(Signal::SIGWINCH, &action) }.context("sigaction SIGWINCH")?;
        Ok(WindowChanges(previous))
    }
}

impl Drop for WindowChanges {
    fn drop(&mut self) {
        // SAFETY: restores the disposition that was there before.
        let _ = unsafe { sigaction(Signal::SIGWINCH, &self.0) };
    }
}
