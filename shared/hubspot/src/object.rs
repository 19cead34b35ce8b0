//! One HubSpot object (contact, company, deal) as the search and batch endpoints return it,
//! read with as few allocations as the format allows.
//!
//! A pull reads every property of every object of every page, so this is the adapter's hot
//! path: with a `HashMap<String, serde_json::Value>` a 22-property contact cost about 70 heap
//! allocations (a key and a value per property, the table's growth, a copy per read). Here an
//! object's properties live in **one text buffer** with a small index beside it: two
//! allocations per object, keys and values read straight from the response body, lookups
//! answered as `&str` slices of the buffer.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An object: its id, properties and `updatedAt`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotObject {
    /// HubSpot sends ids as strings; a number is accepted and kept as its text.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    #[serde(default)]
    pub properties: Properties,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl HubSpotObject {
    /// The id's text.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A property as trimmed, non-empty text (HubSpot sends `null` or `""` for unset).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// [`Self::text`], owned.
    pub fn owned(&self, name: &str) -> Option<String> {
        self.text(name).map(str::to_owned)
    }
}

/// What a property's value was in the JSON: its text is kept either way, and the kind lets
/// the raw record be written back as it came (for quarantine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// A JSON number, bool or (never sent by HubSpot) nested value: kept as its JSON text.
    Json,
    Null,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key_end: u32,
    value_end: u32,
    /// [`key_hash`] of the key: a lookup compares text only where the hashes agree.
    key_hash: u32,
    kind: Kind,
}

/// FNV-1a of a property name: a few cycles for HubSpot's short ASCII names, and a lookup then
/// compares 4 bytes per entry instead of the names themselves.
fn key_hash(key: &str) -> u32 {
    key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Where a key hash starts its probe in an index of `len` (a power of two, at least 2) slots:
/// its top bits after a Fibonacci multiply. FNV's low bits alone depend only on the low bits of
/// each byte, and names that differ elsewhere (`hs_lead_status`, `hs_lead_source`) pile up.
fn slot(hash: u32, len: usize) -> usize {
    (hash.wrapping_mul(0x9E37_79B9) >> (32 - len.trailing_zeros())) as usize
}

/// An object's properties: keys and values in one buffer, in the order received.
///
/// Entry `i`'s key is `text[previous value_end..key_end]` and its value
/// `text[key_end..value_end]`. Lookups go through `index`, an open-addressing table of entry
/// numbers by key hash built once per object: mapping a contact makes about 30 lookups, and
/// scanning the entries' hashes for each was 17 % of a pull's CPU (comparing names, before
/// the hashes, 12 %).
#[derive(Clone, Default)]
pub struct Properties {
    text: String,
    entries: Vec<Entry>,
    /// Entry number + 1 by [`slot`] of its key hash, linear probing; 0 is empty. Twice the
    /// entries, a power of two; empty when there are none. The first of repeated keys wins.
    index: Vec<u32>,
}

impl Properties {
    fn key(&self, i: usize) -> &str {
        let start = i
            .checked_sub(1)
            .map_or(0, |p| self.entries[p].value_end as usize);
        &self.text[start..self.entries[i].key_end as usize]
    }

    /// Build `index` over every entry.
    fn build_index(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        let len = (self.entries.len() * 2).next_power_of_two();
        let mask = len - 1;
        // The buffer of an object read before (see [`ObjectInto`]) is reused.
        let mut index = std::mem::take(&mut self.index);
        index.clear();
        index.resize(len, 0);
        for (i, entry) in self.entries.iter().enumerate() {
            let mut at = slot(entry.key_hash, len);
            loop {
                match index[at] {
                    0 => {
                        // Entries are capped at u32 by the 4 GiB text they index.
                        index[at] = u32::try_from(i + 1).unwrap_or(u32::MAX);
                        break;
                    }
                    taken => {
                        let other = taken as usize - 1;
                        if self.entries[other].key_hash == entry.key_hash
                            && self.key(other) == self.key(i)
                        {
                            break;
                        }
                        at = (at + 1) & mask;
                    }
                }
            }
        }
        self.index = index;
    }

    fn spans(&self) -> impl Iterator<Item = (&str, &str, Kind)> {
        let mut start = 0usize;
        self.entries.iter().map(move |e| {
            let (k, v) = (e.key_end as usize, e.value_end as usize);
            let out = (&self.text[start..k], &self.text[k..v], e.kind);
            start = v;
            out
        })
    }

    /// A property's value as sent (numbers and bools as their JSON text); `None` when absent
    /// or `null`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name)
            .and_then(|(value, kind)| (kind != Kind::Null).then_some(value))
    }

    /// Whether the property was sent at all (`null` included).
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn find(&self, name: &str) -> Option<(&str, Kind)> {
        if self.index.is_empty() {
            return None;
        }
        let hash = key_hash(name);
        let mask = self.index.len() - 1;
        let mut at = slot(hash, self.index.len());
        loop {
            let i = self.index[at].checked_sub(1)? as usize;
            let e = self.entries[i];
            if e.key_hash == hash && self.key(i) == name {
                return Some((&self.text[e.key_end as usize..e.value_end as usize], e.kind));
            }
            at = (at + 1) & mask;
        }
    }

    /// Every property as sent, in order: name and value (`None` for `null`).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.spans()
            .map(|(key, value, kind)| (key, (kind != Kind::Null).then_some(value)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Properties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value, kind) in self.spans() {
            match kind {
                Kind::Text => map.serialize_entry(key, value)?,
                Kind::Null => map.serialize_entry(key, &())?,
                Kind::Json => {
                    let raw: serde_json::Value =
                        serde_json::from_str(value).map_err(serde::ser::Error::custom)?;
                    map.serialize_entry(key, &raw)?;
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PropertiesVisitor)
    }
}

struct PropertiesVisitor;

impl<'de> Visitor<'de> for PropertiesVisitor {
    type Value = Properties;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of properties")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Properties, E> {
        Ok(Properties::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Properties, A::Error> {
        let mut props = Properties {
            text: String::with_capacity(1024),
            entries: Vec::with_capacity(map.size_hint().unwrap_or(32)),
            index: Vec::new(),
        };
        props.fill(map)?;
        Ok(props)
    }
}

impl Properties {
    /// Replace the properties with those of `map`, in the buffers already allocated.
    fn fill<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        self.text.clear();
        self.entries.clear();
        while let Some(key) = map.next_key_seed(AppendText(&mut self.text))? {
            debug_assert!(key == Kind::Text);
            let key_end = self.text.len();
            let key_start = self.entries.last().map_or(0, |e| e.value_end as usize);
            let key_hash = key_hash(&self.text[key_start..key_end]);
            let kind = map.next_value_seed(AppendValue(&mut self.text))?;
            let too_big = || de::Error::custom("properties over 4 GiB");
            self.entries.push(Entry {
                key_end: u32::try_from(key_end).map_err(|_| too_big())?,
                value_end: u32::try_from(self.text.len()).map_err(|_| too_big())?,
                key_hash,
                kind,
            });
        }
        self.build_index();
        Ok(())
    }

    fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
        self.index.clear();
    }
}

/// Reads one object into an existing [`HubSpotObject`], reusing its buffers: a search page's
/// contacts are each mapped as soon as they are read, so one object serves the whole page
/// (four allocations fewer per contact than a fresh one each).
pub(crate) struct ObjectInto<'a>(pub &'a mut HubSpotObject);

impl<'de> DeserializeSeed<'de> for ObjectInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with an id")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let object = self.0;
        let mut updated = object.updated_at.take().unwrap_or_default();
        let (mut id, mut properties) = (false, false);
        while let Some(field) = map.next_key::<ObjectField>()? {
            match field {
                ObjectField::Id => {
                    object.id.clear();
                    map.next_value_seed(IdInto(&mut object.id))?;
                    id = true;
                }
                ObjectField::Properties => {
                    map.next_value_seed(PropertiesInto(&mut object.properties))?;
                    properties = true;
                }
                ObjectField::UpdatedAt => {
                    updated.clear();
                    if map.next_value_seed(AppendValue(&mut updated))? != Kind::Null {
                        object.updated_at = Some(std::mem::take(&mut updated));
                    }
                }
                ObjectField::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        if !id {
            return Err(de::Error::missing_field("id"));
        }
        if !properties {
            object.properties.clear();
        }
        Ok(())
    }
}

/// The fields of an object [`ObjectInto`] reads (names as HubSpot writes them).
enum ObjectField {
    Id,
    Properties,
    UpdatedAt,
    Other,
}

impl<'de> Deserialize<'de> for ObjectField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = ObjectField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ObjectField, E> {
                Ok(match v {
                    "id" => ObjectField::Id,
                    "properties" => ObjectField::Properties,
                    "updatedAt" => ObjectField::UpdatedAt,
                    _ => ObjectField::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// `properties` into the buffers of existing [`Properties`] (`null`: none).
struct PropertiesInto<'a>(&'a mut Properties);

impl<'de> DeserializeSeed<'de> for PropertiesInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PropertiesInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of properties")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.clear();
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.fill(map)
    }
}

/// An id (string or number, as [`id_text`]) appended to an existing buffer.
struct IdInto<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for IdInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for IdInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id (string or number)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        use std::fmt::Write;
        write!(self.0, "{v}").map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        use std::fmt::Write;
        write!(self.0, "{v}").map_err(E::custom)
    }
}

/// Appends a key (a string, borrowed from the body when it has no escapes) to the buffer.
struct AppendText<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for AppendText<'_> {
    type Value = Kind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for AppendText<'_> {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        self.0.push_str(v);
        Ok(Kind::Text)
    }
}

/// Appends a value's text to the buffer and says what kind it was.
struct AppendValue<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for AppendValue<'_> {
    type Value = Kind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AppendValue<'_> {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        self.0.push_str(v);
        Ok(Kind::Text)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(Kind::Json)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        self.0.push_str(&v.to_string());
        Ok(Kind::Json)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        self.0.push_str(&v.to_string());
        Ok(Kind::Json)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        self.0.push_str(
            &serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()),
        );
        Ok(Kind::Json)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Kind, A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.0.push_str(&value.to_string());
        Ok(Kind::Json)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Kind, A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.0.push_str(&value.to_string());
        Ok(Kind::Json)
    }
}

/// An id as text, from a JSON string or number.
fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct IdVisitor;
    impl Visitor<'_> for IdVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id (string or number)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(IdVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_kind_of_value_and_writes_it_back_as_it_came() {
        let raw = json!({"id": 42, "properties": {
            "email": "a@b.com", "empty": "", "unset": null, "count": 12, "ratio": 1.5,
            "flag": true, "escaped": "line\n\"quoted\" é", "padded": "  x  ", "list": [1, "a"]
        }, "updatedAt": "2026-10-01T00:00:00Z"});
        let object: HubSpotObject = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(object.id(), "42");
        let p = &object.properties;
        assert_eq!(p.len(), 9);
        assert_eq!(p.get("email"), Some("a@b.com"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(object.text("empty"), None);
        assert_eq!(p.get("unset"), None);
        assert!(p.contains_key("unset") && !p.contains_key("missing"));
        assert_eq!(p.get("count"), Some("12"));
        assert_eq!(p.get("ratio"), Some("1.5"));
        assert_eq!(p.get("flag"), Some("true"));
        assert_eq!(p.get("escaped"), Some("line\n\"quoted\" é"));
        assert_eq!(object.text("padded"), Some("x"));
        assert_eq!(serde_json::to_value(p).unwrap(), raw["properties"]);
    }

    #[test]
    fn one_object_read_over_and_over_holds_each_object_as_a_fresh_one_would() {
        // Larger first, then smaller, missing, null and numeric-id ones: nothing of an earlier
        // object may show through in a later one.
        let list = r#"[
            {"id":"1","properties":{"email":"a@b.com","p1":"x","p2":null,"p3":"y"},"updatedAt":"2026-10-01T00:00:00Z","archived":false},
            {"id":"22","properties":{"p2":"z"}},
            {"id":333},
            {"properties":null,"id":"4","updatedAt":null},
            {"id":"5","properties":{"email":"c@d.com","p9":"w"},"updatedAt":"2026-11-01T00:00:00Z"}
        ]"#;
        let fresh: Vec<HubSpotObject> = serde_json::from_str(list).unwrap();
        struct Each(Vec<String>);
        impl<'de> DeserializeSeed<'de> for &mut Each {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_seq(self)
            }
        }
        impl<'de> Visitor<'de> for &mut Each {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
                let mut object = HubSpotObject::default();
                while seq.next_element_seed(ObjectInto(&mut object))?.is_some() {
                    self.0.push(format!("{object:?}"));
                }
                Ok(())
            }
        }
        let mut reused = Each(Vec::new());
        (&mut reused)
            .deserialize(&mut serde_json::Deserializer::from_str(list))
            .unwrap();
        let fresh: Vec<String> = fresh.iter().map(|o| format!("{o:?}")).collect();
        assert_eq!(reused.0, fresh);
        let mut object = HubSpotObject::default();
        let no_id = ObjectInto(&mut object).deserialize(&mut serde_json::Deserializer::from_str(
            r#"{"properties":{}}"#,
        ));
        assert!(
            no_id
                .unwrap_err()
                .to_string()
                .contains("missing field `id`")
        );
    }

    #[test]
    fn reads_from_a_borrowed_body_like_the_client() {
        let body = br#"{"id":"7","properties":{"name":"Acme","domain":"acme.com"}}"#;
        let object: HubSpotObject = serde_json::from_slice(body).unwrap();
        assert_eq!(
            object.properties.iter().collect::<Vec<_>>(),
            [("name", Some("Acme")), ("domain", Some("acme.com"))]
        );
        let missing: HubSpotObject = serde_json::from_str(r#"{"id":"8"}"#).unwrap();
        assert!(missing.properties.is_empty());
        let null: HubSpotObject = serde_json::from_str(r#"{"id":"9","properties":null}"#).unwrap();
        assert!(null.properties.is_empty());
        assert!(serde_json::from_str::<HubSpotObject>(r#"{"id":"8","properties":[]}"#).is_err());
    }

    #[test]
    fn every_property_is_found_among_hundreds_and_the_first_of_a_repeated_key_wins() {
        let mut body = String::from(r#"{"id":"1","properties":{"#);
        for i in 0..300 {
            body.push_str(&format!(r#""p{i}":"v{i}","#));
        }
        body.push_str(r#""p7":"again","last":null}}"#);
        let object: HubSpotObject = serde_json::from_str(&body).unwrap();
        let p = &object.properties;
        assert_eq!(p.len(), 302);
        for i in 0..300 {
            assert_eq!(
                p.get(&format!("p{i}")),
                Some(format!("v{i}").as_str()),
                "p{i}"
            );
        }
        assert_eq!(p.get("p7"), Some("v7"), "the first of a repeated key");
        assert!(p.contains_key("last") && p.get("last").is_none());
        for absent in ["p300", "p-1", "", "P1", "last "] {
            assert!(!p.contains_key(absent), "{absent:?}");
        }
    }
}
