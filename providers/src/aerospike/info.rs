//! The Aerospike info protocol: an 8-byte header (big-endian u64: version 2 << 56 | type 1 << 48 |
//! body length), then commands separated by `\n`, each ending in `\n`. The reply echoes each
//! command, a tab, its value, `\n`. Errors are values `ERROR:<code>:<message>`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const VERSION: u8 = 2;
pub const TYPE_INFO: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// The server refuses bodies over 128 MiB; so do we.
pub const MAX_BODY: u64 = 128 << 20;

/// The largest reply asdr reads: its commands (statistics, a namespace's configuration, the
/// roster) are answered in kilobytes; a peer announcing more is not a node worth believing.
pub const MAX_REPLY: u64 = 16 << 20;

/// An `ERROR:<code>:<message>` reply to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub code: u32,
    pub message: String,
}

/// One command's reply from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub command: String,
    pub value: Result<String, ErrorReply>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("node {node} ({addr}): cannot connect: {message}")]
    Connect {
        node: String,
        addr: SocketAddr,
        message: String,
    },
    #[error("node {node} ({addr}): no answer within {after:?} ({what})")]
    Timeout {
        node: String,
        addr: SocketAddr,
        what: &'static str,
        after: Duration,
    },
    #[error("node {node} ({addr}): connection closed {what}")]
    Closed {
        node: String,
        addr: SocketAddr,
        what: &'static str,
    },
    #[error("node {node} ({addr}): garbled frame: {why}")]
    Garbled {
        node: String,
        addr: SocketAddr,
        why: String,
    },
    #[error("node {node} ({addr}): `{command}` answered ERROR:{code}:{message}")]
    Reply {
        node: String,
        addr: SocketAddr,
        command: String,
        code: u32,
        message: String,
    },
    #[error("node {node} ({addr}): I/O error: {message}")]
    Io {
        node: String,
        addr: SocketAddr,
        message: String,
    },
}

impl InfoError {
    /// The `ERROR:<code>` of a reply error, if this is one.
    pub fn reply_code(&self) -> Option<u32> {
        match self {
            InfoError::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A request frame for `commands` (each gets its trailing `\n`).
pub fn encode_request(commands: &[&str]) -> Vec<u8> {
    let body: String = commands.iter().map(|c| format!("{c}\n")).collect();
    let mut out = encode_header(body.len() as u64).to_vec();
    out.extend_from_slice(body.as_bytes());
    out
}

pub fn encode_header(len: u64) -> [u8; HEADER_LEN] {
    ((u64::from(VERSION) << 56) | (u64::from(TYPE_INFO) << 48) | (len & 0xFFFF_FFFF_FFFF))
        .to_be_bytes()
}

/// The body length a header announces, after checking version, type and size.
pub fn decode_header(header: [u8; HEADER_LEN]) -> Result<u64, String> {
    let word = u64::from_be_bytes(header);
    let (version, kind, len) = (
        (word >> 56) as u8,
        ((word >> 48) & 0xFF) as u8,
        word & 0xFFFF_FFFF_FFFF,
    );
    if version != VERSION {
        return Err(format!("protocol version {version}, expected {VERSION}"));
    }
    if kind != TYPE_INFO {
        return Err(format!("message type {kind}, expected {TYPE_INFO} (info)"));
    }
    if len > MAX_BODY {
        return Err(format!(
            "body of {len} bytes is over the {MAX_BODY}-byte limit"
        ));
    }
    Ok(len)
}

/// Splits a reply body into one reply per line: `command\tvalue`.
pub fn decode_body(body: &[u8]) -> Result<Vec<Reply>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let mut out = Vec::new();
    for line in text.split_terminator('\n') {
        let (command, value) = line
            .split_once('\t')
            .ok_or_else(|| format!("line without a tab: {:?}", truncate(line)))?;
        out.push(Reply {
            command: command.to_string(),
            value: parse_value(value),
        });
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn parse_value(value: &str) -> Result<String, ErrorReply> {
    match value.strip_prefix("ERROR:") {
        Some(rest) => {
            let (code, message) = rest.split_once(':').unwrap_or((rest, ""));
            Err(ErrorReply {
                code: code.parse().unwrap_or(0),
                message: message.to_string(),
            })
        }
        None => Ok(value.to_string()),
    }
}

/// `k=v;k=v` into pairs (values keep any further `=`).
pub fn parse_kv(value: &str) -> Vec<(&str, &str)> {
    value
        .split(';')
        .filter(|s| !s.is_empty())
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// Talks to one node. A connection per request: asdr sends few, and a fresh connection cannot be
/// left in a half-read state by an earlier timeout.
#[derive(Debug, Clone)]
pub struct InfoClient {
    pub node: String,
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl InfoClient {
    pub fn new(node: &str, addr: SocketAddr) -> Self {
        InfoClient {
            node: node.into(),
            addr,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(10),
        }
    }

    fn garbled(&self, why: String) -> InfoError {
        InfoError::Garbled {
            node: self.node.clone(),
            addr: self.addr,
            why,
        }
    }

    /// Sends `commands` in one frame and returns one reply per command, in order.
    pub async fn request(&self, commands: &[&str]) -> Result<Vec<Reply>, InfoError> {
        let (node, addr) = (self.node.clone(), self.addr);
        let mut stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| InfoError::Timeout {
                node: node.clone(),
                addr,
                what: "connect",
                after: self.connect_timeout,
            })?
            .map_err(|e| InfoError::Connect {
                node: node.clone(),
                addr,
                message: e.to_string(),
            })?;
        let io = |e: std::io::Error| InfoError::Io {
            node: node.clone(),
            addr,
            message: e.to_string(),
        };
        stream
            .write_all(&encode_request(commands))
            .await
            .map_err(io)?;
        let read = async {
            let mut header = [0u8; HEADER_LEN];
            read_exact(&mut stream, &mut header, "before the header").await?;
            let len = decode_header(header).map_err(|why| self.garbled(why))?;
            if len > MAX_REPLY {
                return Err(ReadError::Info(self.garbled(format!(
                    "a reply of {len} bytes announced; asdr's commands are answered in far less than {MAX_REPLY}"
                ))));
            }
            // Grown as bytes arrive, never allocated from the header's word alone: a peer that
            // announces megabytes and sends nothing costs nothing.
            let mut body = Vec::with_capacity(len.min(64 << 10) as usize);
            (&mut stream)
                .take(len)
                .read_to_end(&mut body)
                .await
                .map_err(ReadError::Io)?;
            if (body.len() as u64) < len {
                return Err(ReadError::Closed("in the middle of the body"));
            }
            Ok::<_, ReadError>(body)
        };
        let body = match tokio::time::timeout(self.read_timeout, read).await {
            Err(_) => {
                return Err(InfoError::Timeout {
                    node,
                    addr,
                    what: "reply",
                    after: self.read_timeout,
                });
            }
            Ok(Err(ReadError::Closed(what))) => return Err(InfoError::Closed { node, addr, what }),
            Ok(Err(ReadError::Io(e))) => return Err(io(e)),
            Ok(Err(ReadError::Info(e))) => return Err(e),
            Ok(Ok(body)) => body,
        };
        let replies = decode_body(&body).map_err(|why| self.garbled(why))?;
        if replies.len() != commands.len()
            || replies.iter().zip(commands).any(|(r, c)| r.command != *c)
        {
            return Err(self.garbled(format!(
                "{} replies for {} commands, or echoes that do not match",
                replies.len(),
                commands.len()
            )));
        }
        Ok(replies)
    }

    /// One command; an `ERROR:` reply becomes `InfoError::Reply`.
    pub async fn get(&self, command: &str) -> Result<String, InfoError> {
        let reply = self.request(&[command]).await?.remove(0);
        reply.value.map_err(|e| InfoError::Reply {
            node: self.node.clone(),
            addr: self.addr,
            command: command.into(),
            code: e.code,
            message: e.message,
        })
    }
}

enum ReadError {
    Closed(&'static str),
    Io(std::io::Error),
    Info(InfoError),
}

impl From<InfoError> for ReadError {
    fn from(e: InfoError) -> Self {
        ReadError::Info(e)
    }
}

async fn read_exact(
    stream: &mut TcpStream,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), ReadError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ReadError::Closed(what)),
        Err(e) => Err(ReadError::Io(e)),
    }
}
