//! Tests that need a network with no address: a listen on an unspecified
//! address (`0.0.0.0`, `::`) where the device has none of its family,
//! which loopback cannot give (it always has 127.0.0.1 and ::1). Such a
//! test runs again in a process of its own, in a network namespace it
//! makes ([`in_a_network_with_no_address`]); both transports' tests and
//! the relay server's use it, and the node's, with the feature
//! `network-namespace-tests` (only tests turn it on).

/// Set in the process [`in_a_network_with_no_address`] starts: the test
/// runs its body there, not another process.
const IN_A_NETWORK_WITH_NO_ADDRESS: &str = "STRAND_TEST_IN_A_NETWORK_WITH_NO_ADDRESS";

/// A runtime for the body of the test `name` of the module `module` (its
/// `module_path!()`), where this process is the one to run it: in a
/// network with no address, which it checks (no IPv4 address). Otherwise it runs that test again, in a process of its own in
/// a network namespace of its own, made with `unshare --map-root-user
/// --net` (no privilege needed where user namespaces are allowed): its
/// one interface, loopback, is down and has no address, and the process
/// may bring it up ([`ip`]). Then it is `None`: this process has nothing
/// more to do. Panics with the other process's output if the test fails
/// there; says SKIPPED on stderr where no namespace can be made (no
/// `unshare`, or user namespaces not allowed), or where there is no `ip`
/// to bring its loopback up with.
pub fn in_a_network_with_no_address(module: &str, name: &str) -> Option<tokio::runtime::Runtime> {
    if std::env::var_os(IN_A_NETWORK_WITH_NO_ADDRESS).is_some() {
        assert_eq!(
            ip(&["-4", "-o", "addr"]),
            "",
            "the namespace has no IPv4 address"
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        return Some(runtime);
    }
    // The test's body brings loopback up with `ip`: without it, it would
    // fail there, not be skipped.
    let runs = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if !runs("unshare", &["--map-root-user", "--net", "true"]) || !runs("ip", &["-V"]) {
        eprintln!(
            "SKIPPED: cannot make a network namespace here (needs util-linux's unshare and \
             user namespaces, or root, and iproute2's ip)"
        );
        return None;
    }
    // The harness names a test by its path less the crate's name.
    let (_crate, module) = module.split_once("::").expect("a module path");
    let test = format!("{module}::{name}");
    let out = std::process::Command::new("unshare")
        .args(["--map-root-user", "--net", "--"])
        .arg(std::env::current_exe().expect("this test binary"))
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_A_NETWORK_WITH_NO_ADDRESS, "1")
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A name that matched no test would pass with "0 passed".
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} in a network with no address: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    None
}

/// What iproute2's `ip` says, run with `args` in this process's network.
pub fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2's ip runs");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("ip's output is text")
}
