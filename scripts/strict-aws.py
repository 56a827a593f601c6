#!/usr/bin/env python3
"""moto as strict as AWS: the AWS API emulator the tests run against, behind a layer that refuses
what AWS refuses and moto accepts. Every rule cites the API reference it comes from; docs/aws.md
lists them. Usage (the tests start it; see providers/src/testkit_moto.rs):

    .venv/bin/python scripts/strict-aws.py -H 127.0.0.1 -p PORT

Test hooks, by plain HTTP to the same port (never on AWS):
    POST /_strict/terminate-launches?count=N&code=C   the next N instances launched are
                                                        terminated at once, StateReason code C
    POST /_strict/vanish-volumes?count=N               the next N volumes created vanish after
                                                        CreateVolume answered (as EBS drops a
                                                        volume whose KMS key it may not use)
    GET  /_strict/refused                               every request refused so far, one per line
    GET  /_strict/calls                                 every EC2 call so far with what AWS would
                                                        authorize for it (JSON lines: the action,
                                                        each resource's type, ARN and tags, the
                                                        request's tags), for the IAM evaluation
    POST /_strict/calls-clear                           forgets them
    POST /_strict/refuse?action=A&code=C&count=N       the next N EC2 calls of action A answer
                                                        error C (a quota or capacity refusal
                                                        moto never gives: snapshots and copies
                                                        complete at once there, capacity is
                                                        endless)
    POST /_strict/stale-tags?key=K&count=N[&filter=F]  the next N DescribeSnapshots answers (to
                                                        requests filtering on F, if given) leave
                                                        out tag K (EC2 is eventually consistent:
                                                        tags just written show after a delay)
    POST /_strict/fail-copies?count=N&message=M        the next N snapshot copies fail after
                                                        CopySnapshot answered: DescribeSnapshots
                                                        shows them in state error with
                                                        StateMessage M (as EBS does with a KMS key
                                                        the copy may not use)
    POST /_strict/lose-s3-puts?count=N                 the next N conditional S3 PutObjects are
                                                        applied, and answered 500 InternalError
                                                        (a response lost on the way back: the SDK
                                                        sends the put again)
    POST /_strict/s3-conflicts?count=N                 the next N conditional S3 writes answer
                                                        409 ConditionalRequestConflict

Beyond refusals, one thing moto does not do: CopySnapshot of a snapshot another account shared
with the caller (moto looks for the source in the caller's own account only). It is done here,
and refused, as EC2 does, when the source is not shared with the caller.
"""

import argparse
import io
import re
import threading
import urllib.parse
import uuid

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

ACCOUNT = "123456789012"  # moto's default account

# EC2 API Reference, CreateVolume: "Iops ... is supported for io1, io2, and gp3 volumes only"
# (required for io1 and io2); gp3 3,000-80,000, io1 100-64,000, io2 100-256,000 IOPS.
IOPS = {"gp3": (3000, 80000), "io1": (100, 64000), "io2": (100, 256000)}
# CreateVolume: "Throughput ... This parameter is valid only for gp3 volumes. Valid Range:
# Minimum value of 125. Maximum value of 2,000."
THROUGHPUT = {"gp3": (125, 2000)}
# Amazon EC2 User Guide, "Device names on Linux instances": EBS volumes attach at /dev/sd[f-p]
# (recommended) or /dev/xvd[b-z]; /dev/sda1 and /dev/xvda are root names.
DEVICE = re.compile(r"^/dev/(sd[b-z]|xvd[b-z][a-z]?|sd[b-z][1-9])$")
# EC2 API Reference, CreateTags: "ResourceId.N ... Constraints: Up to 1000 resource IDs."
CREATE_TAGS_MAX = 1000
# EC2 API Reference, Filter: filter values per filter are limited; more than 200 answers
# FilterLimitExceeded ("The request uses too many filters or too many filter values").
FILTER_VALUES_MAX = 200


class Refusal(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def region_of(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = re.search(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/", auth)
    return m.group(1) if m else "us-east-1"


def listed(params, prefix):
    """The values of an EC2 query list parameter: Prefix.1, Prefix.2, ..."""
    out = []
    pat = re.compile(r"^" + re.escape(prefix) + r"\.(\d+)$")
    for k, v in params.items():
        if pat.match(k):
            out.append(v)
    return out


def ec2_rules(action, p):
    """The request refused as AWS refuses it, or None."""
    # Filter value limits, on every Describe call.
    counts = {}
    for k in p:
        m = re.match(r"^Filter\.(\d+)\.Value\.(\d+)$", k)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    for n, c in counts.items():
        if c > FILTER_VALUES_MAX:
            raise Refusal(
                "FilterLimitExceeded",
                f"The maximum number of filter values specified on a single call is {FILTER_VALUES_MAX} "
                f"(filter {p.get(f'Filter.{n}.Name')} has {c})",
            )
    if action == "CreateTags":
        ids = listed(p, "ResourceId")
        if len(ids) > CREATE_TAGS_MAX:
            raise Refusal(
                "InvalidParameterValue",
                f"CreateTags takes up to {CREATE_TAGS_MAX} resource IDs; this request has {len(ids)}",
            )
    if action == "CreateVolume":
        vtype = p.get("VolumeType", "gp2")
        iops = p.get("Iops")
        thr = p.get("Throughput")
        if iops is not None:
            if vtype not in IOPS:
                raise Refusal(
                    "InvalidParameterCombination",
                    f"The parameter iops is not supported for {vtype} volumes.",
                )
            lo, hi = IOPS[vtype]
            if not lo <= int(iops) <= hi:
                raise Refusal(
                    "InvalidParameterValue",
                    f"Volume iops of {iops} is outside the range {lo}-{hi} for {vtype}.",
                )
        elif vtype in ("io1", "io2"):
            raise Refusal("MissingParameter", f"The request must contain the parameter iops for {vtype} volumes.")
        if thr is not None:
            if vtype not in THROUGHPUT:
                raise Refusal(
                    "InvalidParameterCombination",
                    f"The parameter throughput is not supported for {vtype} volumes.",
                )
            lo, hi = THROUGHPUT[vtype]
            if not lo <= int(thr) <= hi:
                raise Refusal(
                    "InvalidParameterValue",
                    f"Volume throughput of {thr} is outside the range {lo}-{hi}.",
                )
    if action == "AttachVolume":
        device = p.get("Device", "")
        if not DEVICE.match(device):
            raise Refusal("InvalidParameterValue", f"Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name.")


def tag_specs(p):
    """TagSpecification.N: resource type -> the tags asked for it."""
    out = {}
    for k, v in p.items():
        m = re.match(r"^TagSpecification\.(\d+)\.ResourceType$", k)
        if m:
            n = m.group(1)
            tags = {}
            for tk, tv in p.items():
                mm = re.match(r"^TagSpecification\." + n + r"\.Tag\.(\d+)\.Key$", tk)
                if mm:
                    tags[tv] = p.get(f"TagSpecification.{n}.Tag.{mm.group(1)}.Value", "")
            out[v] = tags
    return out


def kind_of(rid):
    for prefix, kind in (("i-", "instance"), ("vol-", "volume"), ("snap-", "snapshot"), ("eni-", "network-interface"),
                         ("subnet-", "subnet"), ("sg-", "security-group"), ("ami-", "image")):
        if rid.startswith(prefix):
            return kind
    return "unknown"


def caller_account(environ):
    """The account a request acts in, as moto decides it: by its access key (a role's assumed
    credentials are that role's account's)."""
    from moto.iam.models import get_account_id_from

    m = re.search(r"Credential=([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return get_account_id_from(m.group(1)) if m else ACCOUNT


def authorization(action, p, region, caller=ACCOUNT):
    """What EC2 authorizes for this call (Service Authorization Reference: the resource types of
    the action): a list of checks, each an action with its resources and context, and the
    account of the caller (a backup account's role is another principal)."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[caller][region]

    def existing(kind, rid, reg=None):
        tags = dict(ec2_backends[caller][reg or region].tags.get(rid, {}))
        # Images and snapshots have no account in their ARN (arn:aws:ec2:REGION::image/ID).
        account = "" if kind in ("image", "snapshot") else caller
        return {"type": kind, "arn": f"arn:aws:ec2:{reg or region}:{account}:{kind}/{rid}", "resource_tags": tags}

    def new(kind, tags):
        account = "" if kind in ("image", "snapshot") else caller
        return {"type": kind, "arn": f"arn:aws:ec2:{region}:{account}:{kind}/*", "request_tags": tags}

    specs = tag_specs(p)
    checks = []
    res = []
    if action == "DescribeInstanceAttribute":
        # Service Authorization Reference: authorizes the instance (required).
        res = [existing("instance", p["InstanceId"])]
    elif action.startswith("Describe"):
        res = []
    elif action == "CreateVolume":
        res = [new("volume", specs.get("volume", {}))]
        if p.get("SnapshotId"):
            res.append(existing("snapshot", p["SnapshotId"]))
    elif action == "CreateSnapshot":
        res = [new("snapshot", specs.get("snapshot", {})), existing("volume", p["VolumeId"])]
    elif action == "CreateSnapshots":
        iid = p.get("InstanceSpecification.InstanceId")
        res = [new("snapshot", specs.get("snapshot", {})), existing("instance", iid)]
        excluded = set(listed(p, "InstanceSpecification.ExcludeDataVolumeId"))
        try:
            inst = backend.get_instance(iid)
            for dev, bdm in inst.block_device_mapping.items():
                if bdm.volume_id not in excluded:
                    res.append(existing("volume", bdm.volume_id))
        except Exception:
            pass
    elif action == "RunInstances":
        res = [new("instance", specs.get("instance", {})), new("network-interface", specs.get("network-interface", {})),
               new("volume", specs.get("volume", {})), existing("image", p.get("ImageId", ""))]
        subnet = p.get("NetworkInterface.1.SubnetId") or p.get("SubnetId")
        if subnet:
            res.append(existing("subnet", subnet))
        for g in listed(p, "NetworkInterface.1.SecurityGroupId") + listed(p, "SecurityGroupId"):
            res.append(existing("security-group", g))
        if p.get("KeyName"):
            res.append({"type": "key-pair", "arn": f"arn:aws:ec2:{region}:{ACCOUNT}:key-pair/{p['KeyName']}", "resource_tags": {}})
    elif action in ("AttachVolume", "DetachVolume"):
        res = [existing("volume", p["VolumeId"])]
        if p.get("InstanceId"):
            res.append(existing("instance", p["InstanceId"]))
    elif action in ("StopInstances", "TerminateInstances"):
        res = [existing("instance", i) for i in listed(p, "InstanceId")]
    elif action == "DeleteSnapshot":
        res = [existing("snapshot", p["SnapshotId"])]
    elif action == "DeleteVolume":
        res = [existing("volume", p["VolumeId"])]
    elif action == "CreateTags":
        tags = {}
        for k, v in p.items():
            m = re.match(r"^Tag\.(\d+)\.Key$", k)
            if m:
                tags[v] = p.get(f"Tag.{m.group(1)}.Value", "")
        res = [dict(existing(kind_of(r), r), request_tags=tags) for r in listed(p, "ResourceId")]
    elif action == "CopySnapshot":
        # EC2 User Guide: resource-level permissions for CopySnapshot apply to the new snapshot
        # only (the reference lists one resource type, with request-tag keys).
        res = [new("snapshot", specs.get("snapshot", {}))]
    context = {}
    if action == "ModifySnapshotAttribute":
        # Service Authorization Reference: the snapshot, with ec2:Add/userId (the accounts the
        # request shares it with).
        res = [existing("snapshot", p["SnapshotId"])]
        context = {"ec2:Add/userId": listed(p, "UserId")}
    checks.append({"action": f"ec2:{action}", "region": region, "resources": res, "context": context})
    # Tags given at creation are authorized as ec2:CreateTags with ec2:CreateAction.
    for kind, tags in specs.items():
        if tags:
            checks.append({"action": "ec2:CreateTags", "region": region,
                           "resources": [new(kind, tags)], "context": {"ec2:CreateAction": [action]}})
    for c in checks:
        c["account"] = caller
    return checks


def ec2_error(start_response, e):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{e.code}</Code><Message>{escape(e.message)}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()
    start_response(f"{e.status} Bad Request", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Strict:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        # (region, action, client token) -> the response RunInstances or CreateVolume gave: EC2
        # API Reference, "Ensuring idempotency": a repeated request with the same client token
        # returns the same response, for the same instance or volume, even once it is gone.
        self.launched = {}
        self.terminate_launches = 0
        self.terminate_code = "Server.InsufficientInstanceCapacity"
        self.vanish_volumes = 0
        self.refused = []
        self.calls = []
        self.lose_s3_puts = 0
        # EC2 API Reference, "Eventual consistency in the Amazon EC2 API": a tag just created
        # may not show in Describe calls at once.
        self.stale_tag = None
        self.stale_count = 0
        self.stale_filter = None
        # EC2 User Guide, "Copy an Amazon EBS snapshot": a copy is checked asynchronously, and
        # one that cannot be made (its KMS key) ends in state error with a StateMessage.
        self.fail_copies = 0
        self.fail_message = ""
        self.failed_copies = {}
        # action -> [code, count]: refusals to give (EC2 API Reference, "Error codes":
        # ConcurrentSnapshotLimitExceeded, ResourceLimitExceeded, InsufficientInstanceCapacity,
        # VolumeInUse are answered while a quota or the capacity is exhausted).
        self.refusals = {}
        self.s3_conflicts = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_strict/"):
            return self.control(environ, start_response, path[len("/_strict/"):])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        redirect = self.s3_elsewhere(environ)
        if redirect:
            return redirect(start_response)
        conditional = environ.get("HTTP_IF_NONE_MATCH") or environ.get("HTTP_IF_MATCH")
        if conditional and environ.get("REQUEST_METHOD") in ("PUT", "DELETE"):
            return self.s3_conditional(environ, start_response)
        params = {}
        if environ.get("REQUEST_METHOD") == "POST" and b"Action=" in body:
            params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
        action = params.get("Action")
        if not action or params.get("Version") != "2016-11-15":
            return self.app(environ, start_response)
        try:
            with self.lock:
                pending = self.refusals.get(action)
                if pending and pending[1] > 0:
                    pending[1] -= 1
                    raise Refusal(pending[0], f"refused by the test ({pending[0]})")
            ec2_rules(action, params)
        except Refusal as e:
            with self.lock:
                self.refused.append(f"{action} {e.code}: {e.message}")
            return ec2_error(start_response, e)
        try:
            checks = authorization(action, params, region_of(environ), caller_account(environ))
        except Exception as e:  # a call the model does not know: recorded as such
            checks = [{"action": f"ec2:{action}", "error": repr(e)}]
        # The tests' Nitro emulator reads EC2 as a guest's udev would see it: not asdr's calls.
        if "Credential=nitro/" not in environ.get("HTTP_AUTHORIZATION", ""):
            with self.lock:
                self.calls.extend(checks)
        if action in ("RunInstances", "CreateVolume") and params.get("ClientToken"):
            return self.idempotent(environ, start_response, action, params)
        if action == "CopySnapshot":
            shared = self.shared_source(environ, params)
            if isinstance(shared, Refusal):
                with self.lock:
                    self.refused.append(f"{action} {shared.code}: {shared.message}")
                return ec2_error(start_response, shared)
            if shared is not None:
                return self.copy_shared(environ, start_response, params, shared)
            with self.lock:
                fail = self.fail_copies > 0
                if fail:
                    self.fail_copies -= 1
            if fail:
                return self.failing_copy(environ, start_response)
        if action == "DescribeSnapshots":
            with self.lock:
                failed = dict(self.failed_copies)
            if failed:
                return self.with_failed_copies(environ, start_response, failed)
            with self.lock:
                wanted = self.stale_filter is None or self.stale_filter in params.values()
                stale = self.stale_tag if self.stale_count > 0 and wanted else None
                if stale:
                    self.stale_count -= 1
            if stale:
                return self.without_tag(environ, start_response, stale)
        return self.app(environ, start_response)

    def shared_source(self, environ, params):
        """A CopySnapshot whose source is another account's (moto copies only within one account).
        EC2 User Guide, "Share an Amazon EBS snapshot" and "Copy an Amazon EBS snapshot": an
        account may copy a snapshot another account shared with it (createVolumePermission for
        its id, or public); one not shared with it does not exist for it. Returns None (the
        caller's own snapshot: moto's copy), the source snapshot (shared), or a Refusal."""
        from moto.ec2.models import ec2_backends

        caller = caller_account(environ)
        sid = params.get("SourceSnapshotId", "")
        region = params.get("SourceRegion", "")
        if sid in ec2_backends[caller][region].snapshots:
            return None
        for account in list(ec2_backends.keys()):
            if account == caller:
                continue
            snap = ec2_backends[account][region].snapshots.get(sid)
            if snap is None:
                continue
            if caller in snap.create_volume_permission_userids or "all" in snap.create_volume_permission_groups:
                return (caller, snap)
            break
        return Refusal("InvalidSnapshot.NotFound", f"The snapshot '{sid}' does not exist.")

    def copy_shared(self, environ, start_response, params, shared):
        """moto's copy, with the shared source lent to the copying account for the call."""
        from moto.ec2.models import ec2_backends

        caller, snap = shared
        backend = ec2_backends[caller][params["SourceRegion"]]
        with self.lock:
            backend.snapshots[snap.id] = snap
            try:
                status, headers, body = self.captured(environ)
            finally:
                backend.snapshots.pop(snap.id, None)
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def captured(self, environ):
        got = {}

        def keep(status, headers, exc_info=None):
            got["status"], got["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, keep))
        headers = [(k, v) for k, v in got["headers"] if k.lower() != "content-length"]
        return got["status"], headers, body

    def failing_copy(self, environ, start_response):
        status, headers, body = self.captured(environ)
        m = re.search(rb"<snapshotId>(snap-[0-9a-f]+)</snapshotId>", body)
        if m:
            with self.lock:
                self.failed_copies[m.group(1).decode()] = self.fail_message
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def with_failed_copies(self, environ, start_response, failed):
        status, headers, body = self.captured(environ)
        for sid, message in failed.items():
            pattern = rb"(<snapshotId>" + sid.encode() + rb"</snapshotId>.*?<status>)completed(</status>)"
            body = re.sub(
                pattern,
                lambda m: m.group(1) + b"error" + m.group(2) + b"<statusMessage>" + escape(message).encode() + b"</statusMessage>",
                body,
                count=1,
                flags=re.S,
            )
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def without_tag(self, environ, start_response, key):
        got = {}

        def keep(status, headers, exc_info=None):
            got["status"], got["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, keep))
        pattern = rb"<item>\s*<key>" + re.escape(key.encode()) + rb"</key>\s*<value>[^<]*</value>\s*</item>"
        body = re.sub(pattern, b"", body)
        headers = [(k, v) for k, v in got["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(got["status"], headers)
        return [body]

    def idempotent(self, environ, start_response, action, params):
        key = (region_of(environ), action, params["ClientToken"])
        with self.lock:
            cached = self.launched.get(key)
        if cached is not None:
            status, headers, body = cached
            start_response(status, headers)
            return [body]
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        status = captured["status"]
        if status.startswith("200"):
            with self.lock:
                self.launched[key] = (status, captured["headers"], body)
                if action == "RunInstances":
                    end = self.terminate_launches > 0
                    self.terminate_launches -= end
                else:
                    end = self.vanish_volumes > 0
                    self.vanish_volumes -= end
            if end and action == "RunInstances":
                self.terminate(key[0], body)
            elif end:
                self.vanish(key[0], body)
        start_response(status, captured["headers"])
        return [body]

    def s3_elsewhere(self, environ):
        # Amazon S3 API Reference, HeadBucket / "Making requests": a request signed for another
        # region than the bucket's is answered 301 PermanentRedirect with the bucket's region in
        # `x-amz-bucket-region`; SDKs do not follow it. CreateBucket (PUT on the bucket itself)
        # is exempt: it names its region in the request.
        auth = environ.get("HTTP_AUTHORIZATION", "")
        m = re.search(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/s3/", auth)
        if not m:
            return None
        parts = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)
        name = parts[0]
        if not name or (environ.get("REQUEST_METHOD") == "PUT" and (len(parts) == 1 or not parts[1])):
            return None
        from moto.s3.models import s3_backends

        bucket = s3_backends[ACCOUNT]["aws"].buckets.get(name)
        if bucket is None or bucket.region_name == m.group(1):
            return None
        region = bucket.region_name

        def answer(start_response):
            head = environ.get("REQUEST_METHOD") == "HEAD"
            body = b"" if head else (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>'
                f"<Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message>"
                f"<Bucket>{name}</Bucket><Endpoint>s3.{region}.amazonaws.com</Endpoint></Error>").encode()
            start_response("301 Moved Permanently", [
                ("Content-Type", "application/xml"),
                ("x-amz-bucket-region", region),
                ("Content-Length", str(len(body))),
            ])
            return [body]

        return answer

    def s3_conditional(self, environ, start_response):
        # Amazon S3 User Guide, "Conditional writes": a conditional write that conflicts with
        # another in flight answers 409 ConditionalRequestConflict ("retry the request"); a
        # precondition that does not hold answers 412 (moto's own).
        with self.lock:
            conflict = self.s3_conflicts > 0
            if conflict:
                self.s3_conflicts -= 1
            lose = not conflict and self.lose_s3_puts > 0 and environ["REQUEST_METHOD"] == "PUT"
            if lose:
                self.lose_s3_puts -= 1
        if conflict:
            return s3_error(start_response, "409 Conflict", "ConditionalRequestConflict",
                            "A conflicting operation occurred. Retry the request.")
        if lose:
            # The put is applied; its answer never arrives.
            done = {}

            def swallow(status, headers, exc_info=None):
                done["status"] = status
                return lambda _data: None

            for _ in self.app(environ, swallow):
                pass
            return s3_error(start_response, "500 Internal Server Error", "InternalError",
                            "We encountered an internal error. Please try again.")
        return self.app(environ, start_response)

    def terminate(self, region, body):
        """The instance just launched ends at once, as EC2 ends a launch it cannot place."""
        from moto.ec2.models import ec2_backends
        from moto.ec2.models.instances import StateReason

        backend = ec2_backends[ACCOUNT][region]
        for iid in re.findall(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body):
            instance = backend.get_instance(iid.decode())
            instance.terminate()
            code = self.terminate_code
            instance.state_reason = StateReason(f"{code}: the instance could not be launched", code)

    def vanish(self, region, body):
        """The volume just created is gone, as EBS drops one it cannot create."""
        from moto.ec2.models import ec2_backends

        backend = ec2_backends[ACCOUNT][region]
        for vid in re.findall(rb"<volumeId>(vol-[0-9a-f]+)</volumeId>", body):
            backend.delete_volume(vid.decode())

    def control(self, environ, start_response, command):
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if command == "terminate-launches":
            with self.lock:
                self.terminate_launches = int(query.get("count", ["1"])[0])
                self.terminate_code = query.get("code", ["Server.InsufficientInstanceCapacity"])[0]
            out = b"ok\n"
        elif command == "vanish-volumes":
            with self.lock:
                self.vanish_volumes = int(query.get("count", ["1"])[0])
            out = b"ok\n"
        elif command == "refuse":
            with self.lock:
                self.refusals[query["action"][0]] = [query["code"][0], int(query.get("count", ["1"])[0])]
            out = b"ok\n"
        elif command == "stale-tags":
            with self.lock:
                self.stale_tag = query["key"][0]
                self.stale_count = int(query.get("count", ["1"])[0])
                self.stale_filter = query.get("filter", [None])[0]
            out = b"ok\n"
        elif command == "fail-copies":
            with self.lock:
                self.fail_copies = int(query.get("count", ["1"])[0])
                self.fail_message = query.get("message", ["The copy failed"])[0]
            out = b"ok\n"
        elif command == "lose-s3-puts":
            with self.lock:
                self.lose_s3_puts = int(query.get("count", ["1"])[0])
            out = b"ok\n"
        elif command == "s3-conflicts":
            with self.lock:
                self.s3_conflicts = int(query.get("count", ["1"])[0])
            out = b"ok\n"
        elif command == "calls":
            import json

            with self.lock:
                out = "".join(json.dumps(c, sort_keys=True) + "\n" for c in self.calls).encode()
        elif command == "calls-clear":
            with self.lock:
                self.calls = []
            out = b"ok\n"
        elif command == "refused":
            with self.lock:
                out = "".join(r + "\n" for r in self.refused).encode()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown strict-aws command\n"]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
        return [out]


def s3_error(start_response, status, code, message):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>{uuid.uuid4()}</RequestId></Error>").encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    args = ap.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, Strict(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
