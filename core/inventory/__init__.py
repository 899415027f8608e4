"""What steps run on: the tenant's assets, the optional external asset service, the runbook library."""
