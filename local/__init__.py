"""The local stack: the whole pipeline on loopback, provisioned by this Terraform."""
