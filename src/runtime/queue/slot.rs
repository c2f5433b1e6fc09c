//! Redis Cluster hash slots, computed the way Redis does (CRC16/XMODEM of the hash tag, modulo
//! 16384), so the keys of a partitioned queue can be named to land on evenly spaced slots.
//!
//! Why: a cluster gives each master a contiguous range of slots, and CRC16 of tags that differ
//! only in a trailing number (`q:1`, `q:2`, ...) does not spread evenly: six such tags put four
//! partitions on one master of three. Partition tags carry a salt chosen so partition p sits
//! at slot `slot0 + p * 16384 / N` (see `keys.rs`), which gives every master of an evenly split
//! cluster the same number of partitions whenever N is a multiple of the number of masters.

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
pub fn crc16(data: &[u8]) -> u16 {
    static TABLE: std::sync::LazyLock<[u16; 256]> = std::sync::LazyLock::new(|| {
        let mut table = [0u16; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut crc = (i as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
            *entry = crc;
        }
        table
    });
    data.iter().fold(0u16, |crc, &b| (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)])
}

/// The slot of a hash tag's content (what is between `{` and `}`).
pub fn of_tag(tag: &str) -> u16 {
    crc16(tag.as_bytes()) % SLOTS
}

/// The smallest salt `k` for which `tag(k)` hashes to `slot`. Every slot is reached within a
/// few hundred thousand tries; `None` only if none is (then callers keep an unsalted tag).
pub fn salt_for(slot: u16, tag: impl Fn(u32) -> String) -> Option<u32> {
    (0..1_000_000).find(|&k| of_tag(&tag(k)) == slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(crc16(b"123456789"), 0x31c3, "the CRC16/XMODEM check value");
        assert_eq!(of_tag("foo"), 12182);
        assert_eq!(of_tag("bar"), 5061);
        assert_eq!(of_tag("conveyor:q"), of_tag("conveyor:q"));
    }

    #[test]
    fn salts_reach_the_slot_asked_for() {
        let k = salt_for(777, |k| format!("conveyor:q:1:{k}")).unwrap();
        assert_eq!(of_tag(&format!("conveyor:q:1:{k}")), 777);
    }
}
