//! A restore into another region or a backup account: a whole new cluster there.

use super::*;

/// A restore into another region: a new cluster there from the copies of a set (the copy
/// region's view of the world), at the target's addresses, subnets, security groups and AMI,
/// its configs rendered with the new peers, SMD from the copy's store. Nothing of the cluster's
/// own region is touched. A cluster this restore already built there is left as it stands.
pub(super) fn elsewhere(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    target: &asdr_specs::RegionTarget,
    b: &mut Builder,
) -> Result<(), PlanError> {
    let name = &restore.name;
    let built: Vec<&crate::world::Instance> = ctx
        .world
        .instances
        .iter()
        .filter(|i| {
            i.region.as_deref() == Some(target.region.as_str())
                && i.tags.get(crate::tags::RESTORE) == Some(name)
                && i.tags.get(crate::tags::CLUSTER) == Some(&ctx.policy.cluster.name)
                && i.state != crate::world::InstanceState::Terminated
                // What this restore built stands where it puts a node (the node's address
                // there) and carries the cluster's id: instances that only carry the tags
                // (anyone can tag) never make a disaster's restore a no-op.
                && i.tags.get(crate::tags::NODE).is_some_and(|n| {
                    let node = n.split_once('@').map_or(n.as_str(), |(node, _)| node);
                    target.private_ips.get(node).map(|ip| ip.to_string()) == i.private_ip
                })
                && i.tags.get(crate::tags::CLUSTER_ID).map(String::as_str) == Some(ctx.cluster_id)
        })
        .collect();
    let nodes = ctx.policy.cluster.nodes.len();
    // It stands only when the apply that built it saw it stand (the mark); instances without it
    // are a build that stopped halfway (volumes attached, Aerospike perhaps never started).
    let marked = built
        .iter()
        .filter(|i| i.tags.contains_key(crate::tags::RESTORE_COMPLETE))
        .count();
    if built.len() >= nodes && marked == built.len() {
        // It stood; it stands now only if its instances run (stopped by hand, or by AWS for
        // maintenance, it serves nothing).
        let idle: Vec<String> = built
            .iter()
            .filter(|i| i.state != crate::world::InstanceState::Running)
            .map(|i| format!("{} ({:?})", i.id, i.state).to_lowercase())
            .collect();
        if !idle.is_empty() {
            return Err(refuse(
                Diagnostic::new(
                    restore.name_span,
                    format!(
                        "restore `{name}` was built in {} and stood, but {} of its instances are not running: {}; it does not stand now",
                        asdr_specs::place_text(&target.region),
                        idle.len(),
                        idle.join(", ")
                    ),
                )
                .rule("R16")
                .help("start them (aws ec2 start-instances), wait until the cluster is whole, then plan again; asdr does not rebuild a cluster that stood"),
            ));
        }
        b.warn(
            "R16",
            format!(
                "restore `{name}` stands in {}: {} instances tagged asdr:restore={name}; nothing to build",
                asdr_specs::place_text(&target.region),
                built.len()
            ),
        );
        return Ok(());
    }
    if !built.is_empty() {
        let ids: Vec<&str> = built.iter().map(|i| i.id.as_str()).collect();
        return Err(refuse(
            Diagnostic::new(
                restore.name_span,
                format!(
                    "restore `{name}` is partly built in {}: {} of {nodes} instances exist ({}), {marked} of them marked as a cluster that stood ({}), and no unfinished apply of it was found here",
                    asdr_specs::place_text(&target.region),
                    built.len(),
                    ids.join(", "),
                    crate::tags::RESTORE_COMPLETE
                ),
            )
            .rule("R16")
            .help("run `asdr apply --restore` from the directory whose journal (.asdr/journal) built them: a failed or interrupted build is resumed. If this cluster is the one serving after a failover, do NOT terminate it: its instances may hold the only live copy of the data; replace a lost node there by hand. Only a build that never served may be terminated, with its volumes, before planning again"),
        ));
    }
    let inst = &ctx.policy.cluster.instance;
    // IAM and key pairs are the account's own: in a backup account, the names the cluster
    // launches with must exist there too.
    if let (_, Some(account)) = asdr_specs::split_place(&target.region) {
        let named: Vec<String> = inst
            .iam_instance_profile
            .iter()
            .map(|p| format!("instance profile `{p}`"))
            .chain(inst.key_name.iter().map(|k| format!("key pair `{k}`")))
            .collect();
        if !named.is_empty() {
            b.warn(
                "R16",
                format!(
                    "restore `{name}` launches in backup account {account} with the cluster's {}: they must exist in that account (IAM roles and key pairs are per account), the profile's role able to read the copy's SMD store there",
                    named.join(" and ")
                ),
            );
        }
    }
    let spec = crate::drill::NewCluster {
        label: name,
        what: format!("restore `{name}`"),
        restore,
        tag: crate::tags::RESTORE,
        cluster_name: ctx.policy.cluster.name.clone(),
        ips: &target.private_ips,
        subnets: &target.subnets,
        security_groups: &target.security_groups,
        ami: &target.ami,
        instance_type: target
            .instance_type
            .as_deref()
            .unwrap_or(&inst.instance_type),
        region: Some(&target.region),
        span: restore.name_span,
    };
    crate::drill::new_cluster(ctx, &spec, b)?;
    // Once the cluster there is stable at full size, its instances say it stands.
    let launched: Vec<params::Ref> = b
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::ProvisionInstance)
        .map(|s| params::Ref::Learned {
            from_step: s.id.clone(),
        })
        .collect();
    let stable = format!("wait_cluster_stable:{name}");
    b.region = Some(target.region.clone());
    b.step(
        format!("mark_restore_complete:{name}"),
        None,
        vec![stable],
        Params::MarkRestoreComplete(params::MarkRestoreComplete {
            restore: name.clone(),
            instances: launched,
            tag: [(
                crate::tags::RESTORE_COMPLETE.to_string(),
                "true".to_string(),
            )]
            .into(),
        }),
    );
    b.region = None;
    b.warn(
        "R6",
        format!(
            "restore `{name}` builds the cluster in {} from one backup set: records deleted after that set was taken come back unless deletes are durable; writes since the set are not in it",
            asdr_specs::place_text(&target.region)
        ),
    );
    Ok(())
}
