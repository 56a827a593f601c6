//! Recycle Bin rules read into the world. moto has no Recycle Bin, so ListRules and GetRule are
//! aws-smithy-mocks rules answering as the service does; what the planner makes of the rules is
//! tested in the planner's and the binary's tests.

use aws_sdk_rbin::operation::get_rule::GetRuleOutput;
use aws_sdk_rbin::operation::list_rules::{ListRulesError, ListRulesOutput};
use aws_sdk_rbin::types::{
    LockState, ResourceTag, ResourceType, RetentionPeriod, RetentionPeriodUnit, RuleSummary,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

fn period(days: i32) -> RetentionPeriod {
    RetentionPeriod::builder()
        .retention_period_value(days)
        .retention_period_unit(RetentionPeriodUnit::Days)
        .build()
        .unwrap()
}

#[tokio::test]
async fn rules_are_read_with_their_tags_lock_and_retention_across_pages() {
    let list = mock!(aws_sdk_rbin::Client::list_rules)
        .match_requests(|r| r.resource_type() == Some(&ResourceType::EbsSnapshot))
        .sequence()
        .output(|| {
            ListRulesOutput::builder()
                .rules(RuleSummary::builder().identifier("tagged").build())
                .next_token("page-2")
                .build()
        })
        .output(|| {
            ListRulesOutput::builder()
                .rules(RuleSummary::builder().identifier("region").build())
                .build()
        })
        .build();
    let tagged = mock!(aws_sdk_rbin::Client::get_rule)
        .match_requests(|r| r.identifier() == Some("tagged"))
        .then_output(|| {
            GetRuleOutput::builder()
                .identifier("tagged")
                .retention_period(period(14))
                .resource_tags(
                    ResourceTag::builder()
                        .resource_tag_key("asdr:cluster")
                        .resource_tag_value("prod-east")
                        .build()
                        .unwrap(),
                )
                .lock_state(LockState::Unlocked)
                .build()
        });
    let region = mock!(aws_sdk_rbin::Client::get_rule)
        .match_requests(|r| r.identifier() == Some("region"))
        .then_output(|| {
            GetRuleOutput::builder()
                .identifier("region")
                .retention_period(period(7))
                .exclude_resource_tags(
                    ResourceTag::builder()
                        .resource_tag_key("scratch")
                        .build()
                        .unwrap(),
                )
                .lock_state(LockState::Locked)
                .build()
        });
    let client = mock_client!(aws_sdk_rbin, RuleMode::MatchAny, &[&list, &tagged, &region]);
    let rules = asdr_providers::recycle_bin::rules(&client).await.unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].id, "tagged");
    assert_eq!(rules[0].retention_days, 14);
    assert_eq!(
        rules[0].tags.get("asdr:cluster").map(String::as_str),
        Some("prod-east")
    );
    assert!(!rules[0].locked);
    assert_eq!(rules[1].id, "region");
    assert!(rules[1].tags.is_empty(), "Region-level");
    assert!(rules[1].exclude_tags.contains_key("scratch"));
    assert!(rules[1].locked);
}

#[tokio::test]
async fn a_region_without_access_is_an_error_not_an_empty_list() {
    let list = mock!(aws_sdk_rbin::Client::list_rules).then_error(|| {
        ListRulesError::generic(
            aws_sdk_rbin::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform: rbin:ListRules")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_rbin, RuleMode::MatchAny, &[&list]);
    let e = asdr_providers::recycle_bin::rules(&client)
        .await
        .unwrap_err();
    assert!(e.contains("rbin:ListRules"), "{e}");
}
