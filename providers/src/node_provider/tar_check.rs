//! The members of an SMD archive, read here from its tar headers: what the node's own listing
//! refuses before unpacking (a link, a device, a fifo, a name that is absolute or climbs), found
//! before anything is stopped (a restore) and before a set counts (a backup), so a set whose
//! archive a restore would refuse is never made, and a restore never stops a cluster it cannot
//! finish.

/// Why `tar` holds a member that is not a plain file or directory under a plain relative name,
/// or is not a whole tar archive; None when every member is plain.
pub(crate) fn unsafe_member(tar: &[u8]) -> Option<String> {
    let mut off = 0usize;
    // Names given by the headers before a member: GNU long names (`L`), pax `path=` (`x`).
    let mut next_name: Option<String> = None;
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|b| *b == 0) {
            return None;
        }
        if !checksum_holds(h) {
            return Some(format!(
                "a header at byte {off} whose checksum does not hold (not a whole tar archive)"
            ));
        }
        let Some(size) = octal(&h[124..136]) else {
            return Some(format!("a header at byte {off} with no readable size"));
        };
        let data = off + 512;
        let Some(end) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(511))
            .map(|s| data.saturating_add(s / 512 * 512))
            .filter(|e| *e <= tar.len())
        else {
            return Some(format!(
                "member at byte {off} runs past the end of the archive"
            ));
        };
        let body = &tar[data..data + size as usize];
        let kind = h[156];
        match kind {
            b'L' => next_name = Some(cstr(body)),
            b'x' => {
                if let Some(p) = pax_path(body) {
                    next_name = Some(p);
                }
            }
            b'g' => {}
            b'0' | 0 | b'5' => {
                let name = next_name.take().unwrap_or_else(|| header_name(h));
                if name.starts_with('/') || name.split('/').any(|c| c == "..") {
                    return Some(format!(
                        "member `{name}`, whose name is absolute or climbs out"
                    ));
                }
            }
            other => {
                let name = next_name.take().unwrap_or_else(|| header_name(h));
                return Some(format!("member `{name}`, {}", describe(other)));
            }
        }
        off = end;
    }
    if off < tar.len() {
        return Some("a truncated last header (not a whole tar archive)".into());
    }
    None
}

fn describe(kind: u8) -> String {
    match kind {
        b'1' => "a hard link".into(),
        b'2' => "a symbolic link".into(),
        b'3' => "a character device".into(),
        b'4' => "a block device".into(),
        b'6' => "a fifo".into(),
        b'7' => "a contiguous file".into(),
        other => format!("of tar type `{}`", other.escape_ascii()),
    }
}

fn checksum_holds(h: &[u8]) -> bool {
    let want = octal(&h[148..156]);
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    want == Some(sum)
}

/// A tar number: octal digits (NUL- or space-terminated), or GNU's base-256 (high bit set).
fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x7f), |n, b| {
                n.checked_mul(256)?.checked_add(u64::from(*b))
            });
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn cstr(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

/// ustar: `prefix/name` when the prefix is set.
fn header_name(h: &[u8]) -> String {
    let name = cstr(&h[0..100]);
    if &h[257..262] == b"ustar" {
        let prefix = cstr(&h[345..500]);
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

/// The `path=` record of a pax header (`<len> path=<value>\n`).
fn pax_path(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    text.lines().find_map(|line| {
        let (_, record) = line.split_once(' ')?;
        record.strip_prefix("path=").map(str::to_string)
    })
}
