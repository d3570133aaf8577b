//! Addresses: node IDs (the thesis' route-table indexes), RNTIs (link addresses in the MAC
//! header) and the plan mapping a terminal's IPv4 (tun) address to its node ID.

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, WireError};

/// A terminal's index: what `route_t { destID, nexthop }` stores instead of an IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u8);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A radio network temporary identifier: the link-layer address in the MAC header.
///
/// Ferry fixes the mapping `RNTI = 0x0100 + node ID` (inside LTE's C-RNTI range
/// 0x003D–0xFFF3), so a migrated route list needs no separate address table: the next
/// hop's node ID is enough to address it on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rnti(pub u16);

impl Rnti {
    /// Addressed to every listener (beacons, header-only grant blocks).
    pub const BROADCAST: Rnti = Rnti(0xFFFF);
    /// "No grant" in the MAC header's grant field (0 is not a valid C-RNTI).
    pub const NONE: Rnti = Rnti(0);
    const NODE_BASE: u16 = 0x0100;

    /// The RNTI a node uses on the air.
    pub fn of_node(node: NodeId) -> Rnti {
        Rnti(Self::NODE_BASE + u16::from(node.0))
    }

    /// The node an RNTI belongs to, if it is a node RNTI at all.
    pub fn node(self) -> Option<NodeId> {
        let off = self.0.checked_sub(Self::NODE_BASE)?;
        u8::try_from(off).ok().map(NodeId)
    }
}

impl std::fmt::Display for Rnti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// How an IPv4 address maps to a node ID. Every node of a deployment must use the same plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddressPlan {
    /// Node ID = last octet of an address inside `prefix.0/24` (default 192.168.40.0/24:
    /// the thesis' far end 192.168.40.8 is node 8, the pool side 192.168.40.9 is node 9).
    LastOctet {
        /// The first three octets of the /24.
        prefix: [u8; 3],
    },
    /// An explicit table supplied by configuration.
    Table(Vec<([u8; 4], NodeId)>),
}

impl Default for AddressPlan {
    fn default() -> Self {
        AddressPlan::LastOctet {
            prefix: [192, 168, 40],
        }
    }
}

impl AddressPlan {
    /// An explicit table; each address and each node ID may appear once.
    pub fn table(entries: Vec<([u8; 4], NodeId)>) -> Result<Self, ConfigError> {
        for (i, (ip, node)) in entries.iter().enumerate() {
            for (ip2, node2) in entries.iter().skip(i + 1) {
                if ip == ip2 || node == node2 {
                    return Err(ConfigError::Invalid {
                        field: "address plan",
                        value: format!("{ip:?} -> {node} duplicated"),
                        allowed: "each address and node ID once",
                    });
                }
            }
        }
        Ok(AddressPlan::Table(entries))
    }

    /// The node owning `ip`, if the plan covers it.
    pub fn node_of(&self, ip: [u8; 4]) -> Option<NodeId> {
        match self {
            AddressPlan::LastOctet { prefix } => {
                let [a, b, c, d] = ip;
                // .0 and .255 are the network and broadcast addresses, never a terminal.
                ([a, b, c] == *prefix && d != 0 && d != 255).then_some(NodeId(d))
            }
            AddressPlan::Table(t) => t.iter().find(|(a, _)| *a == ip).map(|(_, n)| *n),
        }
    }

    /// The address of `node`, if the plan covers it.
    pub fn ip_of(&self, node: NodeId) -> Option<[u8; 4]> {
        match self {
            AddressPlan::LastOctet { prefix } => {
                (node.0 != 0 && node.0 != 255).then_some([prefix[0], prefix[1], prefix[2], node.0])
            }
            AddressPlan::Table(t) => t.iter().find(|(_, n)| *n == node).map(|(a, _)| *a),
        }
    }

    /// The node an IP packet (as read from the tun) is addressed to.
    pub fn destination_node(&self, ip_packet: &[u8]) -> Result<Option<NodeId>, WireError> {
        Ok(self.node_of(ipv4_destination(ip_packet)?))
    }
}

/// The destination address of an IPv4 packet; anything else is a typed error.
pub fn ipv4_destination(packet: &[u8]) -> Result<[u8; 4], WireError> {
    let what = "IPv4 header";
    let first = *packet.first().ok_or(WireError::Truncated {
        what,
        need: 20,
        have: 0,
    })?;
    let version = first >> 4;
    if version != 4 {
        return Err(WireError::BadVersion { what, version });
    }
    match packet.get(16..20) {
        Some(&[a, b, c, d]) => Ok([a, b, c, d]),
        _ => Err(WireError::Truncated {
            what,
            need: 20,
            have: packet.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rnti_node_bijection() {
        for n in 0..=255u8 {
            assert_eq!(Rnti::of_node(NodeId(n)).node(), Some(NodeId(n)));
        }
        assert_eq!(Rnti::BROADCAST.node(), None);
        assert_eq!(Rnti::NONE.node(), None);
        assert_eq!(Rnti(0x0FF).node(), None);
    }

    #[test]
    fn last_octet_plan_maps_thesis_addresses() {
        let p = AddressPlan::default();
        assert_eq!(p.node_of([192, 168, 40, 8]), Some(NodeId(8)));
        assert_eq!(p.node_of([192, 168, 40, 9]), Some(NodeId(9)));
        assert_eq!(p.node_of([192, 168, 41, 9]), None);
        assert_eq!(p.node_of([192, 168, 40, 255]), None);
        assert_eq!(p.ip_of(NodeId(8)), Some([192, 168, 40, 8]));
    }

    #[test]
    fn table_plan_rejects_duplicates() {
        let t = AddressPlan::table(vec![([10, 0, 0, 1], NodeId(1)), ([10, 0, 0, 2], NodeId(2))]);
        let t = t.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.node_of([10, 0, 0, 2]), Some(NodeId(2)));
        assert_eq!(t.ip_of(NodeId(1)), Some([10, 0, 0, 1]));
        assert!(
            AddressPlan::table(vec![([10, 0, 0, 1], NodeId(1)), ([10, 0, 0, 2], NodeId(1))])
                .is_err()
        );
    }

    #[test]
    fn ipv4_destination_checks() {
        let mut pkt = [0u8; 20];
        pkt[0] = 0x45;
        pkt[16..20].copy_from_slice(&[192, 168, 40, 9]);
        assert_eq!(ipv4_destination(&pkt), Ok([192, 168, 40, 9]));
        assert!(matches!(
            ipv4_destination(&pkt[..19]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            ipv4_destination(&[]),
            Err(WireError::Truncated { .. })
        ));
        pkt[0] = 0x60;
        assert!(matches!(
            ipv4_destination(&pkt),
            Err(WireError::BadVersion { version: 6, .. })
        ));
    }
}
