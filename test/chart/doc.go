// Package chart tests the Helm chart in charts/meshguard with the pinned
// bin/helm (built by `make tools`): helm lint and helm template in both
// certificate modes, the webhook rules against the rule catalog, the pod
// security settings, the flags the chart passes to the real meshguard
// commands, values.schema.json, the rendered chart applied to a real API
// server (server-side dry run, then for real), an end-to-end self-signed
// install served by the meshguard binary as a local process, and the
// uninstall path.
package chart
