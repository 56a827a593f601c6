//! The info client against frames recorded from a real Aerospike CE 8.1.1.2 server
//! (`testdata/vectors/aerospike-info-ce-8.1.txt`): bytes in, typed values out, and requests built
//! byte for byte as the recorded ones.

use std::path::PathBuf;

use asdr_providers::aerospike::info::{
    ErrorReply, HEADER_LEN, decode_body, decode_header, encode_header, encode_request, parse_kv,
};

fn vectors() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/vectors/aerospike-info-ce-8.1.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Python bytes literal `b'…'` as bytes.
fn py_bytes(lit: &str) -> Vec<u8> {
    let inner = lit
        .strip_prefix("b'")
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or_else(|| panic!("not a bytes literal: {lit}"));
    let mut out = Vec::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next().unwrap() {
            't' => out.push(b'\t'),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            '\\' => out.push(b'\\'),
            '\'' => out.push(b'\''),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
            }
            other => panic!("escape \\{other}"),
        }
    }
    out
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

struct Block {
    command: String,
    header_len: Option<usize>,
    body: Vec<u8>,
    request_hex: Option<Vec<u8>>,
    response_hex: Option<Vec<u8>>,
}

fn blocks() -> Vec<Block> {
    let text = vectors();
    let mut out: Vec<Block> = Vec::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("### ") {
            out.push(Block {
                command: cmd.replace("\\n", "\n"),
                header_len: None,
                body: Vec::new(),
                request_hex: None,
                response_hex: None,
            });
        } else if let Some(h) = line.strip_prefix("header: ") {
            let len = h
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("len="))
                .unwrap();
            out.last_mut().unwrap().header_len = Some(len.parse().unwrap());
        } else if let Some(b) = line.strip_prefix("body: ") {
            out.last_mut().unwrap().body = py_bytes(b);
        } else if let Some(r) = line.strip_prefix("request-hex:") {
            out.last_mut().unwrap().request_hex = Some(hex(r.trim()));
        } else if let Some(r) = line.strip_prefix("response-hex:") {
            out.last_mut().unwrap().response_hex = Some(hex(r.trim()));
        } else if line.starts_with('\'') && line.contains("' -> b'") {
            // The "further commands" lines: 'command' -> b'reply body'
            let (cmd, body) = line.split_once(" -> ").unwrap();
            let body = py_bytes(body);
            out.push(Block {
                command: cmd.trim_matches('\'').to_string(),
                header_len: Some(body.len()),
                body,
                request_hex: None,
                response_hex: None,
            });
        }
    }
    out
}

#[test]
fn every_recorded_frame_parses_into_typed_replies() {
    let blocks = blocks();
    assert!(blocks.len() >= 26, "{} blocks", blocks.len());
    for b in &blocks {
        assert_eq!(
            Some(b.body.len()),
            b.header_len,
            "{}: header length",
            b.command
        );
        let replies = decode_body(&b.body).unwrap_or_else(|e| panic!("{}: {e}", b.command));
        let commands: Vec<&str> = b.command.split('\n').collect();
        assert_eq!(replies.len(), commands.len(), "{}", b.command);
        for (reply, cmd) in replies.iter().zip(&commands) {
            // The recorded "further" lines shorten long commands; the echo starts with them.
            assert!(
                reply.command.starts_with(cmd),
                "{}: echo {}",
                b.command,
                reply.command
            );
        }
        if let Some(frame) = &b.response_hex {
            let header: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
            assert_eq!(
                decode_header(header),
                Ok(b.body.len() as u64),
                "{}",
                b.command
            );
            assert_eq!(&frame[HEADER_LEN..], b.body.as_slice(), "{}", b.command);
            assert_eq!(encode_header(b.body.len() as u64), header);
        }
        if let Some(request) = &b.request_hex {
            assert_eq!(
                &encode_request(&commands),
                request,
                "{}: request bytes",
                b.command
            );
        }
    }
}

fn reply(command: &str) -> Result<String, ErrorReply> {
    let b = blocks()
        .into_iter()
        .find(|b| b.command == command)
        .unwrap_or_else(|| panic!("no block {command}"));
    decode_body(&b.body).unwrap().remove(0).value
}

#[test]
fn error_replies_are_typed_with_their_codes() {
    assert_eq!(
        reply("bogus"),
        Err(ErrorReply {
            code: 4,
            message: "unrecognized command".into()
        })
    );
    assert_eq!(
        reply("quiesce:"),
        Err(ErrorReply {
            code: 25,
            message: "enterprise only".into()
        })
    );
    assert_eq!(
        reply("cluster-stable:size=2;ignore-migrations=true"),
        Err(ErrorReply {
            code: 7,
            message: "cluster not specified size".into()
        })
    );
    assert_eq!(reply("recluster:"), Ok("ok".into()));
}

#[test]
fn values_carry_what_observation_needs() {
    assert_eq!(reply("node").unwrap(), "BB901000000FC02");
    assert_eq!(reply("edition").unwrap(), "Aerospike Community Edition");
    assert_eq!(reply("namespaces").unwrap(), "test;shadowed");
    assert_eq!(
        reply("cluster-stable:size=1;ignore-migrations=false").unwrap(),
        "3E1EBD3519A4"
    );
    let stats = reply("statistics").unwrap();
    let kv = parse_kv(&stats);
    assert!(kv.contains(&("cluster_size", "1")) && kv.contains(&("cluster_key", "3E1EBD3519A4")));
    let config = reply("get-config:context=namespace;id=shadowed").unwrap();
    let kv = parse_kv(&config);
    assert!(kv.contains(&("storage-engine.file[0]", "/opt/aerospike/data/shadowed.dat")));
    assert!(kv.contains(&(
        "storage-engine.file[0].shadow",
        "/opt/aerospike/data/shadowed-shadow.dat"
    )));
    let ns = reply("namespace/test").unwrap();
    assert!(parse_kv(&ns).contains(&("pending_quiesce", "false")));
    assert_eq!(
        reply("namespace/nope").unwrap(),
        "type=unknown",
        "an unknown namespace is not an error"
    );
}

#[test]
fn the_multi_command_frame_gives_one_reply_per_command() {
    let b = blocks()
        .into_iter()
        .find(|b| b.command == "node\nedition\nbuild")
        .unwrap();
    let replies = decode_body(&b.body).unwrap();
    let values: Vec<String> = replies.into_iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(
        values,
        ["BB901000000FC02", "Aerospike Community Edition", "8.1.1.2"]
    );
}

#[test]
fn bad_headers_and_bodies_are_refused_with_a_reason() {
    let mut h = encode_header(10);
    h[0] = 3;
    assert!(decode_header(h).unwrap_err().contains("version 3"));
    assert!(
        decode_header(encode_header(200 << 20))
            .unwrap_err()
            .contains("limit")
    );
    assert!(
        decode_body(b"node BB9\n")
            .unwrap_err()
            .contains("without a tab")
    );
    assert!(
        decode_body(&[0xff, 0xfe, b'\t', b'\n'])
            .unwrap_err()
            .contains("UTF-8")
    );
}
