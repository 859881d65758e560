package reports

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshguard/meshguard/rules"
)

func finding(code string, sev rules.Severity, kind, ns, name, msg string) rules.Finding {
	apiVersion := "v1"
	if kind == "Deployment" {
		apiVersion = "apps/v1"
	}
	return rules.Finding{Code: code, Rule: "slug", Title: "Title " + code, Severity: sev, Message: msg, Remediation: "Fix it.",
		Object: rules.ObjectRef{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name}}
}

func TestBuildIsOrderedAndComplete(t *testing.T) {
	fs := []rules.Finding{
		finding("MESH0160", rules.SeverityHigh, "Pod", "shop", "b", "host network"),
		finding("MESH0150", rules.SeverityCritical, "Deployment", "shop", "a", "NET_ADMIN"),
		finding("MESH0150", rules.SeverityCritical, "Pod", "shop", "b", "NET_ADMIN"),
	}
	now := metav1.Timestamp{Seconds: 100, Nanos: 5}
	a := Build("shop", fs, now, 0)
	b := Build("shop", []rules.Finding{fs[2], fs[0], fs[1]}, now, 0)
	ua, _ := a.Object(FormatOpenReports)
	ub, _ := b.Object(FormatOpenReports)
	if !SameContent(ua, ub) {
		t.Fatal("the same findings in another order build another report")
	}
	var got []string
	for _, r := range a.Results {
		got = append(got, r.Subject.Kind+"/"+r.Subject.Name+" "+r.Rule)
		if r.Timestamp.Nanos != 0 || r.Timestamp.Seconds != 100 {
			t.Errorf("timestamp %+v: want seconds only", r.Timestamp)
		}
		if r.Message != "Fix it." || r.Properties[PropertyDetails] == "" || r.Policy != r.Rule+"-slug" {
			t.Errorf("result %+v: the fix is the message, the details a property, the policy code-slug", r)
		}
	}
	want := []string{"Deployment/a MESH0150", "Pod/b MESH0150", "Pod/b MESH0160"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if ua.GetKind() != "Report" || ua.GetNamespace() != "shop" || ua.GetName() != Name || ua.GetLabels()[LabelManagedBy] != ManagedBy {
		t.Errorf("object identity: %s %s/%s %v", ua.GetKind(), ua.GetNamespace(), ua.GetName(), ua.GetLabels())
	}
	if n, _, _ := unstructured.NestedInt64(ua.Object, "summary", "fail"); n != 3 {
		t.Errorf("summary.fail %d, want 3", n)
	}
}

func TestBuildKeepsTheMostSevereWhenCapped(t *testing.T) {
	var fs []rules.Finding
	for i := 0; i < 10; i++ {
		fs = append(fs, finding("MESH0300", rules.SeverityLow, "Pod", "shop", fmt.Sprintf("p%d", i), "low"))
	}
	fs = append(fs, finding("MESH0150", rules.SeverityCritical, "Pod", "shop", "z", "NET_ADMIN"))
	r := Build("shop", fs, metav1.Timestamp{}, 3)
	if len(r.Results) != 3 || r.Findings != 11 {
		t.Fatalf("%d results of %d findings, want 3 of 11", len(r.Results), r.Findings)
	}
	crit := false
	for _, x := range r.Results {
		crit = crit || x.Rule == "MESH0150"
	}
	if !crit {
		t.Errorf("the Critical finding was dropped by the cap: %+v", r.Results)
	}
	u, _ := r.Object(FormatOpenReports)
	if n, _, _ := unstructured.NestedInt64(u.Object, "configuration", "limits", "maxResults"); n != 3 {
		t.Errorf("configuration.limits.maxResults %d, want 3", n)
	}
}

func TestTimestampsCarryOverAndContentCompares(t *testing.T) {
	for _, f := range Formats() {
		t.Run(string(f), func(t *testing.T) {
			fs := []rules.Finding{finding("MESH0150", rules.SeverityCritical, "Pod", "shop", "a", "NET_ADMIN")}
			old := Build("shop", fs, metav1.Timestamp{Seconds: 100}, 0)
			stored, err := old.Object(f)
			if err != nil {
				t.Fatal(err)
			}
			stored.SetResourceVersion("7")
			parsed, err := Parse(stored)
			if err != nil {
				t.Fatal(err)
			}
			again := Build("shop", fs, metav1.Timestamp{Seconds: 200}, 0)
			u, _ := again.Object(f)
			if SameContent(u, stored) {
				t.Fatal("a new timestamp compares equal: the comparison ignores results")
			}
			again.KeepTimestamps(parsed)
			u, _ = again.Object(f)
			if !SameContent(u, stored) {
				t.Fatalf("an unchanged report differs from the stored one:\n%v\n%v", u.Object, stored.Object)
			}
			more := Build("shop", append(fs, finding("MESH0160", rules.SeverityHigh, "Pod", "shop", "a", "host network")), metav1.Timestamp{Seconds: 300}, 0)
			more.KeepTimestamps(parsed)
			if more.Results[0].Timestamp.Seconds != 100 || more.Results[1].Timestamp.Seconds != 300 {
				t.Errorf("timestamps %+v: the old result keeps its time, the new one gets now", more.Results)
			}
			mu, _ := more.Object(f)
			CopyContent(mu, stored)
			if !SameContent(mu, stored) || stored.GetResourceVersion() != "7" {
				t.Error("CopyContent did not copy the content or lost the resourceVersion")
			}
		})
	}
}

func TestScopeOf(t *testing.T) {
	for ref, want := range map[rules.ObjectRef]string{
		{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "a"}:                         "shop",
		{APIVersion: "v1", Kind: "Namespace", Name: "shop"}:                                   "shop",
		{APIVersion: "authentication.istio.io/v1alpha1", Kind: "MeshPolicy", Name: "default"}: "",
	} {
		if got := ScopeOf(ref); got != want {
			t.Errorf("ScopeOf(%s) = %q, want %q", ref, got, want)
		}
	}
}

func TestBuildAllAlwaysHasTheClusterReport(t *testing.T) {
	reps := BuildAll(nil, []string{"b", "a", "b"}, metav1.Timestamp{}, 0)
	if len(reps) != 3 || reps[0].Namespace != "" || reps[1].Namespace != "a" || reps[2].Namespace != "b" {
		t.Errorf("reports %+v", reps)
	}
}

// An object that could not be evaluated is an error result in both formats,
// counted in summary.error beside the findings, and the compliance view
// travels as an annotation that SameContent compares and CopyContent copies.
func TestErrorResultsAndComplianceRoundTrip(t *testing.T) {
	now := metav1.Timestamp{Seconds: 100}
	for _, f := range Formats() {
		rep := Build("shop", []rules.Finding{finding("MESH0150", rules.SeverityCritical, "Deployment", "shop", "a", "NET_ADMIN")}, now, 0)
		rep.AddError(Subject{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy", Namespace: "shop", Name: "odd"}, "spec.rules: expected array, got string", now)
		rep.Compliance = &Compliance{MeshMode: "sidecar", MTLS: rules.MTLSResolution{Mode: "STRICT", Level: "namespace", Source: "shop/default"}, Workloads: 2, Meshed: 1}
		u, err := rep.Object(f)
		if err != nil {
			t.Fatal(err)
		}
		if n, _, _ := unstructured.NestedInt64(u.Object, "summary", "error"); n != 1 {
			t.Errorf("%s: summary.error = %d, want 1", f, n)
		}
		if n, _, _ := unstructured.NestedInt64(u.Object, "summary", "fail"); n != 1 {
			t.Errorf("%s: summary.fail = %d, want 1", f, n)
		}
		back, err := Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		var outcomes []string
		for _, r := range back.Results {
			outcomes = append(outcomes, r.Subject.Kind+" "+r.outcome())
		}
		if fmt.Sprint(outcomes) != "[AuthorizationPolicy error Deployment fail]" || back.Errors != 1 || back.Findings != 1 {
			t.Errorf("%s: parsed %v errors %d findings %d", f, outcomes, back.Errors, back.Findings)
		}
		if back.Compliance == nil || back.Compliance.MTLS.Source != "shop/default" || back.Compliance.Meshed != 1 {
			t.Errorf("%s: compliance %+v", f, back.Compliance)
		}

		// A changed compliance view is a changed report; CopyContent carries it.
		stored := u.DeepCopy()
		rep.Compliance.Meshed = 2
		desired, _ := rep.Object(f)
		if SameContent(desired, stored) {
			t.Errorf("%s: a changed compliance view compares equal", f)
		}
		CopyContent(desired, stored)
		if !SameContent(desired, stored) {
			t.Errorf("%s: CopyContent did not carry the compliance view", f)
		}
		// A report without one (audit -o openreports) removes it.
		rep.Compliance = nil
		desired, _ = rep.Object(f)
		CopyContent(desired, stored)
		if _, ok := stored.GetAnnotations()[AnnotationCompliance]; ok {
			t.Errorf("%s: CopyContent kept a stale compliance view", f)
		}
	}
}

// A malformed compliance annotation is an error naming it, not a panic.
func TestParseMalformedCompliance(t *testing.T) {
	u, _ := Build("shop", nil, metav1.Timestamp{Seconds: 1}, 0).Object(FormatOpenReports)
	u.SetAnnotations(map[string]string{AnnotationCompliance: "{not json"})
	if _, err := Parse(u); err == nil || !strings.Contains(err.Error(), AnnotationCompliance) {
		t.Errorf("Parse: %v", err)
	}
}
