//! The image builder (`mkimage`, and the default image on first use): one complete image when
//! several build at once, and it runs.

use std::process::{Command, Stdio};

use workshop_testkit::{TempDir, run};

#[test]
fn concurrent_builds_make_one_complete_image_that_runs() {
    workshop_testkit::require_root();
    let dir = TempDir::new("concurrent-image");
    let image = dir.path().join("image");
    let builders: Vec<_> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_mkimage")).arg(&image).stdout(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let outputs: Vec<_> = builders.into_iter().map(|b| b.wait_with_output().unwrap()).collect();
    assert!(outputs.iter().all(|o| o.status.success()), "{outputs:?}");
    let built = outputs.iter().filter(|o| String::from_utf8_lossy(&o.stdout).starts_with("built")).count();
    assert_eq!(built, 1, "exactly one builder builds, the others find it done");
    let leftovers = workshop_testkit::half_built_in(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let step10 = env!("CARGO_BIN_EXE_step10-overlay").as_ref();
    let script = "cat /srv/www/index.html; ls /srv/www; ls /srv/www/drafts | wc -l";
    let out = run(step10, &["--image", image.to_str().unwrap(), "--", "sh", "-c", script]);
    assert_eq!(out.code, 0, "{out:?}");
    // release's index.html over web's; web's debug.html deleted, its drafts hidden (opaque).
    assert!(out.stdout.contains("<h1>Release 1.0</h1>\ndrafts\nindex.html\n0\n"), "{out:?}");
}

/// The default image is rebuilt when an older image builder made it, or when its base layer is
/// a rootfs that step 06's builder would now build differently.
#[test]
fn a_stale_default_image_is_rebuilt() {
    let step10 = env!("CARGO_BIN_EXE_step10-overlay").as_ref();
    let image = "/var/lib/workshop/images/default";
    let script = format!(
        r#"
        "$STEP" -- true
        echo builder=0 > {image}/workshop-image
        "$STEP" -- cat /etc/motd
        cat {image}/workshop-image
        sed -i 's/^builder=.*/builder=1/' {image}/base/etc/workshop-rootfs
        "$STEP" -- grep builder= /etc/workshop-rootfs
        ls -A /var/lib/workshop/images
        "#
    );
    let out = workshop_testkit::with_empty_cache(&script, &[("STEP", step10)]);
    assert_eq!(out.code, 0, "{out:?}");
    let printed: Vec<&str> =
        out.stdout.lines().filter(|l| !l.starts_with("Parent") && !l.starts_with("Container")).collect();
    assert_eq!(
        printed,
        [
            "Welcome to a container of the workshop's default image.",
            "builder=1",
            &format!("builder={}", step06_rootfs::default_rootfs::BUILDER),
            "default"
        ],
        "{out:?}"
    );
    assert!(out.stderr.contains("not built by version 1 of the image builder"), "{out:?}");
    assert!(out.stderr.contains("its base layer is stale"), "{out:?}");
}

/// `mkimage DIR` builds DIR where the caller is, names it in full, and leaves nothing beside it.
#[test]
fn mkimage_builds_a_relative_dir_where_it_is_run() {
    let dir = TempDir::new("relative-image");
    let mut mkimage = Command::new(env!("CARGO_BIN_EXE_mkimage"));
    let out = workshop_testkit::run_command(mkimage.arg("img").current_dir(dir.path()));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), format!("built {}", dir.path().join("img").display()), "{out:?}");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries, ["img"], "only the image, no lock file");
}
