"""hostscale's policy pack: `pulumi preview --policy-pack policies`. The rules live in guardrails.py, where the
tests reach them without starting the policy server that constructing a PolicyPack starts."""

from guardrails import POLICIES  # type: ignore[import-not-found]  # run from policies/ by pulumi
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="hostscale-guardrails", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
