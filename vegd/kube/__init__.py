"""The Kubernetes room: the only importer of the kubernetes client (informers, status, workload)."""
