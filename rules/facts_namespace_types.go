package rules

import "strconv"

// The $facts of a Namespace, typed as the workload facts are
// (facts_workload_types.go): json tags are the names policies read, Map the
// map they see, and the Namespace table of catalog/README.md is generated
// from the doc comments.

// NamespaceFacts are the facts of a Namespace.
type NamespaceFacts struct {
	NamespaceEnrollment
	NamespaceGuard
	NamespacePosture
}

// NamespaceEnrollment: how the namespace takes part in the mesh, after the request and before it.
type NamespaceEnrollment struct {
	// The namespace's mode under the labels the request sets: `sidecar`, `ambient` or `none` (as `$namespace.mode`
	// describes).
	Mode string `json:"mode"`
	// The mode before an UPDATE; null otherwise.
	OldMode NullString `json:"oldMode"`
	// The namespace's labels.
	Labels map[string]any `json:"labels" facts:"object of strings"`
	// The enrollment labels the request sets, e.g. `istio-injection=disabled`, `istio.io/rev=""`, or `no enrollment
	// label`.
	Enrollment string `json:"enrollment"`
	// The same before an UPDATE.
	OldEnrollment OptString `json:"oldEnrollment,omitzero"`
	// MESH0103: the namespace's `istio.io/rev` label (`""` without one).
	Revision string `json:"revision"`
	// MESH0103: an installed injector revision or tag is named `revision`; null when the context cannot list them,
	// `revision` is empty, or the namespace has an `istio-injection` label (which beats `istio.io/rev`).
	RevisionKnown NullBool `json:"revisionKnown"`
}

// NamespaceGuard: what the request changes that meshguard guards.
type NamespaceGuard struct {
	// MESH0105: the request sets `meshguard.io/netpol-profile` to `none` or `system` (no managed default-deny
	// NetworkPolicies) or `gateway` (only the ingress gateway pods protected), e.g. `sets label
	// meshguard.io/netpol-profile="none" (no managed default-deny NetworkPolicies)`; `""` when the label is absent or
	// unchanged.
	NetpolOptOut string `json:"netpolOptOut"`
	// Each `meshguard.io/` label or annotation the request sets, changes or removes, e.g. `sets label
	// meshguard.io/mode="audit"`; and, unless a platform writer (`--platform-namespace-writers`) asks, each change of
	// the annotations `openshift.io/sa.scc.uid-range` and `openshift.io/sa.scc.supplemental-groups`, from which Istio
	// takes the proxy's UID and GID on OpenShift (MESH0106).
	GuardChanges []string `json:"guardChanges"`
	guardBoxed   []any    // GuardChanges as built, boxed once
	// An UPDATE that changes `mode`, when the context knows the namespace's pods: each running pod that, evaluated as
	// if created now, gets a High or Critical finding under the new labels that it did not have under the old ones, as
	// `pod "web" (MESH0112 ...)`; at most ten are named, then `and N more pods`.
	StrandedPods []string `json:"strandedPods"`
}

// NamespacePosture: the namespace's security posture, for compliance rules (the platform team's custom rules) and
// MESH0217.
type NamespacePosture struct {
	// The namespace's effective mTLS as Istio composes PeerAuthentications.
	MTLS NamespaceMTLSFacts `json:"mtls"`
	// Whether the namespace's authorization is default-deny.
	Authz NamespaceAuthzFacts `json:"authz"`
	// MESH0217: the default-deny NetworkPolicies meshguard's controller would manage here, and which exist.
	Netpol NamespaceNetpolFacts `json:"netpol"`
}

// NamespaceMTLSFacts: the namespace's effective mTLS.
type NamespaceMTLSFacts struct {
	// STRICT, PERMISSIVE or DISABLE.
	Mode string `json:"mode"`
	// The deciding policy, `namespace/name`, or `""`.
	Source string `json:"source"`
	// `namespace`, `mesh` or `default`.
	Level string `json:"level"`
}

// NamespaceAuthzFacts: whether the namespace's authorization is default-deny.
type NamespaceAuthzFacts struct {
	// A namespace-wide or mesh-wide ALLOW policy that does not match every request, with no namespace-wide or
	// mesh-wide allow-all ALLOW policy beside it, or a DENY policy matching every request; dry-run policies do not
	// count.
	DefaultDeny bool `json:"defaultDeny"`
	// The deciding policy, `namespace/name`, or `""`.
	Source string `json:"source"`
	// `namespace`, `mesh` or `default`.
	Level string `json:"level"`
}

// NamespaceNetpolFacts: the profile meshguard's default-deny controller would apply, decided by
// `rules.NetpolProfile` as the controller decides it, and its managed NetworkPolicies.
type NamespaceNetpolFacts struct {
	// The profile.
	Profile string `json:"profile"`
	// Why that profile.
	Why string `json:"why"`
	// False when the context cannot see NetworkPolicies (the webhook's caches, a cluster audit whose list failed).
	Known bool `json:"known"`
	// `complete`, `partial`, `missing`, `none` (the profile installs nothing) or `unknown`.
	Status string `json:"status"`
	// The names of the profile's policies.
	Expected []string `json:"expected"`
	// The managed policies (labelled `meshguard.io/managed: "true"`) in the namespace.
	Present []string `json:"present"`
	// The expected policies not present.
	Missing []string `json:"missing"`
	// `mesh-default-deny` is present.
	DefaultDeny bool `json:"defaultDeny"`
	// The namespace is terminating.
	Terminating bool `json:"terminating"`
}

// OptString is a JSON string that is absent (with omitzero) unless Set.
type OptString struct {
	Value string
	Set   bool
}

// MarshalJSON writes the string.
func (s OptString) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, s.Value), nil }

// NullString is a JSON string or null.
type NullString struct {
	Value string
	Valid bool
}

// MarshalJSON writes the string, or null when not Valid.
func (s NullString) MarshalJSON() ([]byte, error) {
	if !s.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendQuote(nil, s.Value), nil
}

func (s NullString) value() any {
	if !s.Valid {
		return nil
	}
	return s.Value
}

// Map returns the facts as the policies see them.
func (f *NamespaceFacts) Map() map[string]any {
	m := make(map[string]any, 14)
	m["mode"] = f.Mode
	m["oldMode"] = f.OldMode.value()
	m["labels"] = f.Labels
	m["enrollment"] = f.Enrollment
	if f.OldEnrollment.Set {
		m["oldEnrollment"] = f.OldEnrollment.Value
	}
	m["revision"] = f.Revision
	m["revisionKnown"] = f.RevisionKnown.value()
	m["netpolOptOut"] = f.NetpolOptOut
	if f.guardBoxed != nil {
		m["guardChanges"] = f.guardBoxed
	} else {
		m["guardChanges"] = anySlice(f.GuardChanges)
	}
	m["strandedPods"] = anySlice(f.StrandedPods)
	m["mtls"] = map[string]any{"mode": f.MTLS.Mode, "source": f.MTLS.Source, "level": f.MTLS.Level}
	m["authz"] = map[string]any{"defaultDeny": f.Authz.DefaultDeny, "source": f.Authz.Source, "level": f.Authz.Level}
	m["netpol"] = f.Netpol.Map()
	return m
}

// Map returns the facts as the policies see them.
func (f *NamespaceNetpolFacts) Map() map[string]any {
	return map[string]any{
		"profile": f.Profile, "why": f.Why, "known": f.Known, "status": f.Status,
		"expected": anySlice(f.Expected), "present": anySlice(f.Present), "missing": anySlice(f.Missing),
		"defaultDeny": f.DefaultDeny, "terminating": f.Terminating,
	}
}
