//! The codec against a real Confluent-compatible Schema Registry (Apicurio's ccompat API
//! in `scripts/stack`). Needs `SCHEMA_REGISTRY_URL`; without it every test fails, so a
//! run without a registry can never pass for one with it:
//!
//! ```text
//! eval "$(scripts/stack up)"; export SCHEMA_REGISTRY_URL
//! cargo test --test codec_registry
//! ```
//!
//! Each test uses fresh topic names, so fresh subjects.

#[path = "support/samples.rs"]
mod samples;

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use aura::codec::{AvroRecord, Codec, CodecError, EMBEDDED};
use aura::model::*;

fn registry_url() -> String {
    std::env::var("SCHEMA_REGISTRY_URL").expect(
        "SCHEMA_REGISTRY_URL is not set: these tests need a real schema registry \
         (eval \"$(scripts/stack up)\" and export SCHEMA_REGISTRY_URL)",
    )
}

/// A topic name no other test or run has used.
fn fresh_topic(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("codec-test-{label}-{}-{nanos}", std::process::id())
}

/// Encodes with `writer` on `topic`, then decodes with a codec that has never seen the id,
/// so the writer schema is fetched from the registry.
async fn round_trip<T: AvroRecord + PartialEq + Debug>(writer: &Codec, topic: &str, value: T) {
    let bytes = writer.encode(topic, &value).unwrap();
    let id = writer.schema_id::<T>(topic).unwrap();
    assert_eq!(bytes[0], 0);
    assert_eq!(&bytes[1..5], &id.to_be_bytes(), "{}", T::SCHEMA_NAME);
    let fresh_reader = Codec::with_registry(&registry_url(), &[]).await.unwrap();
    let decoded: T = fresh_reader.decode(&bytes).await.unwrap();
    assert_eq!(decoded, value, "{}", T::SCHEMA_NAME);
    // And the writer reads its own output from its cache.
    assert_eq!(writer.decode::<T>(&bytes).await.unwrap(), value);
}

#[tokio::test]
async fn every_record_type_is_registered_encoded_and_decoded() {
    let topics: Vec<(String, &str)> = EMBEDDED
        .iter()
        .map(|e| {
            (
                fresh_topic(&e.name.to_lowercase().replace('.', "-")),
                e.name,
            )
        })
        .collect();
    let writes: Vec<(&str, &str)> = topics.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    let codec = Codec::with_registry(&registry_url(), &writes)
        .await
        .unwrap();
    let topic = |name: &str| {
        let full = format!("aura.v1.{name}");
        topics.iter().find(|(_, n)| *n == full).unwrap().0.clone()
    };

    round_trip(&codec, &topic("TdaAnomaly"), samples::anomaly()).await;
    round_trip(&codec, &topic("TdaContext"), samples::context()).await;
    round_trip(&codec, &topic("AgentResult"), samples::result()).await;
    round_trip(&codec, &topic("AgentVote"), samples::vote()).await;
    round_trip(&codec, &topic("AgentRegistration"), samples::registration()).await;
    round_trip(&codec, &topic("RoutingFeedback"), samples::feedback()).await;
    round_trip(&codec, &topic("FeatureFlag"), samples::flag()).await;
    round_trip(&codec, &topic("AgentCommand"), samples::command()).await;
    round_trip(&codec, &topic("SagaEvent"), samples::saga_event()).await;
    round_trip(
        &codec,
        &topic("CompensationCommand"),
        samples::compensation(),
    )
    .await;
    round_trip(&codec, &topic("CorrelationEvent"), samples::correlation()).await;
    round_trip(&codec, &topic("Escalation"), samples::escalation()).await;
    round_trip(&codec, &topic("ConsensusDecision"), samples::decision()).await;
    round_trip(&codec, &topic("DeadLetter"), samples::dead_letter()).await;
}

#[tokio::test]
async fn registering_again_returns_the_same_id() {
    let topic = fresh_topic("again");
    let writes = [(topic.as_str(), "aura.v1.AgentCommand")];
    let first = Codec::with_registry(&registry_url(), &writes)
        .await
        .unwrap();
    let second = Codec::with_registry(&registry_url(), &writes)
        .await
        .unwrap();
    assert_eq!(
        first.schema_id::<AgentCommand>(&topic).unwrap(),
        second.schema_id::<AgentCommand>(&topic).unwrap()
    );
}

#[tokio::test]
async fn encoding_is_limited_to_the_registered_topics_and_types() {
    let topic = fresh_topic("limits");
    let codec = Codec::with_registry(&registry_url(), &[(topic.as_str(), "aura.v1.SagaEvent")])
        .await
        .unwrap();
    let err = codec.encode(&topic, &samples::command()).unwrap_err();
    assert!(
        matches!(err, CodecError::WrongSchemaForTopic { .. }),
        "{err}"
    );
    let err = codec
        .encode("never.registered", &samples::saga_event())
        .unwrap_err();
    assert!(
        matches!(err, CodecError::TopicNotRegistered { .. }),
        "{err}"
    );
}

/// POSTs `schema` as a new version of `subject` and returns the id the registry gave it.
async fn register_directly(subject: &str, schema: &str) -> u32 {
    let body = serde_json::json!({"schema": schema, "schemaType": "AVRO"});
    let response = reqwest::Client::new()
        .post(format!("{}/subjects/{subject}/versions", registry_url()))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        status.is_success(),
        "registering {subject}: {status} {text}"
    );
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    answer["id"].as_u64().expect("an id") as u32
}

#[tokio::test]
async fn anomaly_written_with_a_newer_registered_schema_is_decoded() {
    let topic = fresh_topic("anomalies");
    // The service registers v1 as a writer would, and keeps its reader schema.
    let service = Codec::with_registry(&registry_url(), &[(topic.as_str(), "aura.v1.TdaAnomaly")])
        .await
        .unwrap();
    let v1 = service.schema_id::<TdaAnomaly>(&topic).unwrap();

    // Upstream evolves TdaAnomaly: a new optional field, accepted as BACKWARD compatible.
    let mut json: serde_json::Value = serde_json::from_str(EMBEDDED[0].json).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "region", "type": ["null", "string"], "default": null, "doc": "Cloud region."}
        ));
    let newer_text = json.to_string();
    let v2 = register_directly(&format!("{topic}-value"), &newer_text).await;
    assert_ne!(v1, v2);

    // An upstream producer writes with v2, framing by hand.
    let newer = Schema::parse_str(&newer_text).unwrap();
    let anomaly = samples::anomaly();
    let Value::Record(mut fields) = apache_avro::to_value(&anomaly).unwrap() else {
        unreachable!()
    };
    fields.push((
        "region".into(),
        Value::Union(1, Box::new(Value::String("eu-west-1".into()))),
    ));
    let value = Value::Record(fields).resolve(&newer).unwrap();
    let datum = GenericDatumWriter::builder(&newer)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let mut bytes = vec![0];
    bytes.extend_from_slice(&v2.to_be_bytes());
    bytes.extend_from_slice(&datum);

    assert_eq!(service.decode::<TdaAnomaly>(&bytes).await.unwrap(), anomaly);
}

#[tokio::test]
async fn an_id_the_registry_does_not_know_is_poison() {
    let codec = Codec::with_registry(&registry_url(), &[]).await.unwrap();
    let bytes = [0, 0x7f, 0xff, 0xff, 0xf0, 2, b'x'];
    for _ in 0..2 {
        // The second answer comes from memory; it must be the same.
        let err = codec.decode::<TdaAnomaly>(&bytes).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unknown schema id {}", 0x7fff_fff0u32)
        );
        assert!(err.is_poison() && !err.is_transient());
    }
}

#[tokio::test]
async fn an_incompatible_schema_is_rejected_at_registration() {
    let topic = fresh_topic("incompatible");
    Codec::with_registry(&registry_url(), &[(topic.as_str(), "aura.v1.FeatureFlag")])
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let config = client
        .put(format!("{}/config/{topic}-value", registry_url()))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(r#"{"compatibility":"BACKWARD"}"#)
        .send()
        .await
        .unwrap();
    assert!(config.status().is_success(), "{}", config.status());
    // The subject's schema is now FeatureFlag; registering AgentCommand on it breaks it.
    let err =
        match Codec::with_registry(&registry_url(), &[(topic.as_str(), "aura.v1.AgentCommand")])
            .await
        {
            Ok(_) => panic!("an incompatible schema was registered"),
            Err(err) => err,
        };
    assert!(matches!(err, CodecError::Registration { .. }), "{err}");
    assert!(!err.is_transient() && !err.is_poison());
}

#[tokio::test]
async fn an_unreachable_registry_is_transient() {
    // Here rather than in tests/schemas.rs because it opens sockets; port 9 on loopback
    // refuses connections. Like every test here it insists on the registry being set, so
    // that this file never passes in part.
    registry_url();
    let down = "http://127.0.0.1:9/apis/ccompat/v7";
    let err = match Codec::with_registry(down, &[("t", "aura.v1.TdaAnomaly")]).await {
        Ok(_) => panic!("registered against a closed port"),
        Err(err) => err,
    };
    assert!(err.is_transient(), "{err}");

    let reader = Codec::with_registry(down, &[]).await.unwrap();
    let err = reader
        .decode::<TdaAnomaly>(&[0, 0, 0, 0, 7, 2])
        .await
        .unwrap_err();
    assert!(err.is_transient() && !err.is_poison(), "{err}");
    assert!(
        err.to_string()
            .starts_with("schema registry http://127.0.0.1:9/apis/ccompat/v7 unavailable"),
        "{err}"
    );
}
