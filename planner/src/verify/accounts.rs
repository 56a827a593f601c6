//! R16 for copies into a backup account: what a copy step shares, and with whom.

use super::*;

/// A snapshot is shared only with the backup account of the copy the sharing step acts in: a
/// plan that would share the cluster's data with any other account (a forged or edited plan)
/// is refused, as is a share from a step at home.
pub(super) fn shares_only_with_backup_accounts(policy: &Policy, plan: &Plan) -> Vec<Violation> {
    let mut out = Vec::new();
    for s in &plan.steps {
        let Params::CopySnapshot(p) = &s.params else {
            continue;
        };
        let copy = s
            .region
            .as_deref()
            .and_then(|r| policy.backup.copies.iter().find(|c| c.region == r));
        let account = copy.and_then(|c| c.account.as_ref()).map(|a| a.id.as_str());
        let role = copy
            .and_then(|c| c.account.as_ref())
            .map(|a| a.role_arn.as_str());
        // A key granted to anyone but the backup account's role would hand them the data.
        if let Some(g) = p.grant_to.as_deref()
            && Some(g) != role
        {
            out.push(Violation {
                rule: "R16",
                step: Some(s.id.clone()),
                message: format!(
                    "grants the source's KMS key to {g}, which is not the backup account's role_arn"
                ),
            });
        }
        if p.share_with.as_deref() != account {
            out.push(Violation {
                rule: "R16",
                step: Some(s.id.clone()),
                message: match (&p.share_with, account) {
                    (Some(x), _) => format!(
                        "shares its source snapshot with account {x}, which is not the backup account of {} (backup.copies[].account)",
                        s.region.as_deref().unwrap_or("the cluster's region")
                    ),
                    (None, Some(a)) => format!(
                        "copies into backup account {a} without sharing the source with it"
                    ),
                    (None, None) => unreachable!("equal"),
                },
            });
        }
    }
    out
}
