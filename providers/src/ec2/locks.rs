//! EBS snapshot locks (R20): DescribeLockedSnapshots read into the world, and `lock_snapshots`
//! carried out with LockSnapshot. moto implements neither: the requests and EC2's error codes are
//! tested with aws-smithy-mocks (`providers/tests/it/ec2_locks.rs`).

use std::collections::BTreeMap;

use asdr_planner::params::{self, Params};
use asdr_planner::ports::{Progress, Resources, StepError, StepInput};
use asdr_planner::tags;
use asdr_planner::world::{Snapshot, SnapshotLock};
use asdr_specs::{LockMode, Policy};
use aws_sdk_ec2::types::{LockMode as AwsLockMode, LockState, LockedSnapshotsInfo};
use time::OffsetDateTime;

use super::Ec2Provider;

/// Snapshot ids asked for in one DescribeLockedSnapshots.
const IDS_PER_CALL: usize = 200;
/// EBS locks for at least a day: a lock ending sooner is asked for as one day (never shorter
/// than the policy says).
const MIN_LOCK: time::Duration = time::Duration::days(1);

/// Whether a region's locks are asked for: the policy locks sets there, or one of the cluster's
/// snapshots there carries `asdr:lock` (asdr locked it once: a lock removed from the policy
/// still keeps its sets). Otherwise a lock made by hand is found by EC2 itself, which refuses
/// the delete (`SnapshotLocked`).
pub(crate) fn wanted(policy: &Policy, region: Option<&str>, snapshots: &[Snapshot]) -> bool {
    policy.lock_in(region).is_some() || snapshots.iter().any(|s| s.tags.contains_key(tags::LOCK))
}

fn time_of(t: Option<&aws_smithy_types::DateTime>) -> Option<OffsetDateTime> {
    t.and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok())
}

impl Ec2Provider {
    /// Every answer of DescribeLockedSnapshots for `ids`, in chunks and pages; `once`: without
    /// retries (a question whose answer only adds a guard).
    async fn locked_infos(
        &self,
        ids: &[String],
        once: bool,
    ) -> Result<Vec<LockedSnapshotsInfo>, StepError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let call = self
                    .client
                    .describe_locked_snapshots()
                    .set_snapshot_ids(Some(chunk.to_vec()))
                    .set_next_token(token.clone());
                let page = if once {
                    call.customize()
                        .config_override(
                            aws_sdk_ec2::config::Builder::new()
                                .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled()),
                        )
                        .send()
                        .await
                } else {
                    call.send().await
                }
                .map_err(|e| self.classify("DescribeLockedSnapshots", e))?;
                out.extend(page.snapshots().iter().cloned());
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The locks on `ids` that hold (an expired lock is no lock).
    pub async fn locks_of(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, SnapshotLock>, StepError> {
        let mut out = BTreeMap::new();
        for s in self.locked_infos(ids, false).await? {
            let mode = match s.lock_state() {
                Some(LockState::Governance) => LockMode::Governance,
                Some(LockState::Compliance | LockState::ComplianceCooloff) => LockMode::Compliance,
                // Expired, or a state this SDK does not know: not taken as a lock.
                _ => continue,
            };
            let (Some(id), Some(expires)) = (s.snapshot_id(), time_of(s.lock_expires_on())) else {
                continue;
            };
            out.insert(
                id.to_string(),
                SnapshotLock {
                    mode,
                    expires,
                    cool_off_until: time_of(s.cool_off_period_expires_on()),
                },
            );
        }
        Ok(out)
    }

    /// A snapshot of `set` (this cluster's, in this provider's region) whose lock holds, asked
    /// once per set and process (DescribeSnapshots by the set's tag, then DescribeLockedSnapshots,
    /// without retries). Where locks cannot be read the answer is none, as before this check:
    /// EC2 still refuses each locked snapshot's delete.
    pub(crate) async fn locked_member(&self, set: &str) -> Option<String> {
        let mut known = self.set_locks.lock().await;
        if let Some(answer) = known.get(set) {
            return answer.clone();
        }
        let answer = async {
            let of_set = self
                .snapshots(vec![
                    aws_sdk_ec2::types::Filter::builder()
                        .name(format!("tag:{}", tags::SET))
                        .values(set)
                        .build(),
                    aws_sdk_ec2::types::Filter::builder()
                        .name(format!("tag:{}", tags::CLUSTER))
                        .values(&self.cluster)
                        .build(),
                ])
                .await
                .ok()?;
            let ids: Vec<String> = of_set.into_iter().map(|s| s.id).collect();
            if ids.is_empty() {
                return None;
            }
            let now = OffsetDateTime::now_utc();
            // In chunks and pages as `locks_of` reads them: a big set is asked whole.
            self.locked_infos(&ids, true)
                .await
                .ok()?
                .iter()
                .find(|l| {
                    matches!(
                        l.lock_state(),
                        Some(
                            LockState::Governance
                                | LockState::Compliance
                                | LockState::ComplianceCooloff
                        )
                    ) && time_of(l.lock_expires_on()).is_none_or(|e| e > now)
                })
                .and_then(|l| l.snapshot_id().map(str::to_string))
        }
        .await;
        known.insert(set.to_string(), answer.clone());
        answer
    }

    /// Fills in the locks of `snapshots` (of one region).
    pub(crate) async fn fill_locks(&self, snapshots: &mut [Snapshot]) -> Result<(), StepError> {
        let ids: Vec<String> = snapshots.iter().map(|s| s.id.clone()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let locks = self.locks_of(&ids).await?;
        for s in snapshots {
            s.lock = locks.get(&s.id).copied();
        }
        Ok(())
    }

    pub(crate) async fn observe_locks(
        &self,
        input: &StepInput<'_>,
        p: &params::LockSnapshots,
    ) -> Result<Option<Resources>, StepError> {
        let Some(ids) = resolved(input, p) else {
            return Ok(None);
        };
        let locks = self.locks_of(&ids).await?;
        let now = OffsetDateTime::now_utc();
        for id in &ids {
            let done = asdr_planner::locks::wanted(locks.get(id).copied(), p, now)
                .map_err(|m| StepError::permanent("InvalidParameterValue", m))?
                .is_none();
            if !done {
                return Ok(None);
            }
        }
        Ok(Some(Resources::new()))
    }

    /// LockSnapshot on every snapshot of the step not locked as it says, after checking each is
    /// this cluster's (R13). A lock already as long and as strong is left alone; none is ever
    /// shortened or weakened.
    pub(crate) async fn act_locks(&self, input: &StepInput<'_>) -> Result<Progress, StepError> {
        let Params::LockSnapshots(p) = &input.step.params else {
            return Err(StepError::permanent(
                "NotThisFamily",
                "not a lock_snapshots step",
            ));
        };
        let ids = resolved(input, p).ok_or_else(|| {
            StepError::permanent(
                "UnresolvedReference",
                format!(
                    "lock_snapshots:{}: a snapshot of the set was not learned from its wait",
                    p.set
                ),
            )
        })?;
        let found = self
            .snapshots(vec![
                aws_sdk_ec2::types::Filter::builder()
                    .name("snapshot-id")
                    .set_values(Some(ids.clone()))
                    .build(),
            ])
            .await?;
        for id in &ids {
            let s = found.iter().find(|s| &s.id == id).ok_or_else(|| {
                StepError::permanent(
                    "InvalidSnapshot.NotFound",
                    format!("snapshot {id} of set {} does not exist", p.set),
                )
            })?;
            if s.tags.get(tags::CLUSTER) != Some(&self.cluster)
                || !tags::of_id(&s.tags, p.cluster_id.as_deref())
            {
                return Err(StepError::permanent(
                    "R13",
                    format!("[R13] snapshot {id} is not this cluster's: asdr does not lock it"),
                ));
            }
        }
        let locks = self.locks_of(&ids).await?;
        let now = OffsetDateTime::now_utc();
        for id in &ids {
            let existing = locks.get(id).copied().filter(|l| l.holds(now));
            let Some(want) = asdr_planner::locks::wanted(existing, p, now)
                .map_err(|m| StepError::permanent("InvalidParameterValue", m))?
            else {
                // Locked already (by an earlier try whose tag was not written, say): the tag
                // that makes later observations read this region's locks is written anyway.
                let untagged = found
                    .iter()
                    .any(|s| &s.id == id && !s.tags.contains_key(tags::LOCK));
                if let (true, Some(l)) = (untagged, existing) {
                    self.tag(id, tags::LOCK, &describe(&l)).await?;
                }
                continue;
            };
            let mut call = self
                .client
                .lock_snapshot()
                .snapshot_id(id)
                .lock_mode(match want.mode {
                    LockMode::Governance => AwsLockMode::Governance,
                    LockMode::Compliance => AwsLockMode::Compliance,
                });
            // A lock of about a day is asked for in days: an expiration date a little under a
            // day ahead by the time EC2 reads it could be refused.
            call = if want.expires - now < MIN_LOCK + time::Duration::minutes(5) {
                call.lock_duration(1)
            } else {
                call.expiration_date(aws_smithy_types::DateTime::from_secs(
                    want.expires.unix_timestamp(),
                ))
            };
            // A cool-off is given when the snapshot becomes compliance now, and, for a compliance
            // lock still in its cool-off, what is left of it (omitted, EC2 would end it at once);
            // never on a compliance lock past its cool-off (EC2 refuses one there).
            let cool_off = match existing {
                Some(l) if l.mode == LockMode::Compliance => l
                    .cool_off_until
                    .filter(|c| *c > now)
                    .map(|c| (((c - now).whole_minutes() + 59) / 60).clamp(1, 72) as i32),
                _ if want.mode == LockMode::Compliance => p.cool_off_hours.map(|h| h as i32),
                _ => None,
            };
            if let Some(h) = cool_off {
                call = call.cool_off_period(h);
            }
            call.send().await.map_err(|e| {
                use aws_sdk_ec2::error::ProvideErrorMetadata;
                match e.code() {
                    // EC2 refuses the lock in the snapshot's present state: retrying at once is
                    // not known to change that, and the set waits unmarked either way.
                    Some("IncorrectState") => StepError::permanent(
                        "IncorrectState",
                        format!(
                            "LockSnapshot {id}: EC2 refused the lock in the snapshot's present state ({}); nothing was deleted, and the set is not marked until it is locked",
                            e.message().unwrap_or("IncorrectState")
                        ),
                    ),
                    _ => self.classify("LockSnapshot", e),
                }
            })?;
            self.tag(id, tags::LOCK, &describe(&want)).await?;
        }
        Progress::finished()
    }

    async fn tag(&self, id: &str, key: &str, value: &str) -> Result<(), StepError> {
        self.client
            .create_tags()
            .resources(id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.classify("CreateTags", e))?;
        Ok(())
    }
}

/// The `asdr:lock` tag's value: the lock asked for.
fn describe(l: &SnapshotLock) -> String {
    format!(
        "{} until {}",
        l.mode,
        asdr_planner::manifest::utc(l.expires)
    )
}

/// The step's snapshot ids, once every one is known.
fn resolved(input: &StepInput<'_>, p: &params::LockSnapshots) -> Option<Vec<String>> {
    p.snapshots
        .iter()
        .map(|r| input.resolve(r, |l| l.snapshot_id.as_ref()))
        .collect()
}
