// Package chart tests the Helm chart in charts/meshguard with the pinned
// bin/helm (built by `make tools`): helm lint and helm template in both
// certificate modes, the webhook rules against the rule catalog, the pod
// security settings, the flags the chart passes to the real meshguard
// commands, values.schema.json, the rendered chart applied to a real API
// server (server-side dry run, then for real) and the uninstall path.
package chart
