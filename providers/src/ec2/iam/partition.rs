//! A policy document in the partition of the cluster's region.

use serde_json::Value;

/// The AWS partition `region` is in: `aws-cn` for China, `aws-us-gov` for GovCloud, else `aws`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The document in the partition of `region`: its ARNs (`arn:aws-cn:…`) and, in China, its
/// service endpoints (`ec2.cn-north-1.amazonaws.com.cn`). A region's resources live only in its
/// partition, and copies never leave it.
pub fn in_partition(policy: &mut Value, region: &str) {
    let p = partition(region);
    if p == "aws" {
        return;
    }
    fn walk(v: &mut Value, p: &str) {
        match v {
            Value::String(s) => {
                if let Some(rest) = s.strip_prefix("arn:aws:") {
                    *s = format!("arn:{p}:{rest}");
                }
                if p == "aws-cn" && s.ends_with(".amazonaws.com") && s.starts_with("ec2.cn-") {
                    s.push_str(".cn");
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, p)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(x, p)),
            _ => {}
        }
    }
    walk(policy, p);
}
