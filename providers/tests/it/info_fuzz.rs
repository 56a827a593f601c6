//! The info-protocol client against whatever a peer sends: arbitrary bytes, frames that announce
//! more than they carry, replies missing or out of order. It returns an error, never panics, and
//! never allocates what a header merely announces.

use std::net::SocketAddr;
use std::time::Duration;

use asdr_providers::aerospike::info::{
    InfoClient, InfoError, MAX_REPLY, decode_body, decode_header, encode_header, parse_kv,
};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback peer that reads one request and answers `reply`, then closes.
async fn peer(reply: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&reply).await;
            let _ = s.shutdown().await;
        }
    });
    addr
}

fn client(addr: SocketAddr) -> InfoClient {
    let mut c = InfoClient::new("a1", addr);
    c.read_timeout = Duration::from_millis(500);
    c
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = encode_header(body.len() as u64).to_vec();
    out.extend_from_slice(body);
    out
}

/// The shape of the reply that once panicked the executor mid-apply: a node that answers
/// nothing to `node` (an empty body) is a garbled reply, an error the step reports.
#[tokio::test]
async fn a_node_answering_nothing_is_an_error_not_a_panic() {
    let addr = peer(frame(b"")).await;
    let err = client(addr).get("node").await.unwrap_err();
    assert!(matches!(err, InfoError::Garbled { .. }), "{err}");
    let addr = peer(frame(b"statistics\tx=1\n")).await;
    let err = client(addr).get("node").await.unwrap_err();
    assert!(err.to_string().contains("do not match"), "{err}");
}

/// A header announcing more than any of asdr's commands is answered with is refused at once,
/// without reading (or allocating) what it announces.
#[tokio::test]
async fn a_reply_announcing_megabytes_is_refused_without_waiting_for_them() {
    let addr = peer(encode_header(MAX_REPLY + 1).to_vec()).await;
    let err = client(addr).get("node").await.unwrap_err();
    assert!(err.to_string().contains("far less than"), "{err}");
    // Announced within the limit but never sent: the connection's end, not a hang.
    let addr = peer(encode_header(1 << 20).to_vec()).await;
    let err = client(addr).get("node").await.unwrap_err();
    assert!(
        matches!(err, InfoError::Closed { .. } | InfoError::Timeout { .. }),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_frame_parsers_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut header = [0u8; 8];
        for (h, b) in header.iter_mut().zip(&bytes) {
            *h = *b;
        }
        let _ = decode_header(header);
        if let Ok(replies) = decode_body(&bytes) {
            for r in replies {
                if let Ok(v) = r.value {
                    let _ = parse_kv(&v);
                }
            }
        }
    }

    #[test]
    fn the_frame_parsers_never_panic_on_near_miss_bodies(
        lines in prop::collection::vec(
            prop::sample::select(vec![
                "node\tBB9", "node\t", "node", "\t", "ERROR:", "node\tERROR:", "node\tERROR:x:y",
                "node\tERROR:4294967296:big", "statistics\ta=1;b;=;;c==d", "\u{0}\t\u{0}", "",
            ]),
            0..5,
        ),
        newline in any::<bool>(),
    ) {
        let mut body = lines.join("\n");
        if newline {
            body.push('\n');
        }
        if let Ok(replies) = decode_body(body.as_bytes()) {
            for r in replies {
                if let Ok(v) = r.value {
                    let _ = parse_kv(&v);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever a loopback peer answers, `get` returns (a value only for a well-formed echo).
    #[test]
    fn the_client_returns_an_error_for_any_reply_it_cannot_trust(
        body in prop::collection::vec(any::<u8>(), 0..200),
        framed in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            let addr = peer(if framed { frame(&body) } else { body.clone() }).await;
            client(addr).get("node").await
        });
        if let Ok(v) = got {
            prop_assert!(framed, "an unframed reply was taken: {v:?}");
            prop_assert!(body.starts_with(b"node\t"), "a reply to another command was taken: {v:?}");
        }
    }
}
