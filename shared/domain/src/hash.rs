//! Stable content hashes: the same value hashes the same on every machine and in every run.

use sha2::{Digest, Sha256};

/// Hex SHA-256 of the parts, each length-prefixed so that `["ab","c"]` and `["a","bc"]` differ.
pub fn stable_hash<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_matter() {
        assert_ne!(stable_hash(["ab", "c"]), stable_hash(["a", "bc"]));
        assert_eq!(stable_hash(["a", "b"]), stable_hash(["a", "b"]));
    }
}
