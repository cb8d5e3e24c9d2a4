//! Compressed publish bodies (`Content-Encoding: gzip | deflate | br | zstd`): decoded as they
//! are read, bounded by `limits.max_body` in decoded bytes (a bomb is 413), any other encoding
//! 415; and the brokers' own compression: Kafka's `compression.type` through `options`, JetStream
//! `s2` on the streams sidebus creates.

use std::io::Write;

use crate::common::brokers::{Kafka, PrivateNats};
use crate::common::{assert_problem, stored, unique_topic, TestServer};

/// `limits.max_body` of these tests.
const MAX_BODY: usize = 64 * 1024;

async fn memory_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\nlimits = {{ max_body = \"64KiB\", max_event = \"64KiB\" }}\n[brokers.mem]\nkind = \"memory\"\n",
        dir.path().display()
    ))
    .await;
    (server, dir)
}

/// A content coding: its `Content-Encoding` name and the encoder.
type Codec = (&'static str, fn(&[u8]) -> Vec<u8>);

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// `deflate` in HTTP is the zlib format (RFC 9110 §8.4.1.2).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        encoder.write_all(data).unwrap();
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

#[tokio::test]
async fn every_supported_encoding_is_decoded_before_parsing() {
    let (server, _dir) = memory_server().await;
    let topic = unique_topic("gz");
    let codecs: [Codec; 4] = [
        ("gzip", gzip),
        ("deflate", deflate),
        ("br", brotli),
        ("zstd", zstd),
    ];
    for (name, encode) in codecs {
        let data = format!("{{\"codec\":\"{name}\",\"pad\":\"{}\"}}", "x".repeat(2000));
        let r = server
            .post(
                &format!("/v1/publish/mem/{topic}"),
                &[
                    ("content-encoding", name),
                    ("content-type", "application/json"),
                    ("ce-id", name),
                ],
                encode(data.as_bytes()),
            )
            .await;
        assert_eq!(r.status(), 200, "{name}: {}", r.text().await.unwrap());
    }
    let structured = br#"{"specversion":"1.0","id":"b-1","source":"/s","type":"t","data":{"n":1}}
{"specversion":"1.0","id":"b-2","source":"/s","type":"t","data":{"n":2}}
"#;
    let r = server
        .post(
            &format!("/v1/publish/mem/{topic}/batch"),
            &[
                ("content-encoding", "GZIP"),
                ("content-type", "application/x-ndjson"),
            ],
            gzip(structured),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
    let held = stored(&server, "mem", &topic, 10).await;
    let ids: Vec<&str> = held.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(ids, ["gzip", "deflate", "br", "zstd", "b-1", "b-2"]);
    let first: serde_json::Value = serde_json::from_slice(&held[0].event.data).unwrap();
    assert_eq!(first["codec"], "gzip");
    assert_eq!(first["pad"].as_str().unwrap().len(), 2000);
    assert_eq!(&held[5].event.data[..], br#"{"n":2}"#);
}

#[tokio::test]
async fn a_body_that_inflates_past_the_limit_is_413() {
    let (server, _dir) = memory_server().await;
    let topic = unique_topic("bomb");
    // 64 MiB of zeros in about 64 KiB of gzip: a thousand times the limit once inflated.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < MAX_BODY * 2, "{}", bomb.len());
    let r = server
        .post(
            &format!("/v1/publish/mem/{topic}"),
            &[("content-encoding", "gzip")],
            bomb,
        )
        .await;
    let problem = assert_problem(r, 413).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("limits.max_body"),
        "{problem}"
    );
    assert!(stored(&server, "mem", &topic, 1).await.is_empty());
    // Just under the limit once decoded is fine.
    let r = server
        .post(
            &format!("/v1/publish/mem/{topic}"),
            &[("content-encoding", "zstd")],
            zstd(&vec![b'a'; MAX_BODY - 1024]),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_unknown_or_broken_encoding_is_refused() {
    let (server, _dir) = memory_server().await;
    let topic = unique_topic("enc");
    let r = server
        .post(
            &format!("/v1/publish/mem/{topic}"),
            &[("content-encoding", "compress")],
            "x",
        )
        .await;
    assert_eq!(
        r.headers()["accept-encoding"],
        "gzip, deflate, br, zstd, identity"
    );
    let problem = assert_problem(r, 415).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("`compress`"),
        "{problem}"
    );
    let r = server
        .post(
            &format!("/v1/publish/mem/{topic}"),
            &[("content-encoding", "gzip")],
            "this is not gzip",
        )
        .await;
    assert_problem(r, 400).await;
    assert!(stored(&server, "mem", &topic, 1).await.is_empty());
}

/// Kafka compresses record batches itself: `compression.type` passes through `options` to
/// librdkafka, and a native consumer reads the events back intact.
#[tokio::test]
async fn kafka_compression_type_zstd_and_lz4() {
    use rdkafka::Message;
    let kafka = Kafka::start();
    for codec in ["zstd", "lz4"] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(&format!(
            "state_dir = \"{}\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\n\
             options = {{ \"compression.type\" = \"{codec}\" }}\n",
            dir.path().display(),
            kafka.bootstrap
        ))
        .await;
        let topic = unique_topic(&format!("kafka.{codec}"));
        kafka.create_topic(&topic, 1).await;
        let batch: String = (0..20)
            .map(|i| {
                format!(
                    "{{\"specversion\":\"1.0\",\"id\":\"{codec}-{i}\",\"source\":\"/s\",\"type\":\"t\",\
                     \"data\":{{\"i\":{i},\"pad\":\"{}\"}}}}\n",
                    "z".repeat(500)
                )
            })
            .collect();
        let r = server
            .post(
                &format!("/v1/publish/events/{topic}/batch"),
                &[("content-type", "application/x-ndjson")],
                batch,
            )
            .await;
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["failed"], 0, "{codec}: {body}");
        let messages = kafka.read(&topic, 1, 20);
        for (i, m) in messages.iter().enumerate() {
            let data: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(data["i"], i, "{codec}");
            assert_eq!(data["pad"].as_str().unwrap().len(), 500, "{codec}");
        }
    }
}

/// `compression = "s2"` makes the streams sidebus creates store S2-compressed, as the server
/// reports the stream's config (stream compression needs nats-server 2.10 or later).
#[tokio::test]
async fn jetstream_streams_sidebus_creates_use_s2() {
    let binary = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/nats-server-2.15/bin/nats-server");
    let nats = PrivateNats::start_release(&binary);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\n[brokers.jobs]\nkind = \"nats\"\nurl = \"{}\"\ncompression = \"s2\"\n",
        dir.path().display(),
        nats.url()
    ))
    .await;
    let topic = unique_topic("s2");
    let r = server
        .post(
            &format!("/v1/publish/jobs/{topic}"),
            &[],
            "compressed at rest",
        )
        .await;
    assert_eq!(r.status(), 200);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let name = jetstream.stream_by_subject(topic.as_str()).await.unwrap();
    let mut stream = jetstream.get_stream(&name).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.compression,
        Some(async_nats::jetstream::stream::Compression::S2)
    );
    assert_eq!(info.state.messages, 1);
    let message = stream
        .get_last_raw_message_by_subject(&topic)
        .await
        .unwrap();
    assert_eq!(&message.payload[..], b"compressed at rest");
}
