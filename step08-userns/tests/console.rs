//! The container's terminal behaves as the user's would: window size changes reach it, keys
//! go through, and the user's terminal is restored afterwards.

use std::os::fd::AsRawFd;

use workshop_testkit::{Shell, step_binary};

/// Sets the window size of the test's terminal (the one the runtime runs on), as a terminal
/// emulator does when its window is resized; the kernel sends SIGWINCH to the runtime.
fn resize(shell: &Shell, rows: u16, cols: u16) {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    let fd = shell.session.process().get_file_handle().unwrap();
    // SAFETY: TIOCSWINSZ reads the struct we pass.
    assert_eq!(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) }, 0);
}

#[test]
fn window_size_changes_reach_the_container() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    resize(&shell, 33, 101);
    workshop_testkit::eventually("the new size inside", || {
        shell.run("stty size").lines().any(|line| line.trim() == "33 101").then_some(())
    });
    resize(&shell, 50, 140);
    workshop_testkit::eventually("the second size inside", || {
        shell.run("stty size").lines().any(|line| line.trim() == "50 140").then_some(())
    });
    assert_eq!(shell.exit(0), 0);
}
