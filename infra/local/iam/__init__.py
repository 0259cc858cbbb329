"""IAM, locally: every AWS call a function makes is checked against the role template.yaml
gives that function, as AWS checks it.

- ``expand_roles`` (roles.py): SAM's own translator (aws-sam-translator, offline) turns each
  AWS::Serverless::Function into its AWS::IAM::Role: inline ``Policies`` (policy templates
  expanded) and ``ManagedPolicyArns`` (AWS managed policies SAM attaches, whose public
  documents are in infra/local/managed_policies.json; an unknown one is an error).
- ``policy_file`` (roles.py): those roles with intrinsics resolved against the provisioned names and
  ARNs, keyed by each function's access key id; the runner writes it, the embedded endpoint
  (moto_server.py) reads it.
- ``Policy`` (policy.py): identity-based policy evaluation: an explicit Deny wins over an Allow, no
  Allow is an implicit deny; Action/NotAction, Resource/NotResource, ``*`` and ``?``
  wildcards, action names case-insensitive. A statement with a Condition is not evaluated:
  it never matches, and the decision says so.
- ``classify`` (calls.py): from a raw request (headers, body) the caller's access key id, the operation
  and the IAM action(s) and resource ARN(s) AWS authorises it as.
- ``Enforcer`` (enforcer.py): the check itself, with AWS's access denied answers per protocol, a calls
  log (one JSON line per checked call) and a loud line on stderr per denied call.

Each part is a module of this package; their names are importable from ``infra.local.iam``.
"""

from .calls import (
    ACCOUNT,
    IAM_PREFIX,
    SQS_BATCH_ACTIONS,
    TRANSACT_WRITE_ACTIONS,
    Call,
    access_key_of,
    classify,
    credential_scope,
)
from .enforcer import Denied, Enforcer, denied_answer, operations_table, principal_arn, read_calls
from .policy import Decision, Policy, Statement
from .roles import (
    LOCAL_GRANTS,
    MANAGED_POLICIES_FILE,
    IamError,
    Role,
    access_key_id,
    expand_roles,
    function_credentials,
    managed_policies,
    policy_file,
    translate,
    write_policy_file,
)

__all__ = [
    "ACCOUNT",
    "IAM_PREFIX",
    "LOCAL_GRANTS",
    "MANAGED_POLICIES_FILE",
    "SQS_BATCH_ACTIONS",
    "TRANSACT_WRITE_ACTIONS",
    "Call",
    "Decision",
    "Denied",
    "Enforcer",
    "IamError",
    "Policy",
    "Role",
    "Statement",
    "access_key_id",
    "access_key_of",
    "classify",
    "credential_scope",
    "denied_answer",
    "expand_roles",
    "function_credentials",
    "managed_policies",
    "operations_table",
    "policy_file",
    "principal_arn",
    "read_calls",
    "translate",
    "write_policy_file",
]
