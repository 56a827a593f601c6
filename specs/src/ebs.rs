//! What CreateVolume accepts per EBS volume type (EC2 API Reference, CreateVolume: `Iops` "is
//! supported for io1, io2, and gp3 volumes only" and required for io1 and io2; `Throughput` "is
//! valid only for gp3 volumes"; the ranges below are the reference's). DescribeVolumes reports
//! `Iops` for gp2 too (its burst baseline), which CreateVolume refuses: carried values are
//! filtered through these rules.

/// The IOPS CreateVolume accepts for `volume_type`; None when it takes none.
pub fn iops_range(volume_type: &str) -> Option<(u32, u32)> {
    match volume_type {
        "gp3" => Some((3_000, 80_000)),
        "io1" => Some((100, 64_000)),
        "io2" => Some((100, 256_000)),
        _ => None,
    }
}

/// The throughput (MiB/s) CreateVolume accepts for `volume_type`; None when it takes none.
pub fn throughput_range(volume_type: &str) -> Option<(u32, u32)> {
    match volume_type {
        "gp3" => Some((125, 2_000)),
        _ => None,
    }
}

/// io1 and io2 volumes cannot be created without `Iops`.
pub fn needs_iops(volume_type: &str) -> bool {
    matches!(volume_type, "io1" | "io2")
}

/// What is wrong with asking `volume_type` for `iops` and `throughput`, if anything.
pub fn performance_problem(
    volume_type: &str,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> Option<String> {
    if let Some(i) = iops {
        match iops_range(volume_type) {
            None => {
                return Some(format!(
                    "{volume_type} volumes take no `iops` (only gp3, io1 and io2 do)"
                ));
            }
            Some((lo, hi)) if !(lo..=hi).contains(&i) => {
                return Some(format!("iops {i} is outside {volume_type}'s {lo}–{hi}"));
            }
            _ => {}
        }
    } else if needs_iops(volume_type) {
        return Some(format!("{volume_type} volumes need `iops`"));
    }
    if let Some(t) = throughput {
        match throughput_range(volume_type) {
            None => {
                return Some(format!(
                    "{volume_type} volumes take no `throughput` (only gp3 does)"
                ));
            }
            Some((lo, hi)) if !(lo..=hi).contains(&t) => {
                return Some(format!(
                    "throughput {t} MiB/s is outside {volume_type}'s {lo}–{hi}"
                ));
            }
            _ => {}
        }
    }
    None
}

/// The iops and throughput of a new `volume_type` volume: the policy's where it says, else the
/// old volume's where it was of the same type and the type takes them (a gp2 volume's reported
/// iops is its burst baseline, not a setting; an io2 volume's iops mean nothing to a gp3 one).
pub fn carried_performance(
    volume_type: &str,
    iops: Option<u32>,
    throughput: Option<u32>,
    old: Option<(&str, Option<u32>, Option<u32>)>,
) -> (Option<u32>, Option<u32>) {
    let same = old.filter(|(t, _, _)| *t == volume_type);
    let iops = iops.or_else(|| {
        same.and_then(|(_, i, _)| i)
            .filter(|_| iops_range(volume_type).is_some())
    });
    let throughput = throughput.or_else(|| {
        same.and_then(|(_, _, t)| t)
            .filter(|_| throughput_range(volume_type).is_some())
    });
    (iops, throughput)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gp2_reported_iops_are_never_carried_and_io2_iops_do_not_follow_a_change_to_gp3() {
        assert_eq!(
            carried_performance("gp2", None, None, Some(("gp2", Some(1500), None))),
            (None, None)
        );
        assert_eq!(
            carried_performance("gp3", None, None, Some(("io2", Some(64_000), None))),
            (None, None)
        );
        assert_eq!(
            carried_performance("gp3", None, None, Some(("gp3", Some(16_000), Some(1000)))),
            (Some(16_000), Some(1000))
        );
        assert_eq!(
            carried_performance(
                "gp3",
                Some(4000),
                None,
                Some(("gp3", Some(16_000), Some(500)))
            ),
            (Some(4000), Some(500))
        );
    }

    #[test]
    fn create_volume_refuses_what_each_type_does_not_take() {
        assert!(performance_problem("gp2", Some(3000), None).is_some());
        assert!(performance_problem("io2", None, None).is_some());
        assert!(performance_problem("io1", Some(3000), Some(250)).is_some());
        assert!(performance_problem("gp3", Some(2000), None).is_some());
        assert!(performance_problem("gp3", Some(3000), Some(2001)).is_some());
        assert_eq!(performance_problem("gp3", Some(3000), Some(125)), None);
        assert_eq!(performance_problem("st1", None, None), None);
    }
}
