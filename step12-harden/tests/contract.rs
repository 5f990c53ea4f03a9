//! The command-line contract every step keeps (see scripts/testkit/src/contract.rs).

workshop_testkit::contract_tests!();
