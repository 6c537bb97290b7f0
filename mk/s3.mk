# S3-compatible object storage for backup tests (docs/operator/backup-restore.md).
# Included by the Makefile.
#
#   make s3-server   build versitygw (a real S3 gateway, SigV4, POSIX backend) from the Go
#                    module proxy into ~/.cache/velocity-s3 (hack/s3/build.sh; never rebuilds)
#
# The S3 adapter's integration tests (tests/integration/s3) and the operator's S3
# backup/restore test with real engines (tests/operator) start it as a process, so those
# tiers depend on it (tests/support/s3_server.py would build it on first use anyway). The
# credential tests also run its standalone IAM service (`versitygw iam`: STS's
# AssumeRoleWithWebIdentity and temporary credentials) from the same binary.

.PHONY: s3-server

s3-server: ## Build the S3 test server (versitygw, pinned in hack/s3/go.mod) if missing
	@nice -n 19 bash hack/s3/build.sh >/dev/null

test-integration: s3-server
test-operator: s3-server
