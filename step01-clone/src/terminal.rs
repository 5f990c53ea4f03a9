//! Sharing the user's terminal with the container, the way a shell shares it with a job.
//!
//! An interactive shell wants to be in the terminal's *foreground process group*: that group
//! receives what you type and the signals of Ctrl-C and Ctrl-Z, and a job-control shell refuses
//! to start without it ("cannot set tty process group"). So the container's first process makes
//! a process group of its own and hands it the terminal; when the container is gone, the runtime
//! takes the terminal back. Nobody's session changes, so the shell the runtime was started from
//! keeps its terminal. (Making the container a session leader and *stealing* the terminal with
//! `TIOCSCTTY` would also work for the container, but it leaves that outer shell without a
//! controlling terminal, and Ctrl-C stops working there.)

use std::io::stdin;

use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::{Pid, getpgrp, isatty, setpgid, tcgetpgrp, tcsetpgrp};

use crate::error::{Context, Result};

/// Whether the runtime holds the foreground of the terminal on its stdin.
#[derive(Debug)]
pub struct Terminal {
    foreground: bool,
}

impl Terminal {
    /// Looks at stdin in the runtime: only a terminal whose foreground we hold is ours to share.
    /// Without a terminal (CI, a pipe) or when started in the background, there is nothing to do.
    pub fn inherit() -> Terminal {
        let foreground = isatty(stdin()).unwrap_or(false) && tcgetpgrp(stdin()).ok() == Some(getpgrp());
        Terminal { foreground }
    }

    /// A container that does not share the user's terminal (it may have one of its own).
    pub fn none() -> Terminal {
        Terminal { foreground: false }
    }

    // ANCHOR: give
    /// In the container's first process: become a process group of its own and the terminal's
    /// foreground group.
    pub fn give_to_this_process(&self) -> Result<()> {
        if !self.foreground {
            return Ok(());
        }
        setpgid(Pid::from_raw(0), Pid::from_raw(0)).context("setpgid")?;
        set_foreground_group(getpgrp()).context("tcsetpgrp")
    }

    /// In the runtime, once the container has ended: the terminal's foreground is ours again.
    pub fn take_back(&mut self) {
        if std::mem::take(&mut self.foreground) {
            let _ = set_foreground_group(getpgrp());
        }
    }
    // ANCHOR_END: give
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.take_back();
    }
}

/// `tcsetpgrp` from a background process group is answered with SIGTTOU, which would stop us;
/// shells ignore SIGTTOU around the call, and so do we.
fn set_foreground_group(group: Pid) -> nix::Result<()> {
    // SAFETY: SIG_IGN and SIG_DFL are not handlers, no code of ours runs on the signal.
    let previous = unsafe { signal(Signal::SIGTTOU, SigHandler::SigIgn) }?;
    let result = tcsetpgrp(stdin(), group);
    // SAFETY: restores the disposition read above.
    unsafe { signal(Signal::SIGTTOU, previous) }?;
    result
}
