"""The engine-less apply harness: the Pulumi program deployed to the real Docker engine without the Pulumi CLI
(which cannot be installed on this project's machines). `scripts/dev-stack up|down <stack>`."""
