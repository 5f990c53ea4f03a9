//! What step 06's feature and attack tests share: a private root for the binary under test, and
//! a full listing of a directory tree to compare before and after a run.

#![allow(dead_code)] // each test program uses its own part

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A root of the test's own for the binary under test: a rootfs built by step 06's builder in
/// `dir/rootfs`, given with `--rootfs` (steps 06–09), or an image whose only layer it is, given
/// with `--image` (step 10 on). Returns the options and the rootfs directory.
pub fn private_root(bin: &Path, dir: &Path) -> (Vec<String>, PathBuf) {
    let image = dir.join("image");
    let rootfs = image.join("base");
    fs::create_dir_all(&image).unwrap();
    let built = Command::new(env!("CARGO_BIN_EXE_mkrootfs")).arg(&rootfs).output().unwrap();
    assert!(built.status.success(), "building a rootfs: {}", String::from_utf8_lossy(&built.stderr));
    let step: u32 = bin
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("step"))
        .and_then(|name| name.get(..2))
        .and_then(|number| number.parse().ok())
        .unwrap_or(6);
    let options = if step >= 10 {
        fs::write(image.join("layers"), "base\n").unwrap();
        vec!["--image".to_string(), image.display().to_string()]
    } else {
        vec!["--rootfs".to_string(), rootfs.display().to_string()]
    };
    (options, rootfs)
}

/// Every entry under `dir` (itself included), with its type, mode, owner, size, modification
/// time to the nanosecond and link target, one a line, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, path: &Path, lines: &mut Vec<String>) {
        let meta = fs::symlink_metadata(path).unwrap();
        let link = fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
        lines.push(format!(
            "{} {:o} {}:{} {} {}.{:09} {link}",
            path.strip_prefix(root).unwrap().display(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec()
        ));
        if meta.is_dir() {
            for entry in fs::read_dir(path).unwrap() {
                walk(root, &entry.unwrap().path(), lines);
            }
        }
    }
    let mut lines = Vec::new();
    walk(dir, dir, &mut lines);
    lines.sort();
    lines
}
