//! Hostile input for the property tests of every parser that takes outside bytes (criteria
//! TOML, CRM pages, provider answers, datasets, webhooks, queue messages, function events, CLI
//! input): arbitrary text, and valid documents cut, spliced and garbled, which reach far deeper
//! into a parser than random bytes do. [`check`] runs a property over them and prints how many
//! cases it ran, so a test run says what was tried.
//!
//! A property says more than "no panic" where it can: a parser that takes a batch accounts for
//! every record (parsed or quarantined, never dropped).

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// One edit of a document.
#[derive(Debug, Clone)]
enum Edit {
    /// Cut the text at this fraction of its length.
    Truncate(f64),
    /// Remove a span.
    Delete(f64, usize),
    /// Insert text at a fraction.
    Insert(f64, String),
    /// Copy a span elsewhere.
    Duplicate(f64, usize, f64),
    /// Replace one char.
    Replace(f64, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let junk = prop_oneof![
        // Syntax that means something to TOML, JSON, CSV and URLs.
        proptest::sample::select(vec![
            "\"",
            "'",
            "\\",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "=",
            "\n",
            "\r\n",
            "#",
            "%",
            "%2",
            "+",
            "\u{0}",
            "\u{feff}",
            "null",
            "-1",
            "1e400",
            "9223372036854775808",
            "NaN",
            "é",
            "🦀",
            "\"\"\"",
            "[[",
            "]]",
            ";",
            "\t",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    prop_oneof![
        (0.0..1.0f64).prop_map(Edit::Truncate),
        (0.0..1.0f64, 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (0.0..1.0f64, junk).prop_map(|(at, s)| Edit::Insert(at, s)),
        (0.0..1.0f64, 1usize..80, 0.0..1.0f64).prop_map(|(a, n, b)| Edit::Duplicate(a, n, b)),
        (0.0..1.0f64, any::<char>()).prop_map(|(at, c)| Edit::Replace(at, c)),
    ]
}

/// The char boundary nearest below `fraction` of `text`'s length.
fn at(text: &str, fraction: f64) -> usize {
    let mut i = ((text.len() as f64) * fraction) as usize;
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut text: String, edit: &Edit) -> String {
    match edit {
        Edit::Truncate(f) => {
            let i = at(&text, *f);
            text.truncate(i);
        }
        Edit::Delete(f, n) => {
            let i = at(&text, *f);
            let j = at(&text, ((i + n) as f64 / text.len().max(1) as f64).min(1.0));
            text.replace_range(i..j.max(i), "");
        }
        Edit::Insert(f, s) => {
            let i = at(&text, *f);
            text.insert_str(i, s);
        }
        Edit::Duplicate(f, n, g) => {
            let i = at(&text, *f);
            let j = at(&text, ((i + n) as f64 / text.len().max(1) as f64).min(1.0));
            let piece = text[i..j.max(i)].to_owned();
            let k = at(&text, *g);
            text.insert_str(k, &piece);
        }
        Edit::Replace(f, c) => {
            let i = at(&text, *f);
            if let Some(old) = text[i..].chars().next() {
                text.replace_range(i..i + old.len_utf8(), &c.to_string());
            }
        }
    }
    text
}

/// `seed` with one to eight random edits, or now and then left whole (so the valid path is
/// exercised too).
pub fn mutated(seed: impl Into<String>) -> impl Strategy<Value = String> {
    let seed: String = seed.into();
    proptest::collection::vec(edit(), 0..8)
        .prop_map(move |edits| edits.iter().fold(seed.clone(), apply))
}

/// Arbitrary text, or one of `seeds` garbled: what a parser of outside bytes must survive.
pub fn text(seeds: &[&'static str]) -> impl Strategy<Value = String> + use<> {
    let garbled: Vec<BoxedStrategy<String>> = seeds.iter().map(|s| mutated(*s).boxed()).collect();
    prop_oneof![
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        6 => proptest::strategy::Union::new(garbled),
    ]
}

/// Arbitrary JSON values up to a few levels deep (for fields whose type a parser must not
/// trust).
pub fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        proptest::sample::select(vec![
            "",
            "0",
            "-1",
            "1.5",
            "1e308",
            "2026-11-20T03:00:00Z",
            "2026-02-30",
            "1700000000000",
            "true",
            "null",
            "NaN",
            "é",
            "a@b.c",
            "x;y",
            "EUR",
            "closedwon",
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-zA-Z_]{1,12}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Run `property` on `cases` inputs of `strategy`; a panic or a failed property fails the test
/// with the smallest input found. Prints `hostile input: <parser>: N cases` when done.
///
/// # Panics
/// When the property fails or the parser panics: the test fails with the input.
pub fn check<S: Strategy>(
    parser: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let ran = std::sync::atomic::AtomicU32::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        // Failures become named regression tests beside the parser, not files.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    });
    let outcome = runner.run(&strategy, |value| {
        ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        property(value)
    });
    if let Err(e) = outcome {
        panic!("hostile input: {parser}: {e}");
    }
    println!(
        "hostile input: {parser}: {} cases, none panicked, every property held",
        ran.load(std::sync::atomic::Ordering::Relaxed)
    );
}
