//! Names: the rules for lab, network, node and image names, and the host
//! object names derived from them (interfaces, namespaces, MACs).
//!
//! Derived interface names are `mvb`/`mvt` + 8 hex digits of a hash of the
//! lab and object names: always 11 characters (Linux allows 15), unique in
//! practice across labs, and stable, so a later run finds what an earlier one
//! made. The owner is recorded in the interface alias; see the engine.

use crate::net::Mac;

/// Longest lab, network or node name.
pub const MAX_NAME_LEN: usize = 32;
/// Longest image name.
pub const MAX_IMAGE_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} characters long; at most {1} are allowed")]
    TooLong(usize, usize),
    #[error("must start with a lowercase letter a-z")]
    BadStart,
    #[error("has {0:?}; only lowercase letters a-z, digits and '-' are allowed")]
    BadChar(char),
    #[error("has {0:?}; only letters, digits, '-', '_' and '.' are allowed, and it must not start with '.'")]
    BadImageChar(char),
}

/// Checks a lab, network or node name: lowercase letters, digits and `-`,
/// starting with a letter, at most 32 characters. Such a name is safe as a
/// path component and in an interface alias.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let len = name.chars().count();
    if len == 0 {
        return Err(NameError::Empty);
    }
    if len > MAX_NAME_LEN {
        return Err(NameError::TooLong(len, MAX_NAME_LEN));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::BadChar(c));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(NameError::BadStart);
    }
    Ok(())
}

/// Checks an image name, which becomes a file name in the image store:
/// letters, digits, `-`, `_`, `.`, not starting with `.`, at most 64
/// characters. `..`, `/` and NUL can never pass.
pub fn check_image_name(name: &str) -> Result<(), NameError> {
    let len = name.chars().count();
    if len == 0 {
        return Err(NameError::Empty);
    }
    if len > MAX_IMAGE_NAME_LEN {
        return Err(NameError::TooLong(len, MAX_IMAGE_NAME_LEN));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NameError::BadImageChar(c));
    }
    if name.starts_with('.') {
        return Err(NameError::BadImageChar('.'));
    }
    Ok(())
}

/// FNV-1a, 64 bit: a stable hash that is the same on every platform and
/// every build (std's hashers promise neither).
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f; // unit separator: ("ab","c") differs from ("a","bc")
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Interface name of a network's bridge, e.g. `mvb1a2b3c4d`.
pub fn bridge_ifname(lab: &str, network: &str) -> String {
    format!("mvb{:08x}", stable_hash(&["bridge", lab, network]) as u32)
}

/// Interface name of the TAP behind a node's NIC, e.g. `mvt1a2b3c4d`.
pub fn tap_ifname(lab: &str, node: &str, nic_index: usize) -> String {
    format!(
        "mvt{:08x}",
        stable_hash(&["tap", lab, node, &nic_index.to_string()]) as u32
    )
}

/// Interface name of the IFB that shapes what a NIC sends (netem), e.g.
/// `mvi1a2b3c4d`.
pub fn ifb_ifname(lab: &str, node: &str, nic_index: usize) -> String {
    format!(
        "mvi{:08x}",
        stable_hash(&["ifb", lab, node, &nic_index.to_string()]) as u32
    )
}

/// The TAP a NIC's frames are redirected to for the relay, e.g. `mvq1a2b3c4d`.
pub fn relay_in_ifname(lab: &str, node: &str, nic_index: usize) -> String {
    format!(
        "mvq{:08x}",
        stable_hash(&["relay-in", lab, node, &nic_index.to_string()]) as u32
    )
}

/// The bridge port the relay writes a NIC's frames to, e.g. `mvr1a2b3c4d`.
pub fn relay_out_ifname(lab: &str, node: &str, nic_index: usize) -> String {
    format!(
        "mvr{:08x}",
        stable_hash(&["relay-out", lab, node, &nic_index.to_string()]) as u32
    )
}

/// The host's end of an isolated lab's management veth, e.g. `mvh1a2b3c4d`
/// (it holds the management network's gateway address).
pub fn mgmt_host_ifname(lab: &str) -> String {
    format!("mvh{:08x}", stable_hash(&["mgmt-host", lab]) as u32)
}

/// The lab namespace's end of the management veth (a port of the
/// management bridge), e.g. `mvn1a2b3c4d`.
pub fn mgmt_peer_ifname(lab: &str) -> String {
    format!("mvn{:08x}", stable_hash(&["mgmt-peer", lab]) as u32)
}

/// Network namespace of an isolated lab.
pub fn netns_name(lab: &str) -> String {
    format!("minivm-{lab}")
}

/// The stable MAC a NIC gets when the file sets none: QEMU's locally
/// administered 52:54:00 prefix and three bytes of a hash.
pub fn generated_mac(lab: &str, node: &str, nic_index: usize) -> Mac {
    let h = stable_hash(&["mac", lab, node, &nic_index.to_string()]);
    Mac([0x52, 0x54, 0x00, (h >> 16) as u8, (h >> 8) as u8, h as u8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("vm-1").is_ok());
        assert!(check_name(&"a".repeat(32)).is_ok());
        assert_eq!(check_name(&"a".repeat(33)), Err(NameError::TooLong(33, 32)));
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name("1vm"), Err(NameError::BadStart));
        assert_eq!(check_name("-vm"), Err(NameError::BadStart));
        assert_eq!(check_name("VM"), Err(NameError::BadChar('V')));
        assert_eq!(check_name("../x"), Err(NameError::BadChar('.')));
        assert_eq!(check_name("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(check_name("a\0b"), Err(NameError::BadChar('\0')));
        // Cyrillic 'а' looks like Latin 'a'.
        assert_eq!(check_name("\u{430}bc"), Err(NameError::BadChar('\u{430}')));
    }

    #[test]
    fn image_names() {
        assert!(check_image_name("debian-12.qcow2_v1").is_ok());
        assert!(check_image_name("..").is_err());
        assert!(check_image_name("../x").is_err());
        assert!(check_image_name("a/b").is_err());
        assert!(check_image_name(".hidden").is_err());
        assert!(check_image_name("").is_err());
    }

    #[test]
    fn derived_names_fit_and_are_stable() {
        let b = bridge_ifname(&"l".repeat(32), &"n".repeat(32));
        assert_eq!(b.len(), 11);
        assert_eq!(b, bridge_ifname(&"l".repeat(32), &"n".repeat(32)));
        assert_ne!(bridge_ifname("lab1", "lan"), bridge_ifname("lab2", "lan"));
        assert_ne!(tap_ifname("lab", "vm1", 0), tap_ifname("lab", "vm1", 1));
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        let m = generated_mac("lab", "vm1", 0);
        assert!(m.is_unicast());
        assert_eq!(&m.0[..3], &[0x52, 0x54, 0x00]);
    }
}
