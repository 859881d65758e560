package rules

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/kyverno/kyverno-json/pkg/apis/policy/v1alpha1"
	jsonengine "github.com/kyverno/kyverno-json/pkg/json-engine"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// The benchmarks evaluate realistic objects against the whole embedded catalog
// and, in the same run, the same policies through kyverno-json's
// jsonengine.New().Run(), which recompiles every rule on every call. Both paths
// get the same bindings and the same kind-selected policies, so the ratio
// measures compiling once. Run with `make bench`; results are in BENCHMARKS.md.

type benchCase struct {
	name string
	file string
	post bool
}

var benchCases = []benchCase{
	{"Pod7KB", "pod.yaml", true},
	{"Deployment", "deployment.yaml", false},
	{"PeerAuthentication", "peerauthentication.yaml", false},
}

// factsBenchCases are one object of each other kind with computed facts,
// evaluated by BenchmarkEvaluate only, to measure what their facts cost.
var factsBenchCases = []benchCase{
	{"AuthorizationPolicy", "authorizationpolicy.yaml", false},
	{"NetworkPolicy", "networkpolicy.yaml", false},
	{"RequestAuthentication", "requestauthentication.yaml", false},
	{"DestinationRule", "destinationrule.yaml", false},
	{"ServiceEntry", "serviceentry.yaml", false},
	{"EnvoyFilter", "envoyfilter.yaml", false},
	{"WasmPlugin", "wasmplugin.yaml", false},
	{"ConfigMapMesh", "configmap-mesh.yaml", false},
}

func loadBench(b testing.TB, file string) (Object, []byte) {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "bench", file))
	if err != nil {
		b.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		b.Fatal(err)
	}
	var obj Object
	if err := json.Unmarshal(js, &obj); err != nil {
		b.Fatal(err)
	}
	return obj, js
}

func benchEngine(b testing.TB) (*Engine, *Snapshot) {
	b.Helper()
	c, err := DefaultCatalog()
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	snap := NewSnapshot()
	snap.AddNamespace(Namespace{Name: "bookinfo", Labels: map[string]string{"istio-injection": "enabled"}})
	snap.Add(Object{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default", "namespace": "istio-system"},
		"spec":     map[string]any{"mtls": map[string]any{"mode": "STRICT"}}}, "default")
	return e, snap
}

// latencies records per-operation durations and reports p50 and p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkEvaluate is the compiled, kind-indexed path that the webhook and CLI use.
func BenchmarkEvaluate(b *testing.B) {
	e, snap := benchEngine(b)
	for _, bc := range append(append([]benchCase(nil), benchCases...), factsBenchCases...) {
		obj, _ := loadBench(b, bc.file)
		req := &Request{Object: obj, Context: snap, PostInjection: bc.post}
		b.Run(bc.name, func(b *testing.B) {
			lat := make(latencies, 0, b.N)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if _, err := e.Evaluate(context.Background(), req); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			lat.report(b)
		})
	}
}

// BenchmarkDecodeAndEvaluate adds decoding the object from JSON, as the webhook
// must for every AdmissionReview.
func BenchmarkDecodeAndEvaluate(b *testing.B) {
	e, snap := benchEngine(b)
	for _, bc := range benchCases {
		_, js := loadBench(b, bc.file)
		b.Run(bc.name, func(b *testing.B) {
			lat := make(latencies, 0, b.N)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				var obj Object
				if err := json.Unmarshal(js, &obj); err != nil {
					b.Fatal(err)
				}
				if _, err := e.Evaluate(context.Background(), &Request{Object: obj, Context: snap, PostInjection: bc.post}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			lat.report(b)
		})
	}
}

// BenchmarkJSONEngineRun evaluates the same policies with the same bindings
// through jsonengine.New().Run(), kyverno-json's uncompiled path.
func BenchmarkJSONEngineRun(b *testing.B) {
	e, snap := benchEngine(b)
	eng := jsonengine.New()
	for _, bc := range benchCases {
		obj, _ := loadBench(b, bc.file)
		gk := schema.GroupKind{Group: apiGroup(obj["apiVersion"].(string)), Kind: obj["kind"].(string)}
		info, _ := LookupKind(gk)
		var policies []*v1alpha1.ValidatingPolicy
		for _, r := range e.RulesFor(gk) {
			policies = append(policies, r.policy)
		}
		b.Run(bc.name, func(b *testing.B) {
			lat := make(latencies, 0, b.N)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				bindings, err := e.bindingsMap(obj, info, &Request{Object: obj, Context: snap, PostInjection: bc.post})
				if err != nil {
					b.Fatal(err)
				}
				resp := eng.Run(context.Background(), jsonengine.Request{Resource: obj, Policies: policies, Bindings: bindings})
				if len(resp.Policies) != len(policies) {
					b.Fatal("policies not evaluated")
				}
				lat = append(lat, time.Since(t0))
			}
			lat.report(b)
		})
	}
}
