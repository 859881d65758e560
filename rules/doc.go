// Package rules holds meshguard's rule catalog and the evaluator that applies it.
//
// The catalog lives under catalog/, one folder per rule (for example
// catalog/MESH0150-priv-net-admin/). Each folder holds a kyverno-json
// ValidatingPolicy (policy.yaml) carrying the rule's metadata as annotations,
// and pass/ and fail/ fixture manifests with the exact expected findings.
// The policies are embedded in the binary, decoded with strict YAML, validated
// and compiled once by Load, and indexed by the kinds they apply to. They are
// compiled with kyverno-json's expressions and semantics, but evaluated by our
// own assertion-tree walk (assert.go), which does not build the field paths and
// responses kyverno-json allocates on every evaluation.
//
// Semantics that are intricate or cross-object (injection precedence, ambient
// versus sidecar enrollment, effective runAsUser/runAsGroup, capability-name
// normalisation, Istio's own containers recognised by their injected shape, the
// effective mTLS mode) are computed once per object in Go (facts*.go) and handed
// to the policies as the $facts, $namespace and $mesh bindings, so that the
// policies stay short and declarative.
//
// This is the only package that imports kyverno-json. Callers depend on the
// one-method Evaluator interface.
package rules
