// Package deploy holds ofaserve's deployment recipes — the Kubernetes manifests and KServe runtime under
// deploy/, the Grafana dashboard under deploy/grafana/, and the repository's Dockerfile.cuda — and the tests
// that keep them honest: every manifest is decoded strictly with the upstream Kubernetes API types, the
// Dockerfile is parsed with BuildKit's parser, and both are checked against the flags and defaults
// cmd/ofaserve really has; every dashboard query's metrics and labels are checked against what a server
// configured as the Deployment configures it exports.
package deploy
