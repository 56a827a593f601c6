//! A file store as an attacker who can write into it leaves it: links planted where asdr writes
//! or reads, link loops, objects too large to read whole.

use asdr_providers::store::{LocalStore, MAX_OBJECT, Store, sha256_hex};

/// The name the file store once wrote its temporary file under, planted as a link to another
/// file: the write goes to the object, and the other file is untouched.
#[tokio::test]
async fn a_planted_temp_link_never_redirects_a_file_store_write() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let object = dir.path().join("store/prod/bs-1/a1.smd.tar");
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    for planted in [
        "a1.smd.asdr-tmp",
        "a1.smd.tar.asdr-tmp",
        ".a1.smd.tar.asdr-tmp",
    ] {
        std::os::unix::fs::symlink(&victim, object.with_file_name(planted)).unwrap();
    }
    let uri = format!("file://{}", object.display());
    LocalStore.put(&uri, b"archive".to_vec()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(LocalStore.get(&uri).await.unwrap(), b"archive");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&object).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "owner-only: SMD holds users and roles ({mode:o})"
    );
}

/// A link in the store (to a file asdr could be made to copy or serve as an archive, or a loop)
/// is neither listed nor read; a listing through a link loop ends.
#[tokio::test]
async fn a_link_in_a_file_store_is_neither_listed_nor_read_and_a_loop_ends_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root's").unwrap();
    let set = dir.path().join("store/prod/bs-1");
    std::fs::create_dir_all(&set).unwrap();
    std::fs::write(set.join("a1.smd.tar"), "a1").unwrap();
    std::os::unix::fs::symlink(&secret, set.join("a2.smd.tar")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("store"), set.join("loop")).unwrap();
    let prefix = format!("file://{}/store/", dir.path().display());
    let listed = LocalStore.list(&prefix).await.unwrap();
    assert_eq!(
        listed,
        vec![format!("file://{}/a1.smd.tar", set.display())],
        "only the regular file"
    );
    let err = LocalStore
        .get(&format!("file://{}/a2.smd.tar", set.display()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    let err = LocalStore
        .digest(&format!("file://{}/a2.smd.tar", set.display()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

/// An object larger than anything asdr reads whole is refused without being read; its digest is
/// computed as it streams (asbackup's files are hashed this way).
#[tokio::test]
async fn an_object_over_the_limit_is_refused_and_digests_stream() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.smd.tar");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_OBJECT + 1)
        .unwrap();
    let err = LocalStore
        .get(&format!("file://{}", big.display()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("over the"), "{err}");
    let small = dir.path().join("small");
    std::fs::write(&small, vec![7u8; 3 << 20]).unwrap();
    assert_eq!(
        LocalStore
            .digest(&format!("file://{}", small.display()))
            .await
            .unwrap(),
        sha256_hex(&std::fs::read(&small).unwrap())
    );
}

/// Security review: a fifo planted where a checksum or an archive is read held `status` and a
/// restore forever. It is refused at once as not a regular file.
#[tokio::test]
async fn a_fifo_in_a_file_store_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("a1.smd.tar.sha256");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let uri = format!("file://{}", fifo.display());
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), LocalStore.get(&uri))
        .await
        .expect("not held by the fifo");
    let err = got.unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

/// Suspected in review (trust boundaries): whole S3 objects were read into memory, however
/// large. `get` reads no object past the bound whole (here a small bound, on moto), and a
/// digest streams whatever the size.
#[tokio::test]
async fn an_s3_object_over_the_bound_is_not_read_whole_and_digests_stream() {
    let moto = asdr_providers::testkit_moto::Moto::start();
    let raw = moto.s3();
    raw.create_bucket()
        .bucket("acme-bound")
        .send()
        .await
        .unwrap();
    let s3 = asdr_providers::store::s3::S3Store::new(raw.clone()).with_max_object(1024);
    let big = vec![7u8; 4096];
    s3.put("s3://acme-bound/c/big.smd.tar", big.clone())
        .await
        .unwrap();
    s3.put("s3://acme-bound/c/small.json", b"{}".to_vec())
        .await
        .unwrap();
    let err = s3
        .get("s3://acme-bound/c/big.smd.tar")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("over the 1024-byte limit"), "{err}");
    assert_eq!(s3.get("s3://acme-bound/c/small.json").await.unwrap(), b"{}");
    assert_eq!(
        s3.digest("s3://acme-bound/c/big.smd.tar").await.unwrap(),
        sha256_hex(&big)
    );
}
