//! Per-link properties: what a NIC's link should be (from the topology) and
//! what the host has of it, compared into plan steps that change the link
//! in place, without restarting its VM: the TAP up on the host and plugged
//! into its network's bridge, the link as the guest sees it (carrier, by
//! QMP `set_link`), and the impairments of what the VM sends
//! (`crate::impair`). Each is a field here, observed in `lab::observe`,
//! explained in [`change`], and applied by `Action::UpdateLink` in
//! `lab::apply`.

use serde::{Deserialize, Serialize};
use topology::names::{bridge_ifname, tap_ifname};
use topology::{Impair, Topology};

/// The properties of one NIC's link that change in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkProps {
    /// The TAP is administratively up on the host.
    pub up: bool,
    /// The bridge the TAP is plugged into (`None`: none).
    pub bridge: Option<String>,
    /// The guest sees its link up (the topology's `up`).
    pub carrier: bool,
    /// What is done to the frames the VM sends.
    pub impair: Impair,
}

impl LinkProps {
    /// What a TAP has when it was just made and its VM just started.
    pub fn fresh(&self) -> LinkProps {
        LinkProps {
            carrier: true,
            impair: Impair::NONE,
            ..self.clone()
        }
    }
}

/// What NIC `nic` of `vm` should have (the NIC exists).
pub fn desired(t: &Topology, vm: &str, nic: usize) -> Option<LinkProps> {
    let t = &*topology::mgmt::effective(t);
    let n = t.node(vm)?.nics.get(nic)?;
    Some(LinkProps {
        up: true,
        bridge: Some(bridge_ifname(&t.name, &n.network)),
        carrier: n.up,
        impair: n.impair,
    })
}

/// Every NIC's TAP with what it should have: (vm, nic, TAP, props).
pub fn all_desired(t: &Topology) -> Vec<(String, usize, String, LinkProps)> {
    let t = &*topology::mgmt::effective(t);
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
    let LinkProps {
        up,
        bridge,
        carrier,
        impair,
    } = want;
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
    if have.carrier != *carrier {
        what.push(
            if *carrier {
                "the guest sees its link down (set up)"
            } else {
                "the guest sees its link up (set down)"
            }
            .to_string(),
        );
    }
    if &have.impair != impair {
        let label = |i: &Impair| {
            if i.is_none() {
                "none".to_string()
            } else {
                i.label()
            }
        };
        what.push(format!(
            "impairment {} → {}",
            label(&have.impair),
            label(impair)
        ));
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
        let slow = LinkProps {
            carrier: false,
            impair: Impair {
                delay_ms: 40,
                loss_pct: 0.5,
                ..Impair::NONE
            },
            ..want.clone()
        };
        assert_eq!(
            change(&want, &slow).unwrap(),
            "the guest sees its link up (set down), impairment none → 40ms 0.5% loss"
        );
        assert_eq!(
            change(&slow, &want).unwrap(),
            "the guest sees its link down (set up), impairment 40ms 0.5% loss → none"
        );
    }
}
