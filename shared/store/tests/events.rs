//! News on a real EventBridge bus (moto): a rule routes `leadsync.lead.sql` events to an SQS
//! queue; what arrives is what was sent, once each, without an address in it.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::news::{LeadEvent, LeadEventKind};
use leadsync_domain::ports::EventSink;
use leadsync_domain::{LeadId, Stage};
use leadsync_store::EventBridgeSink;

fn event(i: u32) -> LeadEvent {
    LeadEvent {
        kind: LeadEventKind::Sql,
        lead_id: LeadId::new(format!("{}", 500 + i)).unwrap(),
        crm: "hubspot".into(),
        owner_id: Some("77".into()),
        stage: Stage::Sql,
        fit: 50,
        engagement: 30,
        total: 80,
        band: "A".into(),
        criteria_version: "2026.11.1".into(),
        reasons: vec!["+20 Core industry [INTERNET]".into()],
        lead_status: None,
        rejection_reason: None,
        run_id: "r1".into(),
        at: DateTime::<Utc>::from_timestamp(1_764_000_000, 0).unwrap(),
    }
}

#[tokio::test]
async fn events_reach_a_rule_s_target_once_each_in_batches_of_ten() {
    let moto = leadsync_localstack::shared().unwrap();
    let config = moto.sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = leadsync_localstack::unique_name("news");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue = sqs
        .create_queue()
        .queue_name(leadsync_localstack::unique_name("sql"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name("new-sql")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["leadsync"],"detail-type":["leadsync.lead.sql"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("new-sql")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let sink = EventBridgeSink::new(events, &bus);
    let sent: Vec<LeadEvent> = (0..23).map(event).collect();
    let accepted = sink.send(&sent).await.unwrap();
    assert_eq!(accepted, vec![true; 23]);

    let mut received = Vec::new();
    for _ in 0..20 {
        let answer = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = answer.messages();
        if messages.is_empty() && received.len() >= sent.len() {
            break;
        }
        for m in messages {
            let envelope: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(envelope["source"], "leadsync");
            assert_eq!(envelope["detail-type"], "leadsync.lead.sql");
            let detail: LeadEvent = serde_json::from_value(envelope["detail"].clone()).unwrap();
            received.push(detail.lead_id.to_string());
        }
    }
    received.sort();
    let mut want: Vec<String> = sent.iter().map(|e| e.lead_id.to_string()).collect();
    want.sort();
    assert_eq!(received, want);
}
