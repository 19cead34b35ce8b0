//! Timestamps written as RFC 3339 text, byte for byte what `chrono`'s own `Serialize` writes
//! (`2026-11-02T09:30:00.250Z`: UTC as `Z`, a fraction only when there is one, in 3, 6 or 9
//! digits), without its formatting machinery: a lead carries up to seven timestamps, and
//! every record a pull writes, every snapshot and every state hash writes them all. Years
//! outside 0–9999 and leap seconds are left to `chrono`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// The text of `t`, as `chrono` serializes it.
fn write(t: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
    let (year, nano) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return None;
    }
    let mut put = |at: usize, n: u32, digits: usize| {
        let mut n = n;
        for i in (at..at + digits).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    let mut len = 19;
    let fraction = match nano {
        0 => None,
        n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
        n if n % 1_000 == 0 => Some((n / 1_000, 6)),
        n => Some((n, 9)),
    };
    if let Some((value, digits)) = fraction {
        put(20, value, digits);
        len = 20 + digits;
    }
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        out[at] = c;
    }
    if len > 19 {
        out[19] = b'.';
    }
    out[len] = b'Z';
    Some(len + 1)
}

/// `#[serde(serialize_with = "crate::rfc3339::serialize")]` for a `DateTime<Utc>`.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match write(t, &mut buf) {
        // Only ASCII digits and separators were written.
        Some(len) => s.serialize_str(std::str::from_utf8(&buf[..len]).unwrap_or_default()),
        None => serde::Serialize::serialize(t, s),
    }
}

/// `#[serde(serialize_with = "crate::rfc3339::option")]` for an `Option<DateTime<Utc>>`.
pub fn option<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&Text(t)),
        None => s.serialize_none(),
    }
}

struct Text<'a>(&'a DateTime<Utc>);

impl serde::Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(t: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(t, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_fraction_width_and_the_edges_read_as_chrono_writes_them() {
        for text in [
            "2026-11-02T09:30:00Z",
            "2026-11-02T09:30:00.250Z",
            "2026-11-02T09:30:00.000250Z",
            "2026-11-02T09:30:00.000000250Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "+10000-01-01T00:00:00Z",
            "1969-12-31T23:59:59.1Z",
        ] {
            let t: DateTime<Utc> = text.parse().unwrap();
            assert_eq!(ours(&t), serde_json::to_string(&t).unwrap(), "{text}");
        }
        let none: Option<DateTime<Utc>> = None;
        let mut out = Vec::new();
        option(&none, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(out, b"null");
    }

    proptest! {
        #[test]
        fn any_timestamp_is_written_as_chrono_writes_it(
            secs in -62_167_219_200i64..400_000_000_000,
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000), (0u32..1_000_000).prop_map(|u| u * 1000), 0u32..1_000_000_000],
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(ours(&t), serde_json::to_string(&t).unwrap());
        }
    }
}
