//! Which of Redis Cluster's 16384 hash slots a key lives in, and which
//! master serves each slot: the slot map, read from `CLUSTER NODES`.

use std::collections::HashMap;

/// Hash slots in a Redis Cluster.
pub(super) const SLOTS: usize = 16384;

/// A slot that no master serves (in a [`SlotMap`]).
const UNASSIGNED: u16 = u16::MAX;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), what Redis
/// Cluster hashes keys with.
pub(super) fn crc16(bytes: &[u8]) -> u16 {
    const TABLE: [u16; 256] = {
        let mut table = [0u16; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = (i as u16) << 8;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ TABLE[((crc >> 8) as u8 ^ b) as usize]
    })
}

/// The slot of `key`: the CRC16 of its hash tag (what lies between the
/// first `{` and the first `}` after it, when that is not empty), or of the
/// whole key.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS as u16
}

/// One node of a `CLUSTER NODES` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeLine {
    /// `host:port` clients connect to.
    pub addr: String,
    pub master: bool,
    /// Flagged `fail` (or `fail?`): its slots are not served until a
    /// replica is promoted.
    pub failing: bool,
    /// Slot ranges it serves (masters), inclusive.
    pub ranges: Vec<(u16, u16)>,
}

/// The master of every slot, as indexes into a list of addresses.
#[derive(Clone)]
pub(super) struct SlotMap {
    owner: Box<[u16]>,
    /// `host:port` of each master, in index order.
    pub masters: Vec<String>,
    /// Every other node (replicas): asked for the map when the masters do
    /// not answer.
    pub others: Vec<String>,
}

impl SlotMap {
    /// The map described by `CLUSTER NODES` lines. A slot that two masters
    /// claim (a stale view during a failover) goes to the one not flagged
    /// `fail`.
    pub fn new(nodes: &[NodeLine]) -> SlotMap {
        let mut map = SlotMap {
            owner: vec![UNASSIGNED; SLOTS].into_boxed_slice(),
            masters: Vec::new(),
            others: Vec::new(),
        };
        let mut ordered: Vec<&NodeLine> = nodes.iter().collect();
        // Failing masters first, so that a healthy claimant overrides them.
        ordered.sort_by_key(|n| !n.failing);
        for node in ordered {
            if !node.master || node.ranges.is_empty() {
                map.others.push(node.addr.clone());
                continue;
            }
            let index = map.index_of(&node.addr);
            for &(start, end) in &node.ranges {
                for slot in start..=end.min(SLOTS as u16 - 1) {
                    map.owner[slot as usize] = index;
                }
            }
        }
        map
    }

    /// The index of `addr` among the masters, added if new.
    fn index_of(&mut self, addr: &str) -> u16 {
        match self.masters.iter().position(|m| m == addr) {
            Some(i) => i as u16,
            None => {
                self.masters.push(addr.to_owned());
                (self.masters.len() - 1) as u16
            }
        }
    }

    /// The index of the master serving `slot`, if any.
    pub fn owner(&self, slot: u16) -> Option<usize> {
        match self.owner.get(slot as usize) {
            Some(&i) if i != UNASSIGNED => Some(i as usize),
            _ => None,
        }
    }

    /// The same map with `slot` served by `addr` (after a `MOVED`).
    pub fn moved(&self, slot: u16, addr: &str) -> SlotMap {
        let mut map = self.clone();
        let index = map.index_of(addr);
        if let Some(owner) = map.owner.get_mut(slot as usize) {
            *owner = index;
        }
        map
    }

    /// The masters that serve at least one slot, once each.
    pub fn serving(&self) -> Vec<usize> {
        let mut used = vec![false; self.masters.len()];
        for &o in self.owner.iter() {
            if o != UNASSIGNED {
                used[o as usize] = true;
            }
        }
        (0..used.len()).filter(|&i| used[i]).collect()
    }

    /// How many slots have a master.
    pub fn covered(&self) -> usize {
        self.owner.iter().filter(|&&o| o != UNASSIGNED).count()
    }
}

/// The nodes of a `CLUSTER NODES` reply. `asked`: the `host:port` the reply
/// came from, for a node that does not know its own address yet (an empty
/// host). Lines that are not understood, and nodes without an address
/// (`noaddr`, `handshake`), are skipped.
pub(super) fn parse_nodes(text: &str, asked: &str) -> Vec<NodeLine> {
    let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
    let mut nodes = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if flags.iter().any(|f| matches!(*f, "noaddr" | "handshake")) {
            continue;
        }
        // `ip:port@cport[,hostname]`
        let endpoint = fields[1].split([',', '@']).next().unwrap_or("");
        let Some((host, port)) = endpoint.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if port == 0 {
            continue;
        }
        let host = if host.is_empty() || host == "?" {
            asked_host
        } else {
            host
        };
        let ranges = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| {
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .filter(|&(a, b): &(u16, u16)| a <= b && (b as usize) < SLOTS)
            .collect();
        nodes.push(NodeLine {
            addr: format!("{host}:{port}"),
            master: flags.contains(&"master"),
            failing: flags.iter().any(|f| matches!(*f, "fail" | "fail?")),
            ranges,
        });
    }
    // A node listed twice (never, from a sane server) counts once.
    let mut seen = HashMap::new();
    nodes.retain(|n| seen.insert(n.addr.clone(), ()).is_none());
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(
            key_slot(b"foo{}{bar}"),
            key_slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn cluster_nodes_become_a_slot_map() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master - 0 1426238318243 3 connected 10923-16383 [93->-292f]
e7d1 :30001@40001 myself,master - 0 0 1 connected 0-5460
dead 127.0.0.1:30009@40009 master,fail - 0 0 1 connected 0-10
junk
6ec2 :0@0 master,noaddr - 0 0 0 disconnected 11-12
";
        let nodes = parse_nodes(text, "10.0.0.1:30001");
        assert_eq!(nodes.len(), 5);
        let map = SlotMap::new(&nodes);
        assert_eq!(map.covered(), SLOTS);
        let addr = |slot| map.masters[map.owner(slot).unwrap()].as_str();
        assert_eq!(addr(0), "10.0.0.1:30001", "the healthy claimant wins");
        assert_eq!(addr(5460), "10.0.0.1:30001");
        assert_eq!(addr(5461), "127.0.0.1:30002");
        assert_eq!(addr(16383), "127.0.0.1:30003");
        assert_eq!(map.others, ["127.0.0.1:30004"]);
        let serving: Vec<&str> = map
            .serving()
            .iter()
            .map(|&i| map.masters[i].as_str())
            .collect();
        assert_eq!(serving.len(), 3, "not the failed master: {serving:?}");
        assert!(!serving.contains(&"127.0.0.1:30009"));
        let moved = map.moved(5461, "127.0.0.1:30005");
        assert_eq!(moved.masters[moved.owner(5461).unwrap()], "127.0.0.1:30005");
        assert_eq!(moved.masters[moved.owner(5462).unwrap()], "127.0.0.1:30002");
        assert!(SlotMap::new(&[]).owner(0).is_none());
    }
}
