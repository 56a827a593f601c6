//! `asdr recycle-bin-rule`: prints a Recycle Bin retention rule for the cluster's snapshots, for
//! the operator to create (`aws rbin create-rule --cli-input-json file://rule.json`) or to add
//! to a CloudFormation template. asdr never creates or changes a rule itself: Recycle Bin rules
//! act on the whole account's snapshots in a region, which is not asdr's to manage silently.

use serde_json::{Value, json};

use crate::args::{Global, RecycleBinArgs, RecycleBinFormat};
use crate::commands::{json as to_json, print};
use crate::error::CommandError;
use crate::inputs;

/// Recycle Bin keeps deleted snapshots for 1 to 365 days; a locked rule's unlock delay is 7 to 30.
const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=365;
const UNLOCK_DELAY_DAYS: std::ops::RangeInclusive<u32> = 7..=30;

pub fn cmd_recycle_bin_rule(g: &Global, a: &RecycleBinArgs) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    let cluster = &policy.cluster.name;
    let region = a
        .copy_region
        .clone()
        .unwrap_or_else(|| policy.cluster.region.clone());
    let copies: Vec<&str> = policy
        .backup
        .copies
        .iter()
        .map(|c| c.region.as_str())
        .collect();
    if a.copy_region.is_some() && !copies.contains(&region.as_str()) {
        return Err(CommandError::User(format!(
            "--copy-region {region}: the policy copies sets to {} only",
            if copies.is_empty() {
                "no region".to_string()
            } else {
                copies.join(", ")
            }
        )));
    }
    if !RETENTION_DAYS.contains(&a.days) {
        return Err(CommandError::User(format!(
            "--days {}: Recycle Bin keeps deleted snapshots for 1 to 365 days",
            a.days
        )));
    }
    if let Some(d) = a.lock_days
        && !UNLOCK_DELAY_DAYS.contains(&d)
    {
        return Err(CommandError::User(format!(
            "--lock-days {d}: a locked rule's unlock delay is 7 to 30 days"
        )));
    }
    let rule = rule(cluster, a.days, a.lock_days);
    let out = match a.format {
        RecycleBinFormat::Json => rule,
        RecycleBinFormat::Cloudformation => cloudformation(cluster, &rule),
    };
    print(&to_json(&out)?)?;
    if !g.quiet {
        eprintln!("{}", note(cluster, &region, a));
    }
    Ok(0)
}

/// The CreateRule request. Tag-level (the cluster's `asdr:cluster` tag) unless locked: EBS locks
/// only Region-level rules, which keep every deleted snapshot in the region.
pub fn rule(cluster: &str, days: u32, lock_days: Option<u32>) -> Value {
    let mut rule = json!({
        "ResourceType": "EBS_SNAPSHOT",
        "Description": format!("asdr: deleted snapshots of cluster {cluster} kept {days} days"),
        "RetentionPeriod": {"RetentionPeriodValue": days, "RetentionPeriodUnit": "DAYS"},
        "Tags": [{"Key": "asdr:cluster", "Value": cluster}],
    });
    match lock_days {
        None => {
            rule["ResourceTags"] =
                json!([{"ResourceTagKey": "asdr:cluster", "ResourceTagValue": cluster}]);
        }
        Some(d) => {
            rule["Description"] = json!(format!(
                "asdr ({cluster}): every deleted snapshot in the region kept {days} days; locked"
            ));
            rule["LockConfiguration"] =
                json!({"UnlockDelay": {"UnlockDelayValue": d, "UnlockDelayUnit": "DAYS"}});
        }
    }
    rule
}

/// The same rule as an `AWS::Rbin::Rule` resource.
fn cloudformation(cluster: &str, rule: &Value) -> Value {
    let logical = format!(
        "AsdrRecycleBin{}",
        cluster
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<String>()
    );
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {logical: {"Type": "AWS::Rbin::Rule", "Properties": rule}}
    })
}

fn note(cluster: &str, region: &str, a: &RecycleBinArgs) -> String {
    let create = match a.format {
        RecycleBinFormat::Json => format!(
            "create it with: aws rbin create-rule --region {region} --cli-input-json file://rule.json"
        ),
        RecycleBinFormat::Cloudformation => {
            format!("deploy the template in {region} (rules act only in their own region)")
        }
    };
    match a.lock_days {
        None => format!(
            "note: a tag-level rule: snapshots tagged asdr:cluster={cluster} are kept {} days after any delete (asdr's retention included, so they are paid for meanwhile); EBS cannot lock a tag-level rule, so whoever may delete rules can remove it (--lock-days makes a locked Region-level rule); {create}",
            a.days
        ),
        Some(d) => format!(
            "note: a locked Region-level rule: every snapshot deleted in {region}, not only this cluster's, is kept {} days; unlocking it takes {d} days; {create}",
            a.days
        ),
    }
}
