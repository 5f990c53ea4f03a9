//! A hostname the kernel or resolvers would not take is refused before anything starts.

use workshop_testkit::contract::assert_one_line_error;
use workshop_testkit::{run, step_binary};

#[test]
fn bad_hostnames_are_one_clear_line() {
    let too_long = "h".repeat(65);
    for bad in ["", too_long.as_str(), "under_score", "-leading-dash", "a..b"] {
        let out = run(&step_binary!(), &["--hostname", bad, "true"]);
        assert_eq!(out.code, 125, "--hostname {bad:?}: {out:?}");
        assert_one_line_error(&out.stderr, "hostname");
        assert!(!out.stdout.contains("start a container"), "nothing may start: {out:?}");
    }
}
