//! A moto server (the AWS API emulator from PyPI) for tests: started from the project's `.venv` on
//! a free 127.0.0.1 port, one per test (each its own world), stopped when dropped. It runs behind
//! `scripts/strict-aws.py`, which refuses what AWS refuses and moto accepts (docs/aws.md). Clients
//! built here carry explicit test credentials, so nothing consults the credential chain or the
//! instance-metadata address.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub fn start() -> Moto {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let bin = root.join(".venv/bin/python");
        assert!(
            root.join(".venv/bin/moto_server").exists(),
            "{} is missing: run scripts/test-all, which installs moto[server] into .venv",
            root.join(".venv/bin/moto_server").display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("bound")
            .port();
        let child = Command::new(&bin)
            .arg(root.join("scripts/strict-aws.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        self.ec2_in("us-east-1")
    }

    /// An EC2 client of `region` (moto keeps each region's resources apart).
    pub fn ec2_in(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::config::Builder::new()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "asdr-tests",
            ))
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    /// A KMS client of us-east-1 (the workload account).
    pub fn kms(&self) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::new()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "asdr-tests",
            ))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_at(&self.endpoint)
    }

    /// An EC2 client of `region` acting as `role_arn`'s account: the role assumed through moto's
    /// STS (moto keeps each account's resources apart, by the credentials AssumeRole gave).
    pub async fn ec2_as(&self, role_arn: &str, region: &str) -> aws_sdk_ec2::Client {
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "test",
                "test",
                None,
                None,
                "asdr-tests",
            ))
            .load()
            .await;
        let role = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("asdr-tests")
            .configure(&base)
            .build()
            .await;
        let conf = base
            .into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(role),
            )
            .build();
        aws_sdk_ec2::Client::new(&conf)
    }

    /// A test hook of the strict layer (`scripts/strict-aws.py`): `terminate-launches?count=1`,
    /// `refused`. Its answer.
    pub fn strict(&self, command: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("the strict layer answers");
        let method = if command.starts_with("refused") || command == "calls" {
            "GET"
        } else {
            "POST"
        };
        write!(
            s,
            "{method} /_strict/{command} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("sent");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out.split_once("\r\n\r\n")
            .map_or(out.clone(), |(_, b)| b.to_string())
    }

    /// Every EC2 call so far, with what AWS authorizes for it (see `testkit_iam`).
    pub fn calls(&self) -> Vec<serde_json::Value> {
        self.strict("calls")
            .lines()
            .map(|l| serde_json::from_str(l).expect("the strict layer writes JSON lines"))
            .collect()
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.strict("calls-clear");
    }

    /// Every request the strict layer refused so far (a test that expects none asserts this).
    pub fn refused(&self) -> Vec<String> {
        self.strict("refused").lines().map(str::to_string).collect()
    }
}

/// An S3 client of moto reached at `endpoint` (moto's own, or a [`StallingProxy`] before it).
pub fn s3_at(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "asdr-tests",
        ))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A TCP proxy on 127.0.0.1 before `target` that, once stalled, stops passing bytes either way
/// while keeping every connection open: a network that hangs (no answer, no reset), as a
/// firewall that drops packets makes it. Its threads end with the test process.
#[derive(Debug)]
pub struct StallingProxy {
    pub endpoint: String,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StallingProxy {
    pub fn start(target: &str) -> StallingProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let target = target.trim_start_matches("http://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stalled.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while flag.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        StallingProxy { endpoint, stalled }
    }

    /// From now on nothing passes, until [`StallingProxy::resume`].
    pub fn stall(&self) {
        self.stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Tags for a resource created in moto, as asdr finds them (`asdr:cluster`, `asdr:node`…).
pub fn tag_spec(
    kind: aws_sdk_ec2::types::ResourceType,
    pairs: &[(&str, &str)],
) -> aws_sdk_ec2::types::TagSpecification {
    aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            pairs
                .iter()
                .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

/// Where a node seeded in moto lives, and how it is tagged.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeedNode<'a> {
    /// The subnet and private address of its primary interface (moto's default subnet otherwise).
    pub at: Option<(&'a str, &'a str)>,
    pub az: &'a str,
    /// `(cluster, node)`: the instance and its volumes are tagged for asdr to find.
    pub tagged: Option<(&'a str, &'a str)>,
}

/// An i4i.8xlarge instance with a gp3 volume attached at each of `devices`; its id, and each
/// device's volume id.
pub async fn seed_node(
    ec2: &aws_sdk_ec2::Client,
    node: SeedNode<'_>,
    devices: &[&str],
) -> (String, std::collections::BTreeMap<String, String>) {
    use aws_sdk_ec2::types::ResourceType;
    let mut run = ec2
        .run_instances()
        .image_id("ami-0123456789abcdef0")
        .instance_type(aws_sdk_ec2::types::InstanceType::I4i8xlarge)
        .min_count(1)
        .max_count(1);
    if let Some((subnet, ip)) = node.at {
        run = run.network_interfaces(
            aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(subnet)
                .private_ip_address(ip)
                .delete_on_termination(true)
                .build(),
        );
    }
    if let Some((cluster, name)) = node.tagged {
        run = run.tag_specifications(tag_spec(
            ResourceType::Instance,
            &[
                ("asdr:cluster", cluster),
                ("asdr:node", name),
                ("Name", &format!("{cluster}-{name}")),
            ],
        ));
    }
    let id = run.send().await.expect("RunInstances").instances()[0]
        .instance_id()
        .expect("an instance id")
        .to_string();
    let mut volumes = std::collections::BTreeMap::new();
    for dev in devices {
        let mut create = ec2
            .create_volume()
            .availability_zone(node.az)
            .size(50)
            .volume_type(aws_sdk_ec2::types::VolumeType::Gp3);
        if let Some((cluster, name)) = node.tagged {
            create = create.tag_specifications(tag_spec(
                ResourceType::Volume,
                &[
                    ("asdr:cluster", cluster),
                    ("asdr:node", name),
                    ("asdr:device", dev),
                ],
            ));
        }
        let vol = create
            .send()
            .await
            .expect("CreateVolume")
            .volume_id
            .expect("a volume id");
        ec2.attach_volume()
            .volume_id(&vol)
            .instance_id(&id)
            .device(*dev)
            .send()
            .await
            .expect("AttachVolume");
        volumes.insert(dev.to_string(), vol);
    }
    (id, volumes)
}
