//go:build tools

// Package etcd pins the etcd server that meshguard's end-to-end tests and demo
// run behind kube-apiserver, built from source by hack/tools.sh.
package etcd

import _ "go.etcd.io/etcd/server/v3"
