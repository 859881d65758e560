package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// uidPlaceholder is replaced by a unique request UID in every review sent; the
// response must echo it.
const uidPlaceholder = "ffffffff-ffff-4fff-8fff-ffffffffffff"

// review is an AdmissionReview body with a slot for the request UID.
type review struct {
	Name      string
	ObjectLen int    // bytes of the object's JSON
	body      []byte // the review with uidPlaceholder once
	uidAt     int
}

// Body returns the review for request number i (a fresh slice).
func (r *review) Body(i int) ([]byte, string) {
	b := append([]byte(nil), r.body...)
	uid := requestUID(i)
	copy(b[r.uidAt:], uid)
	return b, uid
}

func requestUID(i int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", i%1_000_000_000_000)
}

// reviewSpec says how the API server would send an object from rules/testdata/bench.
type reviewSpec struct {
	name, file string
	gvk        metav1.GroupVersionKind
	resource   metav1.GroupVersionResource
	user       string
}

var reviewSpecs = []reviewSpec{
	{"Pod7KB", "pod.yaml",
		metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		"system:serviceaccount:kube-system:replicaset-controller"},
	{"Deployment", "deployment.yaml",
		metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
		"alice@example.com"},
	{"PeerAuthentication", "peerauthentication.yaml",
		metav1.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"},
		metav1.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"},
		"alice@example.com"},
}

// loadReviews builds a CREATE AdmissionReview (admission.k8s.io/v1, as the API
// server sends it) for each bench object.
func loadReviews(root string) ([]*review, error) {
	var out []*review
	for _, s := range reviewSpecs {
		data, err := os.ReadFile(filepath.Join(root, "rules", "testdata", "bench", s.file))
		if err != nil {
			return nil, err
		}
		obj, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.file, err)
		}
		r, err := newReview(s, obj)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func newReview(s reviewSpec, obj []byte) (*review, error) {
	var meta struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	if err := json.Unmarshal(obj, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w", s.file, err)
	}
	opts, _ := json.Marshal(metav1.CreateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "CreateOptions"}, FieldManager: "kubectl-client-side-apply"})
	dry := false
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:             uidPlaceholder,
			Kind:            s.gvk,
			Resource:        s.resource,
			RequestKind:     &s.gvk,
			RequestResource: &s.resource,
			Name:            meta.Metadata.Name,
			Namespace:       benchNamespace,
			Operation:       admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{
				Username: s.user, UID: "6a1f0a86-6b4e-4c34-a3a5-0e4f1f1b2c3d",
				Groups: []string{"system:authenticated"},
			},
			Object:  runtime.RawExtension{Raw: obj},
			DryRun:  &dry,
			Options: runtime.RawExtension{Raw: opts},
		},
	}
	body, err := json.Marshal(ar)
	if err != nil {
		return nil, err
	}
	at := bytes.Index(body, []byte(uidPlaceholder))
	if at < 0 || bytes.Count(body, []byte(uidPlaceholder)) != 1 {
		return nil, fmt.Errorf("%s: the UID must appear exactly once in the review", s.name)
	}
	return &review{Name: s.name, ObjectLen: len(obj), body: body, uidAt: at}, nil
}
