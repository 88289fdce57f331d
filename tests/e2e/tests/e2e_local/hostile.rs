//! Hostile input at the edge: malformed and malicious requests, sent as raw
//! bytes where a well-behaved client could not produce them. Each gets a
//! clean gRPC error (never a hang, never OK), no process of the mesh is
//! restarted, and the mesh answers normally afterwards.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use interlock_e2e::{curl_unix, edge, edge_channel, target};
use interlock_proto::auth::v1::GetJwksRequest;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use prost::bytes::{Buf, BufMut};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

/// Sends and receives message bytes as they are (no protobuf encoding).
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Self::Error> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// A protobuf varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `field` with wire type `wire`.
fn tag(field: u64, wire: u64, out: &mut Vec<u8>) {
    varint((field << 3) | wire, out);
}

fn length_delimited(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    tag(field, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// One hostile request: what it is, the method path, the message bytes, and
/// an extra metadata entry.
struct Case {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    header: Option<(&'static str, String)>,
}

fn case(what: &'static str, path: &'static str, body: Vec<u8>) -> Case {
    Case {
        what,
        path,
        body,
        header: None,
    }
}

/// The hostile table.
fn cases() -> Vec<Case> {
    const LOGIN: &str = "/interlock.auth.v1.AuthService/Login";
    const REGISTER: &str = "/interlock.auth.v1.AuthService/Register";
    let mut invalid_utf8 = Vec::new();
    length_delimited(1, &[0xff, 0xfe, 0xfd], &mut invalid_utf8);
    length_delimited(2, b"password", &mut invalid_utf8);

    let mut unknown_fields = Vec::new();
    length_delimited(99, b"who knows", &mut unknown_fields);
    tag(100, 0, &mut unknown_fields);
    varint(u64::MAX, &mut unknown_fields);

    // 10,000 nested groups: a parser that recurses without a limit
    // overflows its stack.
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        tag(99, 3, &mut deep);
    }
    for _ in 0..10_000 {
        tag(99, 4, &mut deep);
    }

    let mut repeated = Vec::new();
    for i in 0..10_000u32 {
        length_delimited(98, &i.to_le_bytes(), &mut repeated);
    }

    let mut oversized = Vec::new();
    length_delimited(4, &vec![b'a'; 6 * 1024 * 1024], &mut oversized);

    let mut truncated = Vec::new();
    tag(1, 2, &mut truncated);
    varint(1000, &mut truncated);
    truncated.extend_from_slice(b"short");

    vec![
        case("invalid UTF-8 in a string field", LOGIN, invalid_utf8),
        case("unknown fields only", LOGIN, unknown_fields),
        case("10k nested groups", LOGIN, deep),
        case("10k-element repeated field", LOGIN, repeated),
        case("6 MiB message", REGISTER, oversized),
        case("length beyond the message", LOGIN, truncated),
        Case {
            header: Some(("x-padding", "p".repeat(20 * 1024))),
            ..case("20 KiB header", LOGIN, Vec::new())
        },
    ]
}

/// Restart counts of every process, from the supervisor (root's socket).
async fn restarts() -> Vec<(String, u64)> {
    let (_, body) = curl_unix(
        None,
        &target().local().control_socket(),
        "GET",
        "/processes",
    )
    .await
    .expect("supervisor answers root");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("processes JSON");
    let mut out: Vec<(String, u64)> = doc["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["restarts"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Every hostile request gets a clean error within the deadline; nothing
/// restarts; the mesh answers afterwards.
#[tokio::test]
async fn hostile_requests_get_clean_errors_and_leave_the_mesh_serving() {
    let target = target();
    let m = target.local();
    let before = restarts().await;
    let channel = edge_channel(&target).await;
    for Case {
        what,
        path,
        body,
        header,
    } in cases()
    {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("edge channel ready");
        let mut request = tonic::Request::new(body);
        request.set_timeout(Duration::from_secs(15));
        if let Some((k, v)) = header {
            request
                .metadata_mut()
                .insert(k, v.parse().expect("ascii header"));
        }
        let started = Instant::now();
        let result = grpc
            .unary(request, PathAndQuery::from_static(path), RawCodec)
            .await;
        let status = result.expect_err(what);
        println!(
            "{what}: {:?} {:?} in {:?}",
            status.code(),
            status.message(),
            started.elapsed()
        );
        assert_ne!(status.code(), Code::Ok, "{what}");
        assert_ne!(status.code(), Code::DeadlineExceeded, "{what}: no answer");
        let message = status.message().to_ascii_lowercase();
        for leak in ["panicked", "backtrace", "sqlx", "select "] {
            assert!(!message.contains(leak), "{what}: {message}");
        }
    }
    slow_tls_handshake_is_cut_off(m);

    // Still serving, and nothing was restarted.
    let jwks = AuthServiceClient::new(edge(&target, None).await)
        .get_jwks(GetJwksRequest {})
        .await
        .expect("the edge still serves");
    assert!(!jwks.into_inner().key_ids.is_empty());
    assert_eq!(restarts().await, before, "a process restarted");
}

/// Slowloris at the TLS layer: a client that sends half a ClientHello and
/// stalls is disconnected by the edge (transport_socket_connect_timeout),
/// instead of holding a connection forever.
fn slow_tls_handshake_is_cut_off(m: &interlock_mesh::Mesh) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", m.topology.edge.port))
        .expect("connect to the edge");
    // A TLS record header announcing a 512-byte handshake, and 3 bytes of it.
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
        .expect("partial hello");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    println!("stalled TLS handshake closed after {:?}", started.elapsed());
    assert!(closed, "the edge kept a stalled handshake open for 30 s");
}

/// Reflection needs no token, and every open reflection stream holds an
/// upstream request to auth: a burst of them from one client is cut off at
/// the edge (RESOURCE_EXHAUSTED) instead of exhausting auth's budget, and
/// auth keeps answering everyone else.
#[tokio::test]
async fn a_reflection_burst_from_one_client_is_rate_limited_at_the_edge() {
    let target = target();
    let channel =
        interlock_e2e::edge_channel_from(&target, "127.0.0.79".parse().expect("ip")).await;
    // ServerReflectionRequest { list_services: "" } (field 7).
    let list_services = vec![0x3a, 0x00];
    let calls: Vec<_> = (0..120)
        .map(|_| {
            let channel = channel.clone();
            let body = list_services.clone();
            tokio::spawn(async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready().await.expect("ready");
                grpc.unary(
                    tonic::Request::new(body),
                    PathAndQuery::from_static(
                        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                    ),
                    RawCodec,
                )
                .await
                .map(|_| ())
            })
        })
        .collect();
    let mut limited = 0;
    let mut answered = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(()) => answered += 1,
            Err(s) if s.code() == Code::ResourceExhausted => limited += 1,
            Err(s) => panic!("unexpected refusal: {s:?}"),
        }
    }
    println!("reflection burst: {answered} answered, {limited} rate-limited");
    assert!(limited >= 50, "only {limited} of 120 limited");
    assert!(
        answered >= 20,
        "the burst allowance was refused too: {answered}"
    );
    AuthServiceClient::new(edge(&target, None).await)
        .get_jwks(GetJwksRequest {})
        .await
        .expect("auth still answers other clients");
}
