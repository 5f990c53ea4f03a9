//! Step 10's feature: the container's root is an overlay of the image's layers, whose files are
//! root's inside, under a writable layer of the container's own. `scripts/progression` checks
//! that each of these fails against the step before.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use step10_overlay::image::{DEFAULT_IMAGE, whiteout};
use workshop_testkit::{Shell, TempDir, run, step_binary};

/// Runs one container, so that the default image exists.
fn default_image() -> &'static Path {
    let out = run(&step_binary!(), &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    Path::new(DEFAULT_IMAGE)
}

#[test]
fn the_root_is_an_overlay() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    assert_eq!(shell.run("awk '$2 == \"/\" { print $3 }' /proc/mounts"), "overlay");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_images_files_belong_to_root_inside() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    // Host root's files, seen through the idmapped layers: 0 inside, not 65534 (nobody).
    let owners = shell.run("ls -lnd /usr/bin /etc/passwd | awk '{ print $3, $4 }'");
    assert_eq!(owners, "0 0\n0 0", "the image's files are not root's inside");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn a_file_deleted_inside_is_back_in_the_next_container() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    assert_eq!(shell.run("rm /bin/ls && test ! -e /bin/ls && echo deleted"), "deleted");
    assert_eq!(shell.exit(0), 0);
    let mut next = Shell::start(&step_binary!(), &[]);
    assert_eq!(next.run("test -e /bin/ls && echo there"), "there", "the image lost /bin/ls");
    assert_eq!(next.exit(0), 0);
}

#[test]
fn two_running_containers_do_not_see_each_others_writes() {
    let mut a = Shell::start(&step_binary!(), &[]);
    let mut b = Shell::start(&step_binary!(), &[]);
    let image_motd = b.run("cat /etc/motd");
    assert_eq!(a.run("echo from-a > /etc/motd && cat /etc/motd"), "from-a");
    assert_eq!(b.run("cat /etc/motd"), image_motd, "b sees a's write");
    assert_eq!(b.run("echo from-b > /etc/motd && cat /etc/motd"), "from-b");
    assert_eq!(a.run("cat /etc/motd"), "from-a", "a sees b's write");
    assert_eq!(a.exit(0), 0);
    assert_eq!(b.exit(0), 0);
}

/// Every entry under `dir` with what a change would change (ctime too: a chmod or chown).
fn snapshot(dir: &Path) -> Vec<String> {
    let mut entries = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        entries.push(format!(
            "{} {:o} {}:{} {} {}.{} {}.{} {}",
            path.display(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.rdev()
        ));
        if meta.is_dir() {
            todo.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    entries.sort();
    entries
}

/// A kept writable layer (`…kept/upper`), removed with its directory when the test ends.
struct Kept(PathBuf);

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn keep_shows_the_whiteout_in_the_writable_layer_and_the_image_is_unchanged() {
    let image = default_image();
    let before = snapshot(image);
    let out = run(&step_binary!(), &["--keep", "--", "sh", "-c", "rm /bin/ls && echo changed > /etc/motd"]);
    // Removed however the test ends, before anything is asserted.
    let kept = out
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Parent - the writable layer is kept in "))
        .map(|kept| Kept(PathBuf::from(kept)));
    assert_eq!(out.code, 0, "{out:?}");
    let upper = kept.unwrap_or_else(|| panic!("--keep says where the writable layer is: {out:?}"));
    // /bin is a link to usr/bin: the whiteout is usr/bin/ls, a character device 0/0.
    let whiteout = fs::symlink_metadata(upper.0.join("usr/bin/ls")).expect("a whiteout for /bin/ls");
    assert!(whiteout.file_type().is_char_device(), "{whiteout:?}");
    assert_eq!(whiteout.rdev(), 0, "a whiteout is device 0/0");
    assert_eq!(fs::read_to_string(upper.0.join("etc/motd")).unwrap(), "changed\n");
    assert_eq!(snapshot(image), before, "the image changed");
}

#[test]
fn keep_keeps_the_anonymous_volumes_beside_the_writable_layer() {
    let out = run(&step_binary!(), &["--keep", "-v", "/data", "--", "sh", "-c", "echo kept > /data/note"]);
    // Removed however the test ends, before anything is asserted.
    let _kept = out
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Parent - the writable layer is kept in "))
        .map(|kept| Kept(PathBuf::from(kept)));
    assert_eq!(out.code, 0, "{out:?}");
    let line = |prefix: &str| {
        out.stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("--keep says {prefix:?}: {out:?}"))
    };
    let upper = line("Parent - the writable layer is kept in ");
    let volumes = line("Parent - the anonymous volumes are kept in ");
    assert_eq!(volumes.parent(), upper.parent(), "beside the writable layer");
    let notes: Vec<String> = fs::read_dir(&volumes)
        .unwrap()
        .map(|volume| fs::read_to_string(volume.unwrap().path().join("note")).unwrap())
        .collect();
    assert_eq!(notes, ["kept\n"], "the anonymous volume, with what the container wrote in it");
}

#[test]
fn an_image_is_its_layers_in_the_order_listed() {
    let base = default_image().join("base");
    let image = TempDir::new("layers");
    let dir = image.path();
    // A layer is a real directory of its image: a copy of the default image's base.
    let copied =
        std::process::Command::new("cp").arg("-a").arg(&base).arg(dir.join("base")).status().unwrap();
    assert!(copied.success(), "copying {}", base.display());
    for (layer, motd) in [("one", "one\n"), ("two", "two\n")] {
        fs::create_dir_all(dir.join(layer).join("etc")).unwrap();
        fs::write(dir.join(layer).join("etc/motd"), motd).unwrap();
    }
    fs::create_dir_all(dir.join("one/srv/data")).unwrap();
    fs::write(dir.join("one/srv/data/kept"), "").unwrap();
    fs::write(dir.join("one/srv/data/deleted"), "").unwrap();
    whiteout(&dir.join("two/srv/data/deleted")).unwrap();
    fs::write(dir.join("layers"), "base\none\ntwo\n").unwrap();
    let out = run(
        &step_binary!(),
        &["--image", dir.to_str().unwrap(), "--", "sh", "-c", "cat /etc/motd; ls /srv/data"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("\ntwo\nkept\n"), "the top layer wins and hides what it deleted: {out:?}");
}
