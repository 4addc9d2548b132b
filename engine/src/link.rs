//! Per-link properties: what a NIC's link should be (from the topology) and
//! what the host has of it, compared into plan steps that change the link
//! in place, without restarting its VM. Today's properties are the TAP's
//! own: up on the host, plugged into its network's bridge. Every later one
//! (link state seen by the guest, impairments) is a field here, observed in
//! `lab::observe`, explained in [`change`], and applied by
//! `Action::UpdateLink` in `lab::apply`.

use serde::{Deserialize, Serialize};
use topology::names::{bridge_ifname, tap_ifname};
use topology::Topology;

/// The properties of one NIC's link that change in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkProps {
    /// The TAP is administratively up on the host.
    pub up: bool,
    /// The bridge the TAP is plugged into (`None`: none).
    pub bridge: Option<String>,
}

/// What NIC `nic` of `vm` should have (the NIC exists).
pub fn desired(t: &Topology, vm: &str, nic: usize) -> Option<LinkProps> {
    let n = t.node(vm)?.nics.get(nic)?;
    Some(LinkProps {
        up: true,
        bridge: Some(bridge_ifname(&t.name, &n.network)),
    })
}

/// Every NIC's TAP with what it should have: (vm, nic, TAP, props).
pub fn all_desired(t: &Topology) -> Vec<(String, usize, String, LinkProps)> {
    t.nodes
        .iter()
        .flat_map(|node| {
            (0..node.nics.len()).filter_map(move |i| {
                Some((
                    node.name.clone(),
                    i,
                    tap_ifname(&t.name, &node.name, i),
                    desired(t, &node.name, i)?,
                ))
            })
        })
        .collect()
}

/// Why a link must be changed, if what the host has differs from what is
/// wanted. Every field is destructured, so a new one does not compile
/// until it is explained here.
pub fn change(have: &LinkProps, want: &LinkProps) -> Option<String> {
    if have == want {
        return None;
    }
    let LinkProps { up, bridge } = want;
    let mut what = Vec::new();
    if have.up != *up {
        what.push(
            if *up {
                "its TAP is down on the host"
            } else {
                "its TAP is up on the host"
            }
            .to_string(),
        );
    }
    if &have.bridge != bridge {
        what.push(match &have.bridge {
            Some(b) => format!("its TAP is plugged into {b}"),
            None => "its TAP is plugged into no bridge".to_string(),
        });
    }
    Some(what.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Topology {
        topology::parse_and_validate(topology::examples::ROUTER, topology::Format::Yaml).unwrap()
    }

    #[test]
    fn every_nic_wants_its_tap_up_on_its_network_s_bridge() {
        let t = router();
        let all = all_desired(&t);
        assert_eq!(all.len(), 4);
        let (vm, nic, tap, props) = &all[1];
        assert_eq!((vm.as_str(), *nic), ("r1", 1));
        assert_eq!(tap, &tap_ifname("router", "r1", 1));
        assert_eq!(
            props.bridge.as_deref(),
            Some(bridge_ifname("router", "right").as_str())
        );
        assert!(props.up);
    }

    #[test]
    fn a_difference_is_named_and_none_is_nothing() {
        let want = desired(&router(), "h1", 0).unwrap();
        assert_eq!(change(&want, &want), None);
        let down = LinkProps {
            up: false,
            ..want.clone()
        };
        assert_eq!(change(&down, &want).unwrap(), "its TAP is down on the host");
        let loose = LinkProps {
            bridge: None,
            ..want.clone()
        };
        assert_eq!(
            change(&loose, &want).unwrap(),
            "its TAP is plugged into no bridge"
        );
    }
}
