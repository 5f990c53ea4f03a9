//! Attacks through an image's layers (book: "Paths a container can write"): a layer that is a
//! symbolic link names any directory of the host, and the container gets it idmapped, owned by
//! its root. Attempted for real with sacrificial directories in a private temporary directory.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use workshop_testkit::contract::assert_one_line_error;
use workshop_testkit::{TempDir, require_root, run, step_binary};

/// An image built by step 10's builder in `dir/image`, with `extra` (a name and where its
/// symbolic link points) listed as its top layer; and a sacrificial directory `dir/outside`
/// holding a file only host root may read.
fn image_with_a_linked_layer(dir: &Path, name: &str, target: &str) -> std::path::PathBuf {
    let image = dir.join("image");
    let built = Command::new(env!("CARGO_BIN_EXE_mkimage")).arg(&image).output().unwrap();
    assert!(built.status.success(), "building an image: {}", String::from_utf8_lossy(&built.stderr));
    let outside = dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("shadow"), "host root's secret\n").unwrap();
    fs::set_permissions(outside.join("shadow"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink(target, image.join(name)).unwrap();
    let layers = fs::read_to_string(image.join("layers")).unwrap();
    fs::write(image.join("layers"), format!("{layers}{name}\n")).unwrap();
    image
}

/// Runs `cat /shadow` in a container of `image`: it must be refused, naming the layer, and the
/// sacrificial file must not be read.
fn assert_refused(image: &Path, layer: &str) {
    let out = run(&step_binary!(), &["--image", image.to_str().unwrap(), "--", "cat", "/shadow"]);
    assert!(!out.stdout.contains("secret"), "the container read a host directory's file:\n{}", out.stdout);
    assert_eq!(out.code, 125, "{out:?}");
    assert_one_line_error(&out.stderr, &format!("layer {layer} is a symbolic link"));
}

// ANCHOR: linked_layer
/// `hostetc -> /…/outside`: with the old check (the name has no `/` nor `..`, and what it leads
/// to is a directory), the container got the host's directory as a layer, idmapped, so that
/// root inside could read host root's 0600 file.
#[test]
fn a_layer_that_is_a_symlink_to_a_host_directory_is_refused() {
    require_root();
    let dir = TempDir::new("attack-layer");
    let outside = dir.path().join("outside");
    let image = image_with_a_linked_layer(dir.path(), "hostetc", outside.to_str().unwrap());
    assert_refused(&image, "hostetc");
}

/// `up -> ../outside`: a relative link out of the image (another image's layer, or another
/// container's writable layer under /run/workshop) is refused the same way.
#[test]
fn a_layer_that_leads_out_of_the_image_with_dotdot_is_refused() {
    require_root();
    let dir = TempDir::new("attack-layer-up");
    let image = image_with_a_linked_layer(dir.path(), "up", "../outside");
    assert_refused(&image, "up");
}
// ANCHOR_END: linked_layer
