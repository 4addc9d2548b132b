//! Bridges and TAPs for real, inside a network namespace this test makes
//! and always deletes (a guard removes it even when an assertion fails).
//! Needs root.

use std::process::Command;

use engine::net::{self, NetError};

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = net::delete_namespace(&self.0);
    }
}

#[test]
fn bridges_and_taps_are_created_adopted_and_deleted_only_when_owned() {
    let ns = Ns(format!("minivm-test-net-{}", std::process::id()));
    net::create_namespace(&ns.0).unwrap();
    net::create_namespace(&ns.0).unwrap(); // exists: success
    let n = Some(ns.0.as_str());
    let (br, tap) = ("mvbtest0", "mvttest0");
    let br_alias = net::owner_alias("lab1", "bridge/lan");
    let tap_alias = net::owner_alias("lab1", "tap/vm1/0");

    net::ensure_bridge(n, br, &br_alias).unwrap();
    net::ensure_bridge(n, br, &br_alias).unwrap(); // idempotent
    net::ensure_tap(n, tap, &tap_alias, br).unwrap();
    net::ensure_tap(n, tap, &tap_alias, br).unwrap(); // idempotent

    let links = net::links(n).unwrap();
    let b = links.iter().find(|l| l.name == br).expect("bridge");
    let t = links.iter().find(|l| l.name == tap).expect("tap");
    assert_eq!(b.kind.as_deref(), Some("bridge"));
    assert_eq!(b.alias.as_deref(), Some(br_alias.as_str()));
    assert_eq!(t.kind.as_deref(), Some("tun"));
    assert_eq!(t.alias.as_deref(), Some(tap_alias.as_str()));
    assert_eq!(t.controller, Some(b.index), "the TAP is on the bridge");

    // The host namespace is untouched.
    let host = net::links(None).unwrap();
    assert!(!host.iter().any(|l| l.name == br || l.name == tap));

    // QEMU gets a queue fd of the persistent TAP.
    let fd = net::open_tap(n, tap).unwrap();
    drop(fd);
    assert!(matches!(
        net::open_tap(n, "mvtnothere"),
        Err(NetError::NoLink(_))
    ));

    // Something another owner marked is never adopted nor deleted.
    let ip = |args: &[&str]| {
        assert!(Command::new("ip")
            .args(["-n", &ns.0])
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    ip(&["link", "add", "mvbforeign", "type", "bridge"]);
    ip(&["link", "set", "mvbforeign", "alias", "someone-else"]);
    assert!(matches!(
        net::ensure_bridge(n, "mvbforeign", &br_alias),
        Err(NetError::NotOwned { .. })
    ));
    assert!(matches!(
        net::delete_owned(n, "mvbforeign", &br_alias),
        Err(NetError::NotOwned { .. })
    ));
    assert!(matches!(
        net::delete_owned(n, tap, &br_alias),
        Err(NetError::NotOwned { .. })
    ));

    // A bridge of ours whose create was interrupted before its alias is adopted.
    ip(&["link", "add", "mvbhalf", "type", "bridge"]);
    net::ensure_bridge(n, "mvbhalf", &br_alias).unwrap();
    net::delete_owned(n, "mvbhalf", &br_alias).unwrap();

    net::delete_owned(n, tap, &tap_alias).unwrap();
    // A bridge of ours whose create was interrupted before its alias is adopted.
    ip(&["link", "add", "mvbhalf", "type", "bridge"]);
    net::ensure_bridge(n, "mvbhalf", &br_alias).unwrap();
    net::delete_owned(n, "mvbhalf", &br_alias).unwrap();

    net::delete_owned(n, tap, &tap_alias).unwrap(); // gone: success
    net::delete_owned(n, br, &br_alias).unwrap();
    let names: Vec<String> = net::links(n).unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(
        names
            .iter()
            .filter(|x| x.starts_with("mv"))
            .collect::<Vec<_>>(),
        ["mvbforeign"]
    );

    let name = ns.0.clone();
    drop(ns);
    assert!(!net::namespace_exists(&name));
    assert!(matches!(
        net::links(Some(&name)),
        Err(NetError::NoNamespace(_))
    ));
}
