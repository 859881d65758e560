//go:build tools

// Package helm pins the Helm CLI that meshguard's chart tests run (helm lint,
// helm template), built from source by hack/tools.sh.
package helm

import _ "helm.sh/helm/v3/cmd/helm"
