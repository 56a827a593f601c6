//! The `asdr:*` tags: they are asdr's state. Resources are found again by them, and asdr only
//! deletes, detaches or terminates what carries `asdr:cluster=<name>` or what the policy names (R13).

pub const CLUSTER: &str = "asdr:cluster";
/// The cluster's id (see `identity`): on its instances and on everything asdr creates for it. A
/// resource carrying another id is another cluster's, whatever its `asdr:cluster` says.
pub const CLUSTER_ID: &str = "asdr:cluster-id";
pub const SET: &str = "asdr:set";
pub const NODE: &str = "asdr:node";
pub const DEVICE: &str = "asdr:device";
pub const STEP: &str = "asdr:step";
/// The plan that created a resource: with `asdr:step`, what makes a step's own result findable
/// without mistaking the same step of an older plan for it.
pub const PLAN: &str = "asdr:plan";
/// On every snapshot of a set once `mark_set_complete` ran.
pub const COMPLETE: &str = "asdr:complete";
/// On every snapshot of a set, written with the mark: how many node devices the set held when it
/// was marked complete. A set is whole by its own membership, never by today's policy: adding a
/// node or a device later does not make old sets incomplete (and so expired).
pub const MEMBERS: &str = "asdr:members";
/// On every snapshot of a set, written with the mark: the SHA-256 of the set's manifest. A set so
/// marked is complete only while that manifest is in its store, whole, and names it.
pub const MANIFEST: &str = "asdr:manifest";
/// On a volume asdr detached for good (a restore swapped it for another): it is no longer the
/// node's data, and `source: current-volumes` never reattaches it. The value is the plan id.
pub const SUPERSEDED: &str = "asdr:superseded";
/// On a copy of a snapshot in another region: the snapshot it was copied from, and its region.
/// A copy is found again by them (CopySnapshot takes no client token).
pub const SOURCE_SNAPSHOT: &str = "asdr:source-snapshot";
pub const SOURCE_REGION: &str = "asdr:source-region";
/// On the resources of a restore into another region: the restore that made them.
pub const RESTORE: &str = "asdr:restore";
/// On a snapshot asdr locked: the lock it asked for (`governance until <time>`). Only a reason
/// to ask EC2 for locks; a lock is read from DescribeLockedSnapshots, never from this tag.
pub const LOCK: &str = "asdr:lock";
/// On the instances of a restore into another region once its cluster stood (every node started,
/// stable at full size): the plan that finished it. Instances without it are a partial build.
pub const RESTORE_COMPLETE: &str = "asdr:restore-complete";

/// Whether `tags` may be of the cluster whose id is `id`: they carry that id, or none (made
/// before ids); `id` none (a plan file made before ids): any.
pub fn of_id(tags: &crate::world::Tags, id: Option<&str>) -> bool {
    id.is_none_or(|id| tags.get(CLUSTER_ID).is_none_or(|t| t == id))
}

/// Whether a snapshot is a copy made from another region (it carries the source tags a copy
/// gets). In the cluster's own region such a snapshot is never the cluster's: its backups there
/// are snapshots of its volumes, and a copy into that region was made by a same-named cluster
/// elsewhere (a cluster restored into another region and backed up with copies home, say).
pub fn is_copy(tags: &crate::world::Tags) -> bool {
    tags.contains_key(SOURCE_SNAPSHOT) || tags.contains_key(SOURCE_REGION)
}

/// R13, checked by every provider right before it deletes: a snapshot is deleted only when
/// tagged for this cluster, and only as what it is in its region: in the cluster's own region
/// never a copy (another cluster's), in a copy region only a copy (`in_copy_region`). The
/// message says why not.
pub fn may_delete_snapshot(
    id: &str,
    tags: &crate::world::Tags,
    cluster: &str,
    cluster_id: Option<&str>,
    in_copy_region: bool,
) -> Result<(), String> {
    if let Some(other) = tags.get(CLUSTER_ID)
        && Some(other.as_str()) != cluster_id
    {
        Err(format!(
            "[R13] snapshot {id} carries {CLUSTER_ID}={other}, {}: another cluster named {cluster}'s, asdr does not delete it",
            match cluster_id {
                Some(ours) => format!("this cluster is {ours}"),
                None => "and the plan names no cluster id".to_string(),
            }
        ))
    } else if tags.get(CLUSTER).map(String::as_str) != Some(cluster) {
        Err(format!(
            "[R13] snapshot {id} is not tagged {CLUSTER}={cluster}: asdr does not delete it"
        ))
    } else if !in_copy_region && is_copy(tags) {
        Err(format!(
            "[R13] snapshot {id} is a copy made into the cluster's region from another (it carries {SOURCE_REGION}): another cluster's, asdr does not delete it"
        ))
    } else if in_copy_region && !tags.contains_key(SOURCE_SNAPSHOT) {
        Err(format!(
            "[R13] snapshot {id} in a copy region is not a copy (no {SOURCE_SNAPSHOT}): asdr does not delete it"
        ))
    } else {
        Ok(())
    }
}

/// R7 and R13, checked by every provider right before it deletes: a volume is deleted only when it
/// is a drill's, of this cluster (restores never delete volumes).
pub fn may_delete_volume(
    id: &str,
    tags: &crate::world::Tags,
    cluster: &str,
    cluster_id: Option<&str>,
) -> Result<(), String> {
    if tags.contains_key(crate::drill::DRILL)
        && tags.get(CLUSTER).map(String::as_str) == Some(cluster)
        && tags
            .get(CLUSTER_ID)
            .is_none_or(|other| Some(other.as_str()) == cluster_id)
    {
        Ok(())
    } else {
        Err(format!(
            "[R13] volume {id} is not a drill volume of {cluster}: asdr does not delete it"
        ))
    }
}
