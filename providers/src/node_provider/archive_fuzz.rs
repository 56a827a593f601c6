//! Hostile SMD archives against the script that unpacks them as root on a node
//! (`replace_smd_dir`), run here with `sh` in a sandbox: tar members of every type, names that are
//! absolute or climb out, setuid modes, truncated and garbled headers. Whatever the archive, the
//! script never leaves a link, a device, a fifo, a setuid file or anything outside the SMD
//! directory; an archive with such a member is refused and the live directory kept as it was.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::replace_smd_dir;

#[derive(Debug, Clone)]
struct Member {
    kind: u8,
    name: String,
    link: String,
    mode: u32,
    body: Vec<u8>,
}

impl Member {
    /// What GNU tar unpacks as something other than a plain file or a directory: hard and
    /// symbolic links, character and block devices, fifos. (A pax header `x` describes the next
    /// member; unknown types such as `Z` and contiguous files `7` are unpacked as plain files.)
    fn is_special(&self) -> bool {
        matches!(self.kind, b'1' | b'2' | b'3' | b'4' | b'6')
    }

    /// A member's own name (a pax header's `x` name is nobody's) that is absolute or climbs.
    fn climbs_or_is_absolute(&self) -> bool {
        self.kind != b'x' && (self.name.starts_with('/') || self.name.split('/').any(|c| c == ".."))
    }
}

/// A ustar header and body for `m` (its checksum right unless `garble`).
fn ustar(m: &Member, garble: bool) -> Vec<u8> {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, len: usize, v: &[u8]| {
        let n = v.len().min(len);
        h[at..at + n].copy_from_slice(&v[..n]);
    };
    let octal = |v: u64, width: usize| format!("{v:0w$o}\0", w = width - 1).into_bytes();
    put(&mut h, 0, 100, m.name.as_bytes());
    put(&mut h, 100, 8, &octal(u64::from(m.mode), 8));
    put(&mut h, 108, 8, &octal(0, 8));
    put(&mut h, 116, 8, &octal(0, 8));
    let size = if m.kind == b'0' { m.body.len() } else { 0 };
    put(&mut h, 124, 12, &octal(size as u64, 12));
    put(&mut h, 136, 12, &octal(1_700_000_000, 12));
    h[156] = m.kind;
    put(&mut h, 157, 100, m.link.as_bytes());
    put(&mut h, 257, 6, b"ustar\0");
    put(&mut h, 263, 2, b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum::<u32>() + u32::from(garble);
    put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    if size > 0 {
        out.extend_from_slice(&m.body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out
}

fn archive(members: &[Member], garble_at: Option<usize>, truncate: Option<usize>) -> Vec<u8> {
    let mut out: Vec<u8> = members
        .iter()
        .enumerate()
        .flat_map(|(i, m)| ustar(m, garble_at == Some(i)))
        .collect();
    out.extend_from_slice(&[0u8; 1024]);
    if let Some(t) = truncate {
        out.truncate(t % out.len().max(1));
    }
    out
}

fn member() -> impl Strategy<Value = Member> {
    let kind = prop::sample::select(vec![
        b'0', b'0', b'0', b'5', b'5', b'1', b'2', b'3', b'4', b'6', b'7', b'x', b'Z',
    ]);
    let part = prop::sample::select(vec!["a", "b", "UDF.smd", "..", ".", "x y", "-rf", "etc"]);
    let name = (
        any::<bool>(),
        prop::collection::vec(part, 1..4),
        any::<bool>(),
    )
        .prop_map(|(abs, parts, dir)| {
            let mut n = format!("{}{}", if abs { "/" } else { "" }, parts.join("/"));
            if dir {
                n.push('/');
            }
            n
        });
    let link = prop::sample::select(vec!["/etc/passwd", "../../../x", "a", "/dev/mem"]);
    let mode = prop::sample::select(vec![0o644u32, 0o4755, 0o2777, 0o777, 0o600]);
    (
        kind,
        name,
        link,
        mode,
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(kind, name, link, mode, body)| Member {
            kind,
            name,
            link: link.to_string(),
            mode,
            body,
        })
}

/// Every path under `dir` (links not followed), with its metadata.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, out);
        }
        out.push((path, meta));
    }
}

/// Runs the unpacking script on `bytes` in a fresh sandbox; returns its exit code and the sandbox.
fn unpack(bytes: &[u8]) -> (i32, tempfile::TempDir, PathBuf) {
    let sandbox = tempfile::tempdir().unwrap();
    let root = sandbox.path().join("a/b/root");
    std::fs::create_dir_all(root.join("smd")).unwrap();
    std::fs::write(root.join("smd/UDF.smd"), "live").unwrap();
    let file = sandbox.path().join("planted.tar");
    std::fs::write(&file, bytes).unwrap();
    let to = root.join("smd").display().to_string();
    let prev = root.join("smd.asdr-prev").display().to_string();
    let script = replace_smd_dir(&to, &prev, &crate::exec::quote(&file.display().to_string()));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    (status.code().unwrap_or(-1), sandbox, root)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_hostile_smd_archive_never_leaves_a_link_a_device_a_setuid_file_or_a_path_outside(
        members in prop::collection::vec(member(), 1..6),
        garble in prop::option::weighted(0.15, 0usize..6),
        truncate in prop::option::weighted(0.15, 0usize..8192),
    ) {
        let bytes = archive(&members, garble, truncate);
        let (code, sandbox, root) = unpack(&bytes);
        let mut seen = Vec::new();
        walk(sandbox.path(), &mut seen);
        let smd = root.join("smd");
        let prev = root.join("smd.asdr-prev");
        for (path, meta) in &seen {
            let ft = meta.file_type();
            prop_assert!(
                !(ft.is_symlink() || ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket()),
                "{} is a link or a special file (exit {code})", path.display()
            );
            prop_assert_eq!(meta.permissions().mode() & 0o6002, 0, "{} keeps setuid, setgid or world-write", path.display());
            let ours = path.starts_with(&smd)
                || path.starts_with(&prev)
                || [sandbox.path().join("a"), sandbox.path().join("a/b"), root.clone(), sandbox.path().join("planted.tar")].contains(path);
            prop_assert!(ours, "{} is outside the SMD directory (exit {code})", path.display());
        }
        let special = garble.is_none() && truncate.is_none() && members.iter().any(Member::is_special);
        let climbs = garble.is_none() && truncate.is_none() && members.iter().any(Member::climbs_or_is_absolute);
        if special || climbs || code != 0 {
            prop_assert!(code != 0, "an archive with a link, a special member or a path out was unpacked");
            prop_assert_eq!(std::fs::read_to_string(smd.join("UDF.smd")).unwrap(), "live", "the live directory is kept");
            prop_assert!(!root.join("smd.asdr-new").exists(), "nothing half-unpacked left (exit {})", code);
        }
        if special || climbs {
            prop_assert_eq!(code, 66, "refused, before anything is unpacked, for its members");
        }
        // asdr's own reading of the headers (before a restore stops anything) refuses at least
        // what the node's listing refuses.
        let ours = super::tar_check::unsafe_member(&bytes);
        if code == 66 {
            prop_assert!(ours.is_some(), "the node refused what asdr's check passed");
        }
        if special || climbs {
            prop_assert!(ours.is_some(), "asdr's check passed a link, a special member or a path out");
        }
    }
}

/// The check is no wall: plain files and directories under plain names are unpacked whole.
#[test]
fn a_plain_smd_archive_is_unpacked_whole() {
    let members: Vec<Member> = ["UDF.smd", "sindex.smd", "evict.smd"]
        .iter()
        .map(|n| Member {
            kind: b'0',
            name: (*n).into(),
            link: String::new(),
            mode: 0o644,
            body: format!("{n} body").into_bytes(),
        })
        .chain(std::iter::once(Member {
            kind: b'5',
            name: "sub/".into(),
            link: String::new(),
            mode: 0o755,
            body: Vec::new(),
        }))
        .collect();
    let bytes = archive(&members, None, None);
    assert_eq!(
        super::tar_check::unsafe_member(&bytes),
        None,
        "asdr's check passes it"
    );
    let (code, _sandbox, root) = unpack(&bytes);
    assert_eq!(code, 0);
    for n in ["UDF.smd", "sindex.smd", "evict.smd"] {
        assert_eq!(
            std::fs::read_to_string(root.join("smd").join(n)).unwrap(),
            format!("{n} body")
        );
    }
    assert!(root.join("smd/sub").is_dir());
    assert_eq!(
        std::fs::read_to_string(root.join("smd.asdr-prev/UDF.smd")).unwrap(),
        "live",
        "the previous directory kept beside it"
    );
}

/// Suspected in review (trust boundaries): the node-side archive over SSM went through a
/// predictable `/tmp/asdr-smd.$$.tar`, which any local user could create first as a link. The
/// script works in a fresh `mktemp -d` directory and leaves nothing behind; run here with a
/// stand-in `aws` that copies to a local directory.
#[test]
fn the_ssm_archiving_script_works_in_a_private_directory_and_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("bin");
    let bucket = t.path().join("bucket");
    let tmp = t.path().join("tmp");
    for d in [&bin, &bucket, &tmp] {
        std::fs::create_dir_all(d).unwrap();
    }
    // `aws s3 cp [--only-show-errors] SRC DST`: `-` is stdin; s3://b/ maps to the bucket dir.
    let aws = bin.join("aws");
    std::fs::write(
        &aws,
        format!(
            "#!/bin/sh\nsrc=\"$4\"; dst=\"$5\"; b={}; case \"$dst\" in s3://*) dst=\"$b/${{dst#s3://b/}}\";; esac; mkdir -p \"$(dirname \"$dst\")\"; if [ \"$src\" = - ]; then cat > \"$dst\"; else cp \"$src\" \"$dst\"; fi\n",
            bucket.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let smd = t.path().join("smd");
    std::fs::create_dir_all(&smd).unwrap();
    std::fs::write(smd.join("UDF.smd"), "udf").unwrap();
    let script = super::smd::copy_on_node_script(&smd.display().to_string(), "s3://b/c/a1.smd.tar");
    assert!(
        script.contains("mktemp -d") && !script.contains("asdr-smd."),
        "{script}"
    );
    let run = |script: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("TMPDIR", &tmp)
            .output()
            .unwrap()
    };
    let out = run(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let archived = std::fs::read(bucket.join("c/a1.smd.tar")).unwrap();
    assert_eq!(sha, crate::store::sha256_hex(&archived));
    assert_eq!(super::tar_check::unsafe_member(&archived), None);
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "nothing left in the temporary directory"
    );
    // A link in the SMD directory: refused on the node, nothing uploaded, nothing left.
    std::os::unix::fs::symlink("/etc/passwd", smd.join("passwd")).unwrap();
    let script = super::smd::copy_on_node_script(&smd.display().to_string(), "s3://b/c/a2.smd.tar");
    let out = run(&script);
    assert_eq!(out.status.code(), Some(66));
    assert!(!bucket.join("c/a2.smd.tar").exists());
    assert!(std::fs::read_dir(&tmp).unwrap().next().is_none());
}
