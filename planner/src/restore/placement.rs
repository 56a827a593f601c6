//! Where a restored node goes: a failed node is replaced only when it is failed (not merely cut
//! off), into its own subnet at its own address, which nothing else may hold (R4).

use super::*;

/// An unreachable node whose peers still count it as a member is not failed: something between
/// asdr and it is. Replacing it would put two nodes on one address.
pub(super) fn check_not_a_member(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    view: &NodeView<'_>,
) -> Result<(), PlanError> {
    let healthy = ctx.obs.healthy_names().len() as u32;
    let counted = ctx
        .obs
        .nodes
        .iter()
        .filter(|n| n.health == NodeHealth::Healthy)
        .filter_map(|n| n.observation.and_then(|o| o.cluster_size).map(|s| (n, s)))
        .find(|(_, size)| *size > healthy);
    if let Some((peer, size)) = counted {
        // The member counted may be one the policy does not name, not the node: say it first.
        let undeclared: Vec<String> = crate::drift::undeclared(ctx.policy, ctx.world)
            .into_iter()
            .filter(|d| d.active && !d.message.starts_with("node "))
            .map(|d| d.message)
            .collect();
        let help = if undeclared.is_empty() {
            "check the network path from asdr to the node (security groups, the info port); replace it only once its peers have dropped it".to_string()
        } else {
            format!(
                "the member counted may be one the policy does not name ({}): declare every node in cluster.nodes and plan again; otherwise check the network path from asdr to `{}` (security groups, the info port)",
                undeclared.join("; "),
                view.name
            )
        };
        return Err(refuse(
            Diagnostic::new(
                restore.name_span,
                format!(
                    "restore `{}`: node `{}` does not answer asdr, but `{}` reports a cluster of {size} nodes ({healthy} answer): its peers still count it as a member",
                    restore.name, view.name, peer.name
                ),
            )
            .rule("R14")
            .help(help),
        ));
    }
    Ok(())
}

/// R4: the replacement goes into the failed instance's subnet when it is known, else the
/// policy's subnet for the AZ; a private IP outside the chosen subnet's range is refused before
/// anything is stopped or terminated.
pub(super) fn replacement_subnet(
    ctx: &Ctx<'_, '_>,
    node: &Node,
    view: &NodeView<'_>,
    b: &mut Builder,
) -> Result<String, PlanError> {
    let policy_subnet = ctx
        .policy
        .cluster
        .instance
        .subnets
        .get(&node.availability_zone)
        .cloned()
        .unwrap_or_default();
    // A node moved to another zone goes into that zone's subnet, never the one it left.
    let old_subnet = view
        .instance
        .filter(|_| node.moved_from.is_none())
        .and_then(|i| i.subnet_id.clone());
    let chosen = old_subnet.clone().unwrap_or_else(|| policy_subnet.clone());
    if let Some(old) = &old_subnet
        && *old != policy_subnet
    {
        b.warn("R4", format!(
            "node {}'s instance was in subnet {old}, not the policy's {policy_subnet} for {}: the replacement goes into {old}, as the node it replaces (the IAM policy `asdr iam-policy` generates allows it only with the policy's security groups; naming {old} in `cluster.instance.subnets` says it plainly)",
            node.name, node.availability_zone
        ));
    }
    if let Some(subnet) = ctx.obs.world.subnets.iter().find(|s| s.id == chosen) {
        if !subnet.contains(node.private_ip) {
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "node `{}`'s address {} is not in subnet {chosen} ({}): a replacement there cannot keep it",
                        node.name, node.private_ip, subnet.cidr
                    ),
                )
                .rule("R4")
                .help("correct `cluster.instance.subnets` or the node's private_ip"),
            ));
        }
        let ip = node.private_ip.to_string();
        // An interface holding the address, in that subnet, attached to nothing or to another
        // instance than the node's old one: the launch would be refused (InvalidIPAddress.InUse)
        // after the old instance was terminated.
        let old = view.instance.map(|i| i.id.as_str());
        if let Some(eni) = ctx.obs.world.network_interfaces.iter().find(|n| {
            n.private_ips.contains(&ip)
                && n.subnet_id.as_deref().is_none_or(|s| s == chosen)
                && n.attached_to.as_deref().is_none_or(|i| Some(i) != old)
        }) {
            let held = match &eni.attached_to {
                Some(i) => format!("attached to instance {i}"),
                None => format!("{}, attached to nothing", eni.status),
            };
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "node `{}`'s address {ip} is held by network interface {} ({held}): a replacement cannot launch with it",
                        node.name, eni.id
                    ),
                )
                .rule("R4")
                .help(format!("delete or re-address {} (an interface kept when its instance was terminated keeps its address), then plan again", eni.id)),
            ));
        }
        if let Some(what) = subnet.reserved(node.private_ip) {
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "node `{}`'s address {} is reserved by AWS in subnet {chosen} ({}: {what}): no instance can have it",
                        node.name, node.private_ip, subnet.cidr
                    ),
                )
                .rule("R4")
                .help("give the node an address AWS does not reserve (not the first four or the last of the range)"),
            ));
        }
        if subnet.availability_zone != node.availability_zone {
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "subnet {chosen} is in {}, but node `{}` is in {}",
                        subnet.availability_zone, node.name, node.availability_zone
                    ),
                )
                .rule("R4"),
            ));
        }
    }
    Ok(chosen)
}
