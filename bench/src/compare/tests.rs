use super::*;

fn point(system: System, rate: f64, cpu: f64) -> Point {
    Point {
        system,
        contacts: 10_000,
        latency_ms: 0,
        runs: 3,
        records_per_s: rate,
        cpu_per_10k: cpu,
        rss_mib: 40.0,
        requests: 60,
        minimum: 55,
        duplicates: 0,
        wall_s: 1.0,
    }
}

#[test]
fn goals_compare_against_the_fastest_peer() {
    let points = [
        point(System::Leadsync, 50_000.0, 0.1),
        point(System::Peer(PEERS[0]), 2_000.0, 5.0),
        point(System::Peer(PEERS[1]), 8_000.0, 2.0),
    ];
    let lines = goals(&points);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("6.2× the fastest peer (meltano-tap-hubspot"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("0.050× its CPU per record [met]"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("requests 1.09× the minimum [met]"),
        "{}",
        lines[0]
    );
    let slow = [
        point(System::Leadsync, 20_000.0, 0.5),
        point(System::Peer(PEERS[1]), 8_000.0, 2.0),
    ];
    assert!(
        goals(&slow)[0].contains("2.5× the fastest peer") && goals(&slow)[0].contains("[MISSED]")
    );
    // Issue 20's bar: 6× the records/s at 0.08× the CPU; 5.9× and 0.09× miss it.
    let close = [
        point(System::Leadsync, 47_200.0, 0.18),
        point(System::Peer(PEERS[1]), 8_000.0, 2.0),
    ];
    let line = &goals(&close)[0];
    assert!(
        line.contains("5.9× the fastest peer (meltano-tap-hubspot 0.10.1) records/s [MISSED]")
            && line.contains("0.090× its CPU per record [MISSED]"),
        "{line}"
    );
}

#[test]
fn a_peer_that_loses_records_fails_the_point() {
    let samples = [Sample {
        wall_s: 1.0,
        records: 9_999,
        ..Sample::default()
    }];
    let err = Point::from_samples(System::Peer(PEERS[2]), 10_000, 0, &samples).unwrap_err();
    assert!(
        err.to_string().contains("9999 distinct records of 10000"),
        "{err}"
    );
}

#[test]
fn the_doc_section_is_replaced_in_place() {
    let dir = std::env::temp_dir().join(format!("leadsync-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("b.md");
    std::fs::write(
        &doc,
        "# B\n\nprose\n<!-- bench:compare -->\nold\n<!-- /bench:compare -->\nafter\n",
    )
    .unwrap();
    update_doc(&doc, "compare", "new").unwrap();
    update_doc(&doc, "nightly", "n1").unwrap();
    update_doc(&doc, "nightly", "n2").unwrap();
    let text = std::fs::read_to_string(&doc).unwrap();
    assert!(
        text.starts_with(
            "# B\n\nprose\n<!-- bench:compare -->\nnew\n<!-- /bench:compare -->\nafter\n"
        ),
        "{text}"
    );
    assert_eq!(text.matches("<!-- bench:nightly -->").count(), 1, "{text}");
    assert!(text.contains("n2") && !text.contains("n1") && !text.contains("old"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn record_ids_are_read_from_every_message_shape() {
    assert_eq!(
        record_id(r#"{"type": "RECORD", "stream": "contacts", "record": {"id": "7"}}"#).as_deref(),
        Some("7")
    );
    assert_eq!(
        record_id(r#"{"type":"RECORD","record":{"stream":"contacts","data":{"id":8}}}"#).as_deref(),
        Some("8")
    );
    assert_eq!(record_id(r#"{"type":"STATE","value":{}}"#), None);
    assert_eq!(record_id("not json"), None);
}

#[test]
fn the_chart_has_a_bar_per_system_and_point() {
    let points = [
        point(System::Leadsync, 50_000.0, 0.1),
        point(System::Peer(PEERS[0]), 2_000.0, 5.0),
    ];
    let svg = chart_svg(&points);
    assert_eq!(svg.matches("<rect x=").count(), 2);
    assert!(svg.contains("50,000") && svg.contains("2,000"));
    assert_eq!(thousands(1_234_567), "1,234,567");
}
