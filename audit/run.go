package audit

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshguard/meshguard/rules"
)

// Located is a finding with the position of the object it is about.
type Located struct {
	rules.Finding
	File  string `json:"file"`
	Index int    `json:"index"`
	Line  int    `json:"line"`
}

// Report is the outcome of an audit.
type Report struct {
	// Findings in input order (file, document), then by code.
	Findings []Located `json:"findings"`
	// Errors are documents that could not be parsed or evaluated.
	Errors []InputError `json:"errors"`
	// Objects is the number of objects read.
	Objects int `json:"objects"`
	// Evaluated is the number of objects at least one rule applies to.
	Evaluated int `json:"evaluated"`
	// Ignored are documents in walked directories that are not Kubernetes
	// objects (see Input.Ignored); they are listed, not audited.
	Ignored []InputError `json:"ignored,omitempty"`
	// Skipped counts objects of kinds no rule covers, by apiVersion/kind.
	Skipped map[string]int `json:"skipped,omitempty"`
	// Results lists every object read, in input order, with what happened to
	// it; the writers use it to report objects without findings (JUnit) and
	// skipped kinds per file.
	Results []ObjectResult `json:"-"`
	// Cluster is set by a cluster audit (RunCluster): the kinds listed and
	// unavailable, and the per-namespace summary. Nil for a file audit.
	Cluster *ClusterSummary `json:"cluster,omitempty"`
}

// Status says what an audit did with one object.
type Status string

// Statuses of an ObjectResult.
const (
	// StatusEvaluated: at least one rule applies and the evaluation succeeded.
	StatusEvaluated Status = "evaluated"
	// StatusSkipped: no rule covers the object's kind.
	StatusSkipped Status = "skipped"
	// StatusError: the evaluation failed; the error is in Report.Errors.
	StatusError Status = "error"
)

// ObjectResult is one object read by an audit and its position.
type ObjectResult struct {
	// Object identifies the object (its namespace defaulted as for findings).
	Object rules.ObjectRef
	// File, Index and Line locate the object as in Document.
	File  string
	Index int
	Line  int
	// Status says whether the object was evaluated, skipped or failed.
	Status Status
	// Findings is the number of findings for the object.
	Findings int
	// MeshMode is the mesh mode of a top-level workload's pods ("" for
	// other objects).
	MeshMode string
}

// Options tune an audit run.
type Options struct {
	// DefaultNamespace is the namespace of objects that name none. Default "default".
	DefaultNamespace string
	// PostInjection treats Pods as seen after sidecar injection (a live cluster).
	// Manifests are pre-injection, so the default is false.
	PostInjection bool
	// Context adds cluster state beyond the documents (nil for none). Objects in
	// the documents take precedence.
	Context rules.Context
}

// Run evaluates every document. The context is built from the documents
// themselves: namespaces and their labels, PeerAuthentications,
// AuthorizationPolicies, Services, webhook configurations and meshguard's
// managed NetworkPolicies (a mesh namespace without the managed
// mesh-default-deny in the documents is MESH0217).
func Run(ctx context.Context, ev rules.Evaluator, docs []Document, opts Options) *Report {
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	snap := rules.NewSnapshot()
	for _, d := range docs {
		snap.Add(d.Object, opts.DefaultNamespace)
	}
	var c rules.Context = snap
	if opts.Context != nil {
		c = layered{snap, opts.Context}
	}
	rep := &Report{}
	for _, d := range docs {
		rep.evaluate(ctx, ev, d, opts, c)
	}
	return rep
}

// evaluate audits one object into the report: it is counted, skipped when no
// rule covers its kind, and otherwise evaluated with the context c.
func (rep *Report) evaluate(ctx context.Context, ev rules.Evaluator, d Document, opts Options, c rules.Context) {
	rep.Objects++
	gk := schema.GroupKind{Group: groupOf(d.Object), Kind: fmt.Sprint(d.Object["kind"])}
	res := ObjectResult{Object: rules.ObjectRefOf(d.Object, opts.DefaultNamespace), File: d.File, Index: d.Index, Line: d.Line}
	if !covered(ev, gk) {
		if rep.Skipped == nil {
			rep.Skipped = map[string]int{}
		}
		rep.Skipped[fmt.Sprintf("%v/%v", d.Object["apiVersion"], d.Object["kind"])]++
		res.Status = StatusSkipped
		rep.Results = append(rep.Results, res)
		return
	}
	rep.Evaluated++
	fs, err := ev.Evaluate(ctx, &rules.Request{
		Object:           d.Object,
		DefaultNamespace: opts.DefaultNamespace,
		PostInjection:    opts.PostInjection,
		Context:          c,
	})
	if err != nil {
		rep.Errors = append(rep.Errors, InputError{File: d.File, Index: d.Index, Line: d.Line, Object: res.Object.String(), Err: err.Error()})
		res.Status = StatusError
		rep.Results = append(rep.Results, res)
		return
	}
	res.Status, res.Findings = StatusEvaluated, len(fs)
	if wm, ok := ev.(workloadModer); ok {
		if mode, workload := wm.WorkloadMeshMode(c, d.Object, opts.DefaultNamespace, opts.PostInjection); workload {
			res.MeshMode = mode
		}
	}
	rep.Results = append(rep.Results, res)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Code < fs[j].Code })
	for _, f := range fs {
		rep.Findings = append(rep.Findings, Located{Finding: f, File: d.File, Index: d.Index, Line: d.Line})
	}
}

// workloadModer is implemented by evaluators that can tell a workload's
// mesh mode (the compliance view's share of meshed workloads).
type workloadModer interface {
	WorkloadMeshMode(ctx rules.Context, obj rules.Object, defaultNamespace string, postInjection bool) (string, bool)
}

// kindCoverer is implemented by evaluators that can tell which kinds they judge.
type kindCoverer interface {
	RulesFor(schema.GroupKind) []*rules.Rule
}

func covered(ev rules.Evaluator, gk schema.GroupKind) bool {
	if kc, ok := ev.(kindCoverer); ok {
		return len(kc.RulesFor(gk)) > 0
	}
	return true
}

func groupOf(obj rules.Object) string {
	av, _ := obj["apiVersion"].(string)
	for i := 0; i < len(av); i++ {
		if av[i] == '/' {
			return av[:i]
		}
	}
	return ""
}

// MaxSeverity returns the highest severity among the findings (0 when none).
func (r *Report) MaxSeverity() rules.Severity {
	var m rules.Severity
	for _, f := range r.Findings {
		m = max(m, f.Severity)
	}
	return m
}

// Exit codes of `meshguard audit`.
const (
	ExitClean    = 0
	ExitFindings = 1
	ExitError    = 2
)

// ExitCode is 2 when some input could not be audited, 1 when a finding is at
// or above failOn, and 0 otherwise.
func (r *Report) ExitCode(failOn rules.Severity) int {
	if len(r.Errors) > 0 {
		return ExitError
	}
	if len(r.Findings) > 0 && r.MaxSeverity() >= failOn {
		return ExitFindings
	}
	return ExitClean
}

// layered looks up the documents first, then an extra context.
type layered struct {
	first  *rules.Snapshot
	second rules.Context
}

func (l layered) Namespace(name string) (rules.Namespace, bool) {
	if ns, ok := l.first.Namespace(name); ok {
		return ns, true
	}
	return l.second.Namespace(name)
}

func (l layered) PeerAuthentications(ns string) []rules.Object {
	return append(append([]rules.Object(nil), l.first.PeerAuthentications(ns)...), l.second.PeerAuthentications(ns)...)
}

func (l layered) WebhookBackends(ns string) []rules.WebhookBackend {
	out := l.first.WebhookBackends(ns)
	if wb, ok := l.second.(rules.WebhookBackends); ok {
		out = append(out, wb.WebhookBackends(ns)...)
	}
	return out
}

func (l layered) InjectorRevisions() ([]string, bool) {
	revs, known := l.first.InjectorRevisions()
	if ir, ok := l.second.(rules.InjectorRevisions); ok {
		more, k := ir.InjectorRevisions()
		revs, known = append(revs, more...), known || k
	}
	return revs, known
}

// ManagedNetworkPolicies merges the managed NetworkPolicies of both: known
// when either knows them.
func (l layered) ManagedNetworkPolicies(ns string) ([]string, bool) {
	names, known := l.first.ManagedNetworkPolicies(ns)
	if mp, ok := l.second.(rules.ManagedNetworkPolicies); ok {
		more, k := mp.ManagedNetworkPolicies(ns)
		names, known = append(names, more...), known || k
	}
	return names, known
}

func (l layered) AuthorizationPolicies(ns string) []rules.Object {
	return append(append([]rules.Object(nil), l.first.AuthorizationPolicies(ns)...), l.second.AuthorizationPolicies(ns)...)
}

// ServiceEntries merges the ServiceEntries of both.
func (l layered) ServiceEntries() []rules.Object {
	out := append([]rules.Object(nil), l.first.ServiceEntries()...)
	if se, ok := l.second.(rules.ServiceEntries); ok {
		out = append(out, se.ServiceEntries()...)
	}
	return out
}

// DestinationRules merges the DestinationRules of both.
func (l layered) DestinationRules() []rules.Object {
	out := append([]rules.Object(nil), l.first.DestinationRules()...)
	if dr, ok := l.second.(rules.DestinationRules); ok {
		out = append(out, dr.DestinationRules()...)
	}
	return out
}
