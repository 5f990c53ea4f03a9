//! Bad images get one clear line and exit 125, and leave nothing behind.

use std::fs;
use std::process::Command;

use workshop_testkit::{TempDir, step_binary};

/// The step with `args` is refused: one line, exit 125, nothing left (see the testkit).
fn refused(args: &[&str], mentions: &str) {
    workshop_testkit::contract::refused(Command::new(step_binary!()).args(args).arg("true"), mentions);
}

/// An image directory with this `layers` file (none when `None`) and these layer directories.
fn image(layers: Option<&str>, dirs: &[&str]) -> TempDir {
    let image = TempDir::new("bad-image");
    if let Some(layers) = layers {
        fs::write(image.path().join("layers"), layers).unwrap();
    }
    for dir in dirs {
        fs::create_dir(image.path().join(dir)).unwrap();
    }
    image
}

fn path(image: &TempDir) -> &str {
    image.path().to_str().unwrap()
}

#[test]
fn a_missing_image() {
    refused(&["--image", "/no/such/image"], "does not exist");
}

#[test]
fn an_image_that_is_a_file() {
    refused(&["--image", "/etc/passwd"], "is not a directory");
}

#[test]
fn an_image_without_a_layer_list() {
    let image = image(None, &["base"]);
    refused(&["--image", path(&image)], "has no `layers` file");
}

#[test]
fn an_empty_layer_list() {
    let image = image(Some("# nothing\n\n"), &["base"]);
    refused(&["--image", path(&image)], "lists no layer");
}

#[test]
fn a_layer_list_with_paths_in_it() {
    for bad in ["../etc", "/etc", "base/usr", "."] {
        let image = image(Some(&format!("base\n{bad}\n")), &["base"]);
        refused(&["--image", path(&image)], "line 2");
    }
}

#[test]
fn a_layer_listed_twice() {
    let image = image(Some("base\nbase\n"), &["base"]);
    refused(&["--image", path(&image)], "listed twice");
}

#[test]
fn a_listed_layer_that_does_not_exist() {
    let image = image(Some("base\nmissing\n"), &["base"]);
    refused(&["--image", path(&image)], "layer missing does not exist");
}

#[test]
fn a_layer_that_is_a_file() {
    let image = image(Some("base\nfile\n"), &["base"]);
    fs::write(image.path().join("file"), "").unwrap();
    refused(&["--image", path(&image)], "layer file is not a directory");
}

#[test]
fn a_layer_that_cannot_be_idmapped() {
    // procfs does not support idmapped mounts. This is found after the state directory and the
    // cgroup were made: they must go too. A layer is a real directory of the image: /proc/sys is
    // bind-mounted on one, in a mount namespace of the test's own.
    let image = image(Some("proc\n"), &["proc"]);
    let script = r#"mount --bind /proc/sys "$1/proc" && exec "$2" --image "$1" true"#;
    workshop_testkit::contract::refused(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh", path(&image)])
            .arg(step_binary!()),
        "cannot be idmapped",
    );
}

#[test]
fn a_layer_that_is_a_symbolic_link() {
    let image = image(Some("base\nhostetc\n"), &["base"]);
    std::os::unix::fs::symlink("/etc", image.path().join("hostetc")).unwrap();
    refused(&["--image", path(&image)], "layer hostetc is a symbolic link");
}
