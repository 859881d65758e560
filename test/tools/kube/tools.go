//go:build tools

// Package kube pins the Kubernetes control-plane binaries that meshguard's
// end-to-end tests and demo run (kube-apiserver and kubectl), built from source
// through the Go module proxy by hack/tools.sh.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
