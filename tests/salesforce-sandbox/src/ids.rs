//! Salesforce record Ids: a 3-character key prefix (the object), a 2-character pod, a reserved
//! `0`, a 9-character base-62 counter — 15 characters, case-sensitive — and a 3-character
//! checksum of the case of the first 15 that makes the 18-character form case-insensitive.
//! The base-62 digits are `0-9A-Za-z`, ASCII order: Ids of one object compare as their
//! counters do.

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The pod every sandbox record lives on.
pub const POD: &str = "5g";

/// The 3-character suffix of a 15-character Id.
pub fn checksum(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let flags = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            char::from(SUFFIX[flags])
        })
        .collect()
}

/// The 18-character Id of record `n` of the object with `prefix` (`00Q` Lead, `003` Contact…).
pub fn id(prefix: &str, n: u64) -> String {
    let mut counter = [b'0'; 9];
    let mut rest = n;
    for slot in counter.iter_mut().rev() {
        *slot = DIGITS[(rest % 62) as usize];
        rest /= 62;
    }
    let id15 = format!(
        "{prefix}{POD}0{}",
        std::str::from_utf8(&counter).unwrap_or("000000000")
    );
    let sum = checksum(&id15);
    format!("{id15}{sum}")
}

/// The counter of an Id of this sandbox (15 or 18 characters), if it is one.
pub fn counter(id: &str) -> Option<u64> {
    let digits = id.get(6..15)?;
    digits.bytes().try_fold(0u64, |acc, c| {
        let d = DIGITS.iter().position(|x| *x == c)? as u64;
        acc.checked_mul(62)?.checked_add(d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_salesforce_checksums_and_sort_by_counter() {
        // Salesforce's documented example: 001A0000006Vm9r → 001A0000006Vm9rIAC.
        assert_eq!(checksum("001A0000006Vm9r"), "IAC");
        let a = id("003", 61);
        let b = id("003", 62);
        assert_eq!(a.len(), 18);
        assert!(a < b, "{a} {b}");
        assert_eq!(counter(&b), Some(62));
        assert!(id("003", 5) < id("00Q", 1), "contacts sort before leads");
    }
}
