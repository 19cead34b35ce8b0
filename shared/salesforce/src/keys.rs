//! Scope keys for Salesforce: 18-character record Ids. Their first 15 characters are base-62
//! digits `0-9A-Za-z` in ASCII order, so Ids of every object compare as numbers do — Contacts
//! (`003…`) before Leads (`00Q…`) — and the key space between two Ids can be halved
//! arithmetically. A split key is a well-formed Id (checksum included) that may name no
//! record: it is only ever a bound.

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

fn digit(c: u8) -> Option<u128> {
    DIGITS.iter().position(|d| *d == c).map(|p| p as u128)
}

/// The 15 significant characters as a number (None when not base-62).
pub fn value(id: &str) -> Option<u128> {
    let head = id.get(..15)?;
    head.bytes()
        .try_fold(0u128, |acc, c| Some(acc * 62 + digit(c)?))
}

/// The 18-character Id of a 15-digit base-62 number.
pub fn from_value(mut n: u128) -> String {
    let mut head = [b'0'; 15];
    for slot in head.iter_mut().rev() {
        *slot = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let sum: String = head
        .as_bytes()
        .chunks(5)
        .map(|chunk| {
            let flags = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            char::from(SUFFIX[flags])
        })
        .collect();
    format!("{head}{sum}")
}

/// A key strictly between `after` (None: before every Id) and `through`, about halfway.
pub fn split(after: Option<&str>, through: &str) -> Option<String> {
    let low = match after {
        Some(a) => value(a)?,
        None => 0,
    };
    let high = value(through)?;
    (high > low + 1).then(|| from_value(low + (high - low) / 2))
}

/// The first and last Id an object's key prefix allows.
pub fn object_range(prefix: &str) -> (String, String) {
    let first = from_value(value(&format!("{prefix}000000000000")).unwrap_or(0));
    let last = from_value(value(&format!("{prefix}zzzzzzzzzzzz")).unwrap_or(0));
    (first, last)
}

/// Whether an Id is well formed: 15 base-62 characters, or 18 with the right checksum.
pub fn well_formed(id: &str) -> bool {
    match id.len() {
        15 => value(id).is_some(),
        18 => value(id).is_some_and(|n| from_value(n) == id),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fall_strictly_inside_and_are_well_formed_ids() {
        let a = "0035g0000000001AAA";
        let b = from_value(value("0035g0000001000").unwrap());
        let mid = split(Some(a), &b).unwrap();
        assert!(a < mid.as_str() && mid < b, "{a} {mid} {b}");
        assert!(well_formed(&mid));
        // Across objects: between the last contact and a lead.
        let lead = "00Q5g0000000001AAA";
        let mid = split(Some(a), lead).unwrap();
        assert!(a < mid.as_str() && mid.as_str() < lead);
        // From the start.
        assert!(split(None, a).unwrap().as_str() < a);
        // Neighbours cannot be split.
        let next = from_value(value(a).unwrap() + 1);
        assert_eq!(split(Some(a), &next), None);
        assert_eq!(split(Some("not an id"), a), None);
    }

    #[test]
    fn ids_round_trip_and_checksums_match_salesforce() {
        assert_eq!(
            from_value(value("001A0000006Vm9r").unwrap()),
            "001A0000006Vm9rIAC"
        );
        assert!(well_formed("001A0000006Vm9rIAC"));
        assert!(!well_formed("001A0000006Vm9rIAD"));
        let (first, last) = object_range("003");
        assert!(first.starts_with("003000") && last.starts_with("003zzz"));
        assert!(last.as_str() < object_range("00Q").0.as_str());
    }
}
