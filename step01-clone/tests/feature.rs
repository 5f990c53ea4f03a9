//! Step 01's feature: the command runs in a process of its own, a child that the runtime made
//! with clone(2), and the runtime waits for it and ends with its exit code. Step 01 has no step
//! before it (`scripts/progression` starts at step 02); these are the tests that
//! `scripts/exercise check 01` turns from red to green.

use workshop_testkit::{Shell, run, step_binary};

/// The runtime has one child, the container's first process, and the command runs in it.
#[test]
fn the_shell_runs_in_a_child_process_of_the_runtime() {
    let shell = Shell::start(&step_binary!(), &[]);
    let runtime = shell.runtime_pid();
    let children = std::fs::read_to_string(format!("/proc/{runtime}/task/{runtime}/children"))
        .expect("the runtime is running");
    let children: Vec<&str> = children.split_whitespace().collect();
    assert_eq!(children.len(), 1, "the runtime has one child, the container: {children:?}");
    let comm = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(
        comm(children[0]),
        comm(&runtime.to_string()),
        "the child still runs the runtime's program: it did not exec the command"
    );
    assert_eq!(shell.exit(0), 0);
}

/// The runtime says the container stopped only after the command ended, and ends with its code.
#[test]
fn the_runtime_waits_for_the_command_and_ends_with_its_exit_code() {
    let out = run(&step_binary!(), &["--", "sh", "-c", "sleep 0.2; echo slept; exit 3"]);
    assert_eq!(out.code, 3, "the runtime ends with the command's exit code: {out:?}");
    let at = |text: &str| out.stdout.find(text).unwrap_or_else(|| panic!("no {text:?} in {out:?}"));
    assert!(at("slept") < at("Parent - container stopped!"), "the runtime did not wait: {out:?}");
}
