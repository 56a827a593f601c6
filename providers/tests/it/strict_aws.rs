//! The strict layer (`scripts/strict-aws.py`) every moto test runs behind refuses what EC2
//! refuses and moto accepts: each rule checked here through the SDK, so a test that passes
//! through the layer proves asdr's requests obey it.

use asdr_providers::testkit_moto::Moto;
use aws_sdk_ec2::types::{Filter, VolumeType};

fn code<E: aws_sdk_ec2::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("?").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_layer_refuses_requests_ec2_refuses_and_moto_accepts() {
    let moto = Moto::start();
    let ec2 = moto.ec2();
    // Filter: at most 200 values.
    let ips: Vec<String> = (0..201)
        .map(|i| format!("10.0.{}.{}", i / 200, i % 200))
        .collect();
    let e = ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name("private-ip-address")
                .set_values(Some(ips.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "FilterLimitExceeded");
    ec2.describe_instances()
        .filters(
            Filter::builder()
                .name("private-ip-address")
                .set_values(Some(ips[..200].to_vec()))
                .build(),
        )
        .send()
        .await
        .expect("200 values pass");
    // CreateTags: at most 1,000 resource ids.
    let ids: Vec<String> = (0..1001).map(|i| format!("snap-{i:017x}")).collect();
    let e = ec2
        .create_tags()
        .set_resources(Some(ids))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("k")
                .value("v")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidParameterValue");
    // CreateVolume: iops and throughput only where the type takes them.
    let volume = |t: VolumeType| {
        ec2.create_volume()
            .availability_zone("us-east-1a")
            .size(10)
            .volume_type(t)
    };
    let e = volume(VolumeType::Gp2).iops(3000).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidParameterCombination");
    let e = volume(VolumeType::Io2).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "MissingParameter");
    let e = volume(VolumeType::Io1)
        .iops(3000)
        .throughput(250)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidParameterCombination");
    let e = volume(VolumeType::Gp3).iops(2000).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidParameterValue");
    let v = volume(VolumeType::Gp3)
        .iops(3000)
        .throughput(125)
        .send()
        .await
        .expect("gp3 with its own settings passes");
    // AttachVolume: an EBS device name.
    let run = ec2
        .run_instances()
        .image_id("ami-0123456789abcdef0")
        .min_count(1)
        .max_count(1)
        .client_token("strict-token-1")
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_string();
    let e = ec2
        .attach_volume()
        .volume_id(v.volume_id().unwrap())
        .instance_id(&instance)
        .device("/dev/nvme1n1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidParameterValue");
    // RunInstances: the same client token answers with the same instance, even terminated.
    ec2.terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    let again = ec2
        .run_instances()
        .image_id("ami-0123456789abcdef0")
        .min_count(1)
        .max_count(1)
        .client_token("strict-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.instances()[0].instance_id(), Some(instance.as_str()));
    assert_eq!(moto.refused().len(), 7, "{:?}", moto.refused());
    // The test hook: the next launch ends at once, with a StateReason.
    assert_eq!(
        moto.strict("terminate-launches?count=1&code=Server.InsufficientInstanceCapacity")
            .trim(),
        "ok"
    );
    let ended = ec2
        .run_instances()
        .image_id("ami-0123456789abcdef0")
        .min_count(1)
        .max_count(1)
        .client_token("strict-token-2")
        .send()
        .await
        .unwrap();
    let id = ended.instances()[0].instance_id().unwrap();
    let d = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let i = &d.reservations()[0].instances()[0];
    assert_eq!(
        i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("terminated")
    );
    assert_eq!(
        i.state_reason().and_then(|r| r.code()),
        Some("Server.InsufficientInstanceCapacity")
    );
}
