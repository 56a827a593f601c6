//! The transports against real peers: `local` runs here; `ssh` goes through a real OpenSSH `sshd`
//! that the test starts on 127.0.0.1 with keys it generates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use asdr_providers::exec::local::Local;
use asdr_providers::exec::ssh::Ssh;
use asdr_providers::exec::{Target, Transport, TransportError, read_file, run_ok, write_file};

fn target(host: &str) -> Target {
    Target {
        node: "a1".into(),
        host: host.into(),
    }
}

/// Exercises a transport the way the steps use it: a command with output, binary-safe file
/// writes that keep the previous file, reads, a failing command, stdin.
async fn exercise<T: Transport>(t: &T, host: &str, dir: &Path) {
    let tg = target(host);
    let out = run_ok(t, &tg, "echo hello; echo world >&2", None)
        .await
        .unwrap();
    assert_eq!(out, b"hello\n");
    let path = dir.join("etc/aerospike.conf");
    let p = path.to_str().unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    write_file(t, &tg, p, binary.clone(), Some(".asdr-prev"))
        .await
        .unwrap();
    assert_eq!(
        read_file(t, &tg, p).await.unwrap(),
        binary,
        "binary-safe round trip"
    );
    write_file(t, &tg, p, b"second\n".to_vec(), Some(".asdr-prev"))
        .await
        .unwrap();
    assert_eq!(read_file(t, &tg, p).await.unwrap(), b"second\n");
    assert_eq!(
        std::fs::read(format!("{p}.asdr-prev")).unwrap(),
        binary,
        "the previous file is kept"
    );
    assert!(!Path::new(&format!("{p}.asdr-tmp")).exists());
    let err = run_ok(t, &tg, "echo nope >&2; exit 3", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Failed { status: 3, stderr, node, .. } if stderr == "nope" && node == "a1"),
        "{err}"
    );
    let echoed = run_ok(t, &tg, "wc -c", Some(vec![b'x'; 12345]))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(echoed).unwrap().trim(), "12345");
}

#[tokio::test]
async fn local_runs_commands_and_moves_files() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&Local::default(), "localhost", dir.path()).await;
}

#[tokio::test]
async fn local_commands_past_their_deadline_are_stopped() {
    let t = Local {
        timeout: Duration::from_millis(200),
        env: Vec::new(),
    };
    let started = Instant::now();
    let err = t
        .run(&target("localhost"), "sleep 30", None)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("node a1 (localhost)"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen failed");
}

/// Starts `sshd -D` on 127.0.0.1 at a free port, accepting a key made for this test only.
fn start_sshd() -> Sshd {
    // scripts/test-all finds one, or unpacks it into the project's .tools/ (no service).
    let sshd_path = std::env::var("ASDR_SSHD").unwrap_or_else(|_| "/usr/sbin/sshd".into());
    let sshd = Path::new(&sshd_path);
    assert!(
        sshd.exists(),
        "OpenSSH sshd is needed for this test: run it through scripts/test-all, which finds or unpacks one, or set ASDR_SSHD"
    );
    let dir = tempfile::tempdir().unwrap();
    let host_key = dir.path().join("host_key");
    let key = dir.path().join("client_key");
    keygen(&host_key);
    keygen(&key);
    let auth = dir.path().join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &auth).unwrap();
    // sshd refuses to start without its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let config = dir.path().join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\nAllowUsers {user}\nPidFile {}\nSubsystem sftp internal-sftp\n",
            host_key.display(),
            auth.display(),
            dir.path().join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let known_hosts = dir.path().join("known_hosts");
    Sshd {
        child,
        port,
        key,
        known_hosts,
        _dir: dir,
    }
}

fn ssh_for(d: &Sshd) -> Ssh {
    let mut t = Ssh::new(
        &std::env::var("USER").unwrap_or_else(|_| "root".into()),
        d.port,
    );
    t.identity_file = Some(d.key.clone());
    t.known_hosts = Some(d.known_hosts.clone());
    t.timeout = Duration::from_secs(30);
    t
}

#[tokio::test]
async fn ssh_runs_commands_and_moves_files_through_a_real_sshd() {
    let d = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    exercise(&ssh_for(&d), "127.0.0.1", dir.path()).await;
    // Debian hashes host names in known_hosts; the key type is in clear.
    assert!(
        std::fs::read_to_string(&d.known_hosts)
            .unwrap()
            .contains("ssh-ed25519"),
        "the host key was recorded"
    );
}

#[tokio::test]
async fn ssh_to_a_host_that_does_not_answer_names_the_node_and_address() {
    let d = start_sshd();
    let mut t = ssh_for(&d);
    t.port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = t.run(&target("127.0.0.1"), "true", None).await.unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("node a1 (127.0.0.1:{})", t.port)),
        "{err}"
    );
}

#[tokio::test]
async fn ssh_refuses_a_key_the_server_does_not_accept() {
    let d = start_sshd();
    let mut t = ssh_for(&d);
    let other = tempfile::tempdir().unwrap();
    let stranger = other.path().join("stranger");
    keygen(&stranger);
    t.identity_file = Some(stranger);
    let err = t.run(&target("127.0.0.1"), "true", None).await.unwrap_err();
    assert!(err.to_string().contains("Permission denied"), "{err}");
}

/// With a pinned known-hosts file (`access.ssh.known_hosts`), no host key is trusted on first
/// contact and none is added: a host whose key is not in the file (a stranger at the node's
/// address, or a replacement whose key was not pinned yet) is refused; once pinned, it is used.
#[tokio::test]
async fn ssh_with_a_pinned_known_hosts_file_trusts_no_key_on_first_contact() {
    let d = start_sshd();
    let pins = tempfile::tempdir().unwrap();
    let pinned = pins.path().join("prod-east.known_hosts");
    std::fs::write(&pinned, "").unwrap();
    let mut t = ssh_for(&d);
    t.known_hosts = Some(pinned.clone());
    t.pinned = true;
    let err = t.run(&target("127.0.0.1"), "true", None).await.unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains("Host key verification failed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&pinned).unwrap(),
        "",
        "nothing added on first contact"
    );
    // The host's key pinned (as an operator would from the instance's console output).
    let host_pub = std::fs::read_to_string(d._dir.path().join("host_key.pub")).unwrap();
    let key = host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(&pinned, format!("[127.0.0.1]:{} {key}\n", d.port)).unwrap();
    let out = t
        .run(&target("127.0.0.1"), "echo pinned", None)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pinned");
    // Another host's key at that address: refused.
    let other = tempfile::tempdir().unwrap();
    let stranger = other.path().join("other_host_key");
    keygen(&stranger);
    let stranger_pub = std::fs::read_to_string(stranger.with_extension("pub")).unwrap();
    let key = stranger_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(&pinned, format!("[127.0.0.1]:{} {key}\n", d.port)).unwrap();
    let err = t.run(&target("127.0.0.1"), "true", None).await.unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
}

/// Suspected in review (trust boundaries): a node's output was read whole, however large. It is
/// bounded (the largest object asdr reads whole): a command printing past it is refused, and
/// nothing of what it printed is used.
#[tokio::test]
async fn a_command_printing_past_the_bound_is_refused() {
    let t = Local::default();
    let too_much = asdr_providers::store::MAX_OBJECT + 1;
    let err = t
        .run(
            &target("127.0.0.1"),
            &format!("head -c {too_much} /dev/zero"),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("printed more than"), "{err}");
    // Within the bound, output is kept whole.
    let out = t
        .run(&target("127.0.0.1"), "head -c 1048576 /dev/zero", None)
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 1 << 20);
}
