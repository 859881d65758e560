package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/graph"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestGraphClusterMatchesManifests applies examples/bookinfo/fixed to the
// real API server with kubectl, adds a live reviews Pod (injected: it runs
// istio-proxy) owned by a ReplicaSet of the reviews Deployment, and checks
// that `meshguard graph --cluster -o json` gives every edge the
// manifest-based graph gives, with the same verdict, transport and reasons,
// and groups the Pod into its Deployment.
func TestGraphClusterMatchesManifests(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(env.Root, "examples", "bookinfo", "fixed")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var manifests []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, string(b))
	}
	if res, err := env.Apply(ctx, strings.Join(manifests, "\n---\n")); err != nil {
		t.Fatalf("apply examples/bookinfo/fixed: %v", err)
	} else if !strings.Contains(res.Stdout, "deployment.apps/reviews-v1") {
		t.Fatalf("kubectl apply did not report the reviews Deployment:\n%s", res)
	}
	// No controller runs here: create what the Deployment controller and the
	// injector would, a ReplicaSet and an injected Pod, owned as they would be.
	uid, err := env.Kubectl(ctx, nil, "get", "deployment", "reviews-v1", "-n", "bookinfo", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	rs := `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: reviews-v1-7f9c
  namespace: bookinfo
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: reviews-v1, uid: ` + strings.TrimSpace(uid.Stdout) + `, controller: true}]
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {serviceAccountName: bookinfo-reviews, containers: [{name: reviews, image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.2}]}
`
	if _, err := env.Apply(ctx, rs); err != nil {
		t.Fatalf("apply the ReplicaSet: %v", err)
	}
	rsUID, err := env.Kubectl(ctx, nil, "get", "replicaset", "reviews-v1-7f9c", "-n", "bookinfo", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: reviews-v1-7f9c-x2k4p
  namespace: bookinfo
  labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: reviews-v1-7f9c, uid: ` + strings.TrimSpace(rsUID.Stdout) + `, controller: true}]
spec:
  serviceAccountName: bookinfo-reviews
  securityContext: {runAsNonRoot: true, runAsUser: 1000}
  containers:
  - name: reviews
    image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.2
    ports: [{containerPort: 9080}]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: ["ALL"]}}
  - name: istio-proxy
    image: docker.io/istio/proxyv2:1.28.0
    args: ["proxy", "sidecar"]
    securityContext: {runAsUser: 1337, runAsGroup: 1337, allowPrivilegeEscalation: false, capabilities: {drop: ["ALL"]}}
`
	if _, err := env.Apply(ctx, pod); err != nil {
		t.Fatalf("apply the Pod: %v", err)
	}

	code, out, errOut := runCLI(t, "graph", "--cluster", "--kubeconfig", env.KubeconfigPath, "-n", "bookinfo", "-o", "json", "--collapse-above", "0", "--page-size", "3")
	if code != 0 {
		t.Fatalf("meshguard graph --cluster: exit %d: %s", code, errOut)
	}
	var live graph.Document
	if err := json.Unmarshal([]byte(out), &live); err != nil {
		t.Fatalf("decode the graph: %v\n%s", err, out)
	}

	in, err := audit.Read([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var objs []rules.Object
	for _, d := range in.Documents {
		objs = append(objs, d.Object)
	}
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	offline, err := graph.Compute(objs, graph.Options{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(offline)
	if err != nil {
		t.Fatal(err)
	}
	var want graph.Document
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}

	type edge struct {
		verdict, transport, reasons, conditions string
	}
	index := func(d graph.Document, nodes map[string]bool) map[string]edge {
		out := map[string]edge{}
		for _, e := range d.Edges {
			if nodes != nil && (!nodes[e.From] || !nodes[e.To]) {
				continue // workloads of other tests sharing the API server
			}
			raw, _ := json.Marshal(e)
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			out[e.From+" -> "+e.To+":"+strings.TrimSpace(string(mustJSON(m["port"])))] = edge{
				verdict: string(mustJSON(m["verdict"])), transport: string(mustJSON(m["transport"])),
				reasons: string(mustJSON(m["reasons"])), conditions: string(mustJSON(m["conditions"])),
			}
		}
		return out
	}
	wantNodes := map[string]bool{}
	for _, n := range want.Nodes {
		wantNodes[n.ID] = true
	}
	wantEdges, liveEdges := index(want, nil), index(live, wantNodes)
	var keys []string
	for k := range wantEdges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got, ok := liveEdges[k]; !ok {
			t.Errorf("the cluster graph lacks %s", k)
		} else if got != wantEdges[k] {
			t.Errorf("%s:\n  cluster:   %+v\n  manifests: %+v", k, got, wantEdges[k])
		}
	}
	if len(liveEdges) != len(wantEdges) || len(wantEdges) != 20 {
		t.Errorf("cluster graph: %d edges between the manifests' nodes, manifests: %d (want 20)", len(liveEdges), len(wantEdges))
	}
	found := false
	for _, n := range live.Nodes {
		switch n.ID {
		case "Deployment/bookinfo/reviews-v1":
			found = true
			if n.Pods != 1 || n.MeshMode != "sidecar" {
				t.Errorf("reviews: want its live injected Pod grouped in (1 pod, sidecar), got %+v", n)
			}
		case "ReplicaSet/bookinfo/reviews-v1-7f9c", "Pod/bookinfo/reviews-v1-7f9c-x2k4p":
			t.Errorf("%s must be grouped into its Deployment", n.ID)
		}
	}
	if !found {
		t.Error("the cluster graph has no reviews-v1 node")
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
