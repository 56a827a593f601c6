//! Recycle Bin retention rules for EBS snapshots, read into the world (ListRules, then GetRule
//! for each rule's tags). Read only: asdr creates no rule (`asdr recycle-bin-rule` prints one).
//! moto has no Recycle Bin: tested with aws-smithy-mocks (`providers/tests/it/recycle_bin.rs`).

use std::collections::BTreeMap;

use asdr_planner::world::RecycleRule;
use aws_sdk_rbin::types::{LockState, ResourceType};

/// A client that asks once: the rules are something to report, not to wait for, and an endpoint
/// that has no Recycle Bin (an emulator) should not slow every observation down.
pub fn client(conf: &aws_config::SdkConfig) -> aws_sdk_rbin::Client {
    aws_sdk_rbin::Client::from_conf(
        aws_sdk_rbin::config::Builder::from(conf)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// The region's retention rules for EBS snapshots.
pub async fn rules(client: &aws_sdk_rbin::Client) -> Result<Vec<RecycleRule>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_rules()
            .resource_type(ResourceType::EbsSnapshot)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| crate::aws_error::one_line("Recycle Bin ListRules", &e, None))?;
        for summary in page.rules() {
            let Some(id) = summary.identifier() else {
                continue;
            };
            let rule = client
                .get_rule()
                .identifier(id)
                .send()
                .await
                .map_err(|e| crate::aws_error::one_line("Recycle Bin GetRule", &e, None))?;
            let tags = |t: &[aws_sdk_rbin::types::ResourceTag]| -> BTreeMap<String, String> {
                t.iter()
                    .map(|t| {
                        (
                            t.resource_tag_key().to_string(),
                            t.resource_tag_value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            };
            out.push(RecycleRule {
                id: id.to_string(),
                retention_days: rule
                    .retention_period()
                    .map_or(0, |p| p.retention_period_value().max(0) as u32),
                tags: tags(rule.resource_tags()),
                exclude_tags: tags(rule.exclude_resource_tags()),
                // Pending unlock: it can be removed once its delay has run.
                locked: rule.lock_state() == Some(&LockState::Locked),
            });
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}
