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
