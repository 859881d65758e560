package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// NamespaceEnroller is the mutating handler that enrolls new namespaces in the
// mesh by adding one label (Key=Value), unless the namespace is excluded or
// already carries an enrollment label.
type NamespaceEnroller struct {
	Key, Value string
	// Exclude are namespaces never enrolled (system and control-plane namespaces).
	Exclude []string
}

// enrollmentKeys are the labels that already state a mesh choice.
var enrollmentKeys = []string{"istio-injection", "istio.io/rev", "istio.io/dataplane-mode"}

// Handle implements admission.Handler. The patch is built directly: one "add"
// operation, never a marshal-and-diff of the whole object.
func (n *NamespaceEnroller) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Kind.Kind != "Namespace" || req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	var ns struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &ns); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("meshguard: decode namespace: %w", err))
	}
	if slices.Contains(n.Exclude, ns.Metadata.Name) {
		return admission.Allowed("excluded namespace")
	}
	for _, k := range enrollmentKeys {
		if _, ok := ns.Metadata.Labels[k]; ok {
			return admission.Allowed("namespace already states its enrollment")
		}
	}
	var op jsonpatch.JsonPatchOperation
	if ns.Metadata.Labels == nil {
		op = jsonpatch.NewOperation("add", "/metadata/labels", map[string]string{n.Key: n.Value})
	} else {
		op = jsonpatch.NewOperation("add", "/metadata/labels/"+escapePointer(n.Key), n.Value)
	}
	return admission.Patched("meshguard enrolled the namespace: "+n.Key+"="+n.Value, op)
}

// escapePointer escapes a JSON Pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func parseEnrollLabel(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%q: want key=value", s)
	}
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return "", "", fmt.Errorf("%q: label key: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return "", "", fmt.Errorf("%q: label value: %s", v, strings.Join(errs, "; "))
	}
	switch k {
	case "istio-injection", "istio.io/rev", "istio.io/dataplane-mode":
	default:
		return "", "", fmt.Errorf("%q: the key must be istio-injection, istio.io/rev or istio.io/dataplane-mode", k)
	}
	return k, v, nil
}
