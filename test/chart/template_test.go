package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/posture"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/webhook"
)

// modes are the two certificate modes, with the values that select them.
var modes = []struct {
	name string
	args []string
}{
	{"self-signed", nil},
	{"cert-manager", []string{"--set", "certificates.mode=cert-manager"}},
}

func TestHelmLint(t *testing.T) {
	for _, m := range modes {
		t.Run("the chart lints cleanly in "+m.name+" mode", func(t *testing.T) {
			out, stderr, err := helm(t, append([]string{"lint", "--strict", chartDir}, m.args...)...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, stderr)
			}
		})
	}
}

// variant is a set of values and what the rendered chart must then hold.
type variant struct {
	name, release, namespace string
	args                     []string
	// fullname is the expected name of the webhook configurations and Service.
	fullname    string
	certManager bool
	enroll      string
	netpol      bool
}

var variants = []variant{
	{name: "the defaults render a self-signed install", release: "meshguard", namespace: "meshguard", fullname: "meshguard", netpol: true},
	{name: "cert-manager mode renders an Issuer, a Certificate and the CA injection annotation", release: "meshguard", namespace: "meshguard",
		args: []string{"--set", "certificates.mode=cert-manager"}, fullname: "meshguard", certManager: true, netpol: true},
	{name: "cert-manager mode with an existing ClusterIssuer renders no Issuer", release: "meshguard", namespace: "security",
		args:     []string{"--set", "certificates.mode=cert-manager", "--set", "certificates.certManager.issuerRef.name=corp-ca", "--set", "certificates.certManager.issuerRef.kind=ClusterIssuer"},
		fullname: "meshguard", certManager: true, netpol: true},
	{name: "enrollment renders the mutating webhook", release: "meshguard", namespace: "meshguard",
		args: []string{"--set", "webhook.enrollNamespaces=istio-injection=enabled"}, fullname: "meshguard", enroll: "istio-injection=enabled", netpol: true},
	{name: "another release name, namespace and failure policy", release: "guard", namespace: "platform",
		args: []string{"--set", "webhook.failurePolicy=Ignore", "--set", "webhook.timeoutSeconds=3", "--set", "networkPolicies.enabled=false", "--set", "webhook.excludeNamespaces={kube-system,tools}",
			"--set", "webhook.skipUnchangedUpdates=false", "--set", "webhook.skipOwnedWorkloads=false"},
		fullname: "guard-meshguard", netpol: false},
}

func TestTemplate(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := render(t, v.release, v.namespace, v.args...)
			checkWebhooks(t, c, cat, v)
			checkPodSecurity(t, c, v)
			checkCertificates(t, c, v)
			checkRBAC(t, c, v)
			checkServeFlags(t, c, v)
			checkUninstallHook(t, c, v)
			checkPolicy(t, c, cat, v)
			if again := render(t, v.release, v.namespace, v.args...); again.raw != c.raw {
				t.Errorf("two renders differ: GitOps tools would see drift on every sync")
			}
			if strings.Contains(c.raw, "caBundle:") {
				t.Errorf("the rendered chart sets caBundle; it is injected in the cluster and must not be rendered")
			}
		})
	}
}

// TestTemplateCoversCatalog is the cross-check STYLE.md asks for: every kind
// and served version the catalog matches appears in the rendered rules (or
// the API server never sends it), plus pods/ephemeralcontainers.
func TestTemplateCoversCatalog(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		t.Run("every catalog kind and version is registered in "+m.name+" mode", func(t *testing.T) {
			c := render(t, "meshguard", "meshguard", m.args...)
			var vwc admissionregistrationv1.ValidatingWebhookConfiguration
			into(t, c.get(t, "ValidatingWebhookConfiguration", "meshguard"), &vwc)
			covered := map[string]bool{} // group/version/resource
			for _, wh := range vwc.Webhooks {
				for _, r := range wh.Rules {
					if !slices.Contains(r.Operations, admissionregistrationv1.Create) {
						continue
					}
					for _, g := range r.APIGroups {
						for _, ver := range r.APIVersions {
							for _, res := range r.Resources {
								covered[g+"/"+ver+"/"+res] = true
							}
						}
					}
				}
			}
			kinds := cat.Kinds()
			if len(kinds) == 0 {
				t.Fatal("the catalog covers no kinds")
			}
			for _, k := range kinds {
				for _, ver := range k.Versions {
					if !covered[k.Group+"/"+ver+"/"+k.Resource] {
						t.Errorf("%s (%s/%s, resource %s) is matched by a rule but not registered for CREATE in the chart's ValidatingWebhookConfiguration", k.Kind, k.Group, ver, k.Resource)
					}
				}
			}
			if !covered["/v1/pods/ephemeralcontainers"] {
				t.Errorf("pods/ephemeralcontainers is not registered: kubectl debug could add a privileged container unchecked")
			}
		})
	}
}

func checkWebhooks(t *testing.T, c *chart, cat *rules.Catalog, v variant) {
	t.Helper()
	exclude := append(append([]string{}, excludedNamespaces(t, v)...), v.namespace)
	slices.Sort(exclude)
	exclude = slices.Compact(exclude)
	opts := webhook.ConfigOptions{ProtectNetworkPolicies: v.netpol, Enroll: v.enroll != "", ExcludeNamespaces: exclude,
		JudgeUnchangedUpdates: slices.Contains(v.args, "webhook.skipUnchangedUpdates=false"),
		JudgeOwnedWorkloads:   slices.Contains(v.args, "webhook.skipOwnedWorkloads=false")}
	want := webhook.ValidatingConfiguration(cat, opts)
	var got admissionregistrationv1.ValidatingWebhookConfiguration
	into(t, c.get(t, "ValidatingWebhookConfiguration", v.fullname), &got)
	checkInjection(t, got.Annotations, v)

	fp := admissionregistrationv1.Fail
	timeout := int32(5)
	if slices.Contains(v.args, "webhook.failurePolicy=Ignore") {
		fp = admissionregistrationv1.Ignore
	}
	if slices.Contains(v.args, "webhook.timeoutSeconds=3") {
		timeout = 3
	}
	if len(got.Webhooks) != len(want.Webhooks) {
		t.Fatalf("the chart renders %d validating webhooks, webhook.ValidatingConfiguration %d", len(got.Webhooks), len(want.Webhooks))
	}
	for i, w := range want.Webhooks {
		g := got.Webhooks[i]
		if g.Name != w.Name {
			t.Errorf("validating webhook %d is %q, want %q", i, g.Name, w.Name)
			continue
		}
		if !equality.Semantic.DeepEqual(g.Rules, w.Rules) {
			wantYAML, _ := yaml.Marshal(w.Rules)
			t.Errorf("webhook %s: the rules differ from the catalog's (webhook.ValidatingConfiguration); copy these into templates/validatingwebhookconfiguration.yaml:\n%s", w.Name, wantYAML)
		}
		guard := w.Name == "netpol-guard.meshguard.io" || w.Name == "authz-guard.meshguard.io"
		if !guard && !matchConditionsEqual(g.MatchConditions, w.MatchConditions) {
			wantYAML, _ := yaml.Marshal(w.MatchConditions)
			t.Errorf("webhook %s: the matchConditions differ from webhook.ValidatingConfiguration's; copy these into templates/validatingwebhookconfiguration.yaml:\n%s", w.Name, wantYAML)
		}
		checkCommon(t, w.Name, g.AdmissionReviewVersions, g.SideEffects, admissionregistrationv1.SideEffectClassNoneOnDryRun, g.MatchPolicy, g.TimeoutSeconds, timeout)
		if g.FailurePolicy == nil || *g.FailurePolicy != fp {
			t.Errorf("webhook %s: failurePolicy %v, want %s", w.Name, g.FailurePolicy, fp)
		}
		if !equality.Semantic.DeepEqual(g.NamespaceSelector, w.NamespaceSelector) {
			t.Errorf("webhook %s: namespaceSelector %+v, want %+v", w.Name, g.NamespaceSelector, w.NamespaceSelector)
		}
		if !equality.Semantic.DeepEqual(g.ObjectSelector, w.ObjectSelector) {
			t.Errorf("webhook %s: objectSelector %+v, want %+v", w.Name, g.ObjectSelector, w.ObjectSelector)
		}
		checkClientConfig(t, w.Name, g.ClientConfig, webhook.ValidatePath, v)
		if guard {
			sa := fmt.Sprintf("system:serviceaccount:%s:%s", v.namespace, v.fullname)
			if len(g.MatchConditions) != 1 || !strings.Contains(g.MatchConditions[0].Expression, "'"+sa+"'") {
				t.Errorf("webhook %s: matchConditions %+v do not skip meshguard's own service account %s", w.Name, g.MatchConditions, sa)
			}
		}
	}

	mwc := c.find("MutatingWebhookConfiguration", v.fullname)
	if v.enroll == "" {
		if mwc != nil {
			t.Errorf("a MutatingWebhookConfiguration is rendered without webhook.enrollNamespaces")
		}
		return
	}
	var gotM admissionregistrationv1.MutatingWebhookConfiguration
	into(t, c.get(t, "MutatingWebhookConfiguration", v.fullname), &gotM)
	checkInjection(t, gotM.Annotations, v)
	wantM := webhook.MutatingConfiguration(opts)
	if len(gotM.Webhooks) != 1 {
		t.Fatalf("mutating webhooks: %d, want 1", len(gotM.Webhooks))
	}
	g, w := gotM.Webhooks[0], wantM.Webhooks[0]
	if g.Name != w.Name || !equality.Semantic.DeepEqual(g.Rules, w.Rules) || !equality.Semantic.DeepEqual(g.NamespaceSelector, w.NamespaceSelector) ||
		!equality.Semantic.DeepEqual(g.FailurePolicy, w.FailurePolicy) || !equality.Semantic.DeepEqual(g.ReinvocationPolicy, w.ReinvocationPolicy) {
		gy, _ := yaml.Marshal(g)
		wy, _ := yaml.Marshal(w)
		t.Errorf("the mutating webhook differs from webhook.MutatingConfiguration:\nrendered:\n%s\nwant:\n%s", gy, wy)
	}
	checkCommon(t, g.Name, g.AdmissionReviewVersions, g.SideEffects, admissionregistrationv1.SideEffectClassNone, g.MatchPolicy, g.TimeoutSeconds, timeout)
	checkClientConfig(t, g.Name, g.ClientConfig, webhook.MutatePath, v)
}

// excludedNamespaces are the namespaces the variant's values exclude from
// the workload webhooks: the system namespaces and webhook.excludeNamespaces.
func excludedNamespaces(t *testing.T, v variant) []string {
	out := rules.DefaultSystemNamespaces()
	for _, a := range v.args {
		if rest, ok := strings.CutPrefix(a, "webhook.excludeNamespaces="); ok {
			out = append(out, strings.Split(strings.Trim(rest, "{}"), ",")...)
		}
	}
	return out
}

func checkCommon(t *testing.T, name string, versions []string, se *admissionregistrationv1.SideEffectClass, wantSE admissionregistrationv1.SideEffectClass, mp *admissionregistrationv1.MatchPolicyType, to *int32, timeout int32) {
	t.Helper()
	if !slices.Equal(versions, []string{"v1"}) {
		t.Errorf("webhook %s: admissionReviewVersions %v, want [v1]", name, versions)
	}
	if se == nil || *se != wantSE {
		t.Errorf("webhook %s: sideEffects %v, want %s", name, se, wantSE)
	}
	if mp == nil || *mp != admissionregistrationv1.Equivalent {
		t.Errorf("webhook %s: matchPolicy is not Equivalent", name)
	}
	if to == nil || *to != timeout {
		t.Errorf("webhook %s: timeoutSeconds %v, want %d", name, to, timeout)
	}
}

func checkClientConfig(t *testing.T, name string, cc admissionregistrationv1.WebhookClientConfig, path string, v variant) {
	t.Helper()
	s := cc.Service
	if s == nil || s.Name != v.fullname || s.Namespace != v.namespace || s.Path == nil || *s.Path != path || s.Port == nil || *s.Port != 443 || cc.URL != nil {
		t.Errorf("webhook %s: clientConfig %+v, want Service %s/%s:443%s", name, cc, v.namespace, v.fullname, path)
	}
}

func checkInjection(t *testing.T, ann map[string]string, v variant) {
	t.Helper()
	got, ok := ann["cert-manager.io/inject-ca-from"]
	switch {
	case v.certManager && got != v.namespace+"/"+v.fullname:
		t.Errorf("cert-manager mode: inject-ca-from is %q, want %s/%s", got, v.namespace, v.fullname)
	case !v.certManager && ok:
		t.Errorf("self-signed mode carries cert-manager.io/inject-ca-from")
	}
}

func checkPodSecurity(t *testing.T, c *chart, v variant) {
	t.Helper()
	d := deployment(t, c, v.fullname)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	restricted(t, "Deployment", pod)
	if len(pod.TopologySpreadConstraints) == 0 || pod.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("the Deployment does not spread its pods across nodes: %+v", pod.TopologySpreadConstraints)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil {
		t.Errorf("the Deployment has no pod anti-affinity")
	}
	ctr := pod.Containers[0]
	if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet.Path != "/healthz" || ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes are not /healthz and /readyz")
	}
	if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Errorf("POD_NAMESPACE is not set from the downward API")
	}
	var pdb policyv1.PodDisruptionBudget
	into(t, c.get(t, "PodDisruptionBudget", v.fullname), &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	for _, e := range ctr.Env {
		if e.Name == "GOMEMLIMIT" || e.Name == "GOGC" {
			t.Errorf("the container sets %s, which overrides --memory-limit-ratio and --gc-percent: %+v", e.Name, e)
		}
	}
	var svc corev1.Service
	into(t, c.get(t, "Service", v.fullname), &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.String() != "webhook" {
		t.Errorf("webhook Service ports %+v, want 443 -> webhook", svc.Spec.Ports)
	}
	if !slices.ContainsFunc(ctr.Ports, func(p corev1.ContainerPort) bool { return p.Name == "webhook" && p.ContainerPort == 9443 }) {
		t.Errorf("container port webhook is not 9443: %+v", ctr.Ports)
	}
	c.get(t, "Service", v.fullname+"-metrics")
}

// restricted checks the restricted Pod Security Standard's fields.
func restricted(t *testing.T, what string, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext is not runAsNonRoot with RuntimeDefault seccomp: %+v", what, psc)
	}
	for _, ctr := range pod.Containers {
		sc := ctr.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: container %s has no securityContext", what, ctr.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: container %s: root filesystem is writable", what, ctr.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: container %s: privilege escalation is allowed", what, ctr.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: container %s: capabilities are not drop [ALL]: %+v", what, ctr.Name, sc.Capabilities)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			t.Errorf("%s: container %s: runAsNonRoot is not set", what, ctr.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s: container %s is privileged", what, ctr.Name)
		}
	}
}

func checkCertificates(t *testing.T, c *chart, v variant) {
	t.Helper()
	secret := v.fullname + "-tls"
	d := deployment(t, c, v.fullname)
	var certs *corev1.Volume
	for i, vol := range d.Spec.Template.Spec.Volumes {
		if vol.Name == "certs" {
			certs = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	switch {
	case certs == nil:
		t.Errorf("no certs volume")
	case v.certManager && (certs.Secret == nil || certs.Secret.SecretName != secret || len(certs.Secret.Items) != 3):
		// cert-manager mode serves the mounted Secret, projecting only the
		// certificate, key and CA.
		t.Errorf("cert-manager mode must mount Secret %s with tls.crt, tls.key and ca.crt only: %+v", secret, certs)
	case !v.certManager && (certs.EmptyDir == nil || certs.Secret != nil):
		// self-signed mode writes the files itself from the Secret it keeps: the
		// CA key stays out of the pod's filesystem and no kubelet sync is awaited.
		t.Errorf("self-signed mode must use a writable emptyDir for the certificate files: %+v", certs)
	}
	if !v.certManager {
		if c.find("Certificate", "") != nil || c.find("Issuer", "") != nil {
			t.Errorf("self-signed mode renders cert-manager resources")
		}
		c.get(t, "Secret", secret)
		return
	}
	if c.find("Secret", secret) != nil {
		t.Errorf("cert-manager mode renders Secret %s, which cert-manager owns", secret)
	}
	crt := c.get(t, "Certificate", v.fullname)
	if got, _, _ := unstructuredString(crt.Object, "spec", "secretName"); got != secret {
		t.Errorf("Certificate secretName %q, want %q", got, secret)
	}
	kind, _, _ := unstructuredString(crt.Object, "spec", "issuerRef", "kind")
	issuer := c.find("Issuer", "")
	if kind == "ClusterIssuer" {
		if issuer != nil {
			t.Errorf("an Issuer is rendered although issuerRef names a ClusterIssuer")
		}
	} else if issuer == nil {
		t.Errorf("no Issuer is rendered for the Certificate")
	}
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

func checkRBAC(t *testing.T, c *chart, v variant) {
	t.Helper()
	var cr rbacv1.ClusterRole
	into(t, c.get(t, "ClusterRole", v.fullname), &cr)
	for _, r := range cr.Rules {
		writes := slices.ContainsFunc(r.Verbs, func(s string) bool { return s != "get" && s != "list" && s != "watch" })
		switch {
		case slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.APIGroups, "*"):
			t.Errorf("ClusterRole rule with a wildcard: %+v", r)
		case !writes:
		case slices.Contains(r.Resources, "validatingwebhookconfigurations"):
			if !slices.Equal(r.ResourceNames, []string{v.fullname}) {
				t.Errorf("the ClusterRole may change webhook configurations other than its own: %+v", r)
			}
			if v.certManager {
				t.Errorf("cert-manager mode: meshguard needs no write access to webhook configurations: %+v", r)
			}
		case slices.Equal(r.Resources, []string{"networkpolicies"}):
			if !v.netpol {
				t.Errorf("NetworkPolicy write access without the controller: %+v", r)
			}
		case slices.Equal(r.Resources, []string{"events"}):
		case slices.Equal(r.Resources, []string{"reports", "clusterreports"}) || slices.Equal(r.Resources, []string{"policyreports", "clusterpolicyreports"}):
			if !slices.Equal(r.Verbs, []string{"get", "create", "update"}) {
				t.Errorf("the background audit needs get, create and update on its reports, nothing more: %+v", r)
			}
		default:
			t.Errorf("unexpected cluster-wide write access: %+v", r)
		}
	}
	checkPostureRBAC(t, cr)
	var role rbacv1.Role
	into(t, c.get(t, "Role", v.fullname), &role)
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "secrets") && (slices.Contains(r.Verbs, "update") || slices.Contains(r.Verbs, "patch")) &&
			!slices.Equal(r.ResourceNames, []string{v.fullname + "-tls"}) {
			t.Errorf("the Role may change Secrets other than its own: %+v", r)
		}
	}
}

// checkServeFlags parses the Deployment's arguments with the real `meshguard
// serve` command (its run function replaced), so every flag the chart passes
// exists and the options validate.
func checkServeFlags(t *testing.T, c *chart, v variant) {
	t.Helper()
	t.Setenv("POD_NAMESPACE", v.namespace)
	args := deployment(t, c, v.fullname).Spec.Template.Spec.Containers[0].Args
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("the container does not run serve: %v", args)
	}
	var got *app.ServeOptions
	var out, errOut bytes.Buffer
	cmd := app.NewServeCommand(app.Streams{Out: &out, Err: &errOut}, func(_ context.Context, _ app.Streams, o *app.ServeOptions) error {
		got = o
		return nil
	})
	cmd.SetArgs(args[1:])
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("meshguard serve rejects the chart's arguments: %v\nargs: %s", err, strings.Join(args, " "))
	}
	w := got.Webhook
	if w.CertDir != "/var/run/meshguard/certs" || w.Port != 9443 || w.PolicyFile != "/etc/meshguard/policy.yaml" || !w.LeaderElection {
		t.Errorf("serve options: cert dir %q, port %d, policy %q, leader election %v", w.CertDir, w.Port, w.PolicyFile, w.LeaderElection)
	}
	if want := fmt.Sprintf("system:serviceaccount:%s:%s", v.namespace, v.fullname); w.Rules.ControllerUsername != want {
		t.Errorf("--controller-username %q, want %q", w.Rules.ControllerUsername, want)
	}
	if !got.BackgroundAudit || got.Posture.Interval != 10*time.Minute || got.Posture.Format != "openreports" {
		t.Errorf("background audit %v, interval %s, format %q: want on, 10m, openreports (the chart's defaults)", got.BackgroundAudit, got.Posture.Interval, got.Posture.Format)
	}
	if got.NetworkPolicies != v.netpol {
		t.Errorf("--netpol %v, want %v", got.NetworkPolicies, v.netpol)
	}
	// The one list of system namespaces (rules.DefaultSystemNamespaces)
	// reaches the rules and, with istio-system and the release namespace,
	// the NetworkPolicy controller.
	if !slices.Equal(w.Rules.SystemNamespaces, rules.DefaultSystemNamespaces()) {
		t.Errorf("--system-namespaces %v, want rules.DefaultSystemNamespaces() %v", w.Rules.SystemNamespaces, rules.DefaultSystemNamespaces())
	}
	if want := append(rules.DefaultNetpolExcludeNamespaces(), v.namespace); v.netpol && !slices.Equal(got.Netpol.ExcludeNamespaces, want) {
		t.Errorf("--netpol-exclude-namespaces %v, want rules.DefaultNetpolExcludeNamespaces() and the release namespace %v", got.Netpol.ExcludeNamespaces, want)
	}
	if w.EnrollLabel != v.enroll {
		t.Errorf("--enroll-namespaces %q, want %q", w.EnrollLabel, v.enroll)
	}
	wantMode := "self-signed"
	if v.certManager {
		wantMode = "cert-manager"
	}
	if string(got.Certs.Mode) != wantMode || got.Certs.SecretName != v.fullname+"-tls" || got.Certs.ServiceName != v.fullname || got.Certs.Namespace != v.namespace {
		t.Errorf("certificate options: %+v", got.Certs)
	}
	if !v.certManager && (got.Certs.ValidatingWebhookConfiguration != v.fullname || got.Certs.MutatingWebhookConfiguration != map[bool]string{true: v.fullname}[v.enroll != ""]) {
		t.Errorf("self-signed mode injects the CA into %q and %q", got.Certs.ValidatingWebhookConfiguration, got.Certs.MutatingWebhookConfiguration)
	}
	if v.certManager && got.Certs.CertificateName != v.fullname {
		t.Errorf("--cert-manager-certificate %q, want %q", got.Certs.CertificateName, v.fullname)
	}
}

// uninstallArgs returns the pre-delete hook Job's arguments.
func uninstallArgs(t testing.TB, c *chart, fullname string) []string {
	t.Helper()
	var job batchv1.Job
	o := c.get(t, "Job", fullname+"-uninstall")
	if o.GetAnnotations()["helm.sh/hook"] != "pre-delete" {
		t.Errorf("the uninstall Job is not a pre-delete hook: %v", o.GetAnnotations())
	}
	into(t, o, &job)
	return job.Spec.Template.Spec.Containers[0].Args
}

func checkUninstallHook(t *testing.T, c *chart, v variant) {
	t.Helper()
	var job batchv1.Job
	into(t, c.get(t, "Job", v.fullname+"-uninstall"), &job)
	restricted(t, "uninstall Job", job.Spec.Template.Spec)
	args := uninstallArgs(t, c, v.fullname)
	if len(args) == 0 || args[0] != "uninstall" {
		t.Fatalf("the hook does not run uninstall: %v", args)
	}
	var got *app.UninstallOptions
	var out bytes.Buffer
	cmd := app.NewUninstallCommand(app.Streams{Out: &out, Err: &out}, func(_ context.Context, _ app.Streams, o *app.UninstallOptions) error {
		got = o
		return nil
	})
	cmd.SetArgs(args[1:])
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("meshguard uninstall rejects the hook's arguments: %v", err)
	}
	if got.ValidatingWebhookConfiguration != v.fullname || got.MutatingWebhookConfiguration != v.fullname {
		t.Errorf("the hook deletes %q and %q, want %q", got.ValidatingWebhookConfiguration, got.MutatingWebhookConfiguration, v.fullname)
	}
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"} {
		o := c.get(t, kind, v.fullname+"-uninstall")
		if o.GetAnnotations()["helm.sh/hook"] != "pre-delete" {
			t.Errorf("%s %s-uninstall is not a pre-delete hook", kind, v.fullname)
		}
	}
}

// checkPolicy loads the rendered admin policy as meshguard serve does.
func checkPolicy(t *testing.T, c *chart, cat *rules.Catalog, v variant) {
	t.Helper()
	var cm corev1.ConfigMap
	into(t, c.get(t, "ConfigMap", v.fullname+"-policy"), &cm)
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(cm.Data["policy.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := webhook.LoadPolicy(p)
	if err != nil {
		t.Fatalf("the rendered policy does not load: %v\n%s", err, cm.Data["policy.yaml"])
	}
	if err := pol.Validate(cat); err != nil {
		t.Fatalf("the rendered policy is invalid: %v", err)
	}
}

func TestPolicyValues(t *testing.T) {
	values := `policy:
  mode: warn
  namespaceModes: ["team-*"]
  objectExemptions: ["legacy-*"]
  actions: {MESH0030: warn, MESH0150: audit}
  admins: {groups: [platform-admins], users: [alice]}
  exemptions:
    - name: legacy-vpn
      codes: [MESH0150]
      namespaces: ["legacy-*"]
      names: ["vpn-*"]
      selector: {matchLabels: {app: vpn}}
      reason: vendor appliance until Q1 (SEC-1234)
      expires: "2027-03-31T00:00:00Z"
`
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	c := render(t, "meshguard", "meshguard", "-f", f)
	var cm corev1.ConfigMap
	into(t, c.get(t, "ConfigMap", "meshguard-policy"), &cm)
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(cm.Data["policy.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := webhook.LoadPolicy(p)
	if err != nil {
		t.Fatalf("the rendered policy does not load: %v\n%s", err, cm.Data["policy.yaml"])
	}
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if err := pol.Validate(cat); err != nil {
		t.Fatal(err)
	}
	if pol.Mode != webhook.ModeWarn || len(pol.Exemptions) != 1 || pol.Exemptions[0].Expires.Year() != 2027 ||
		!pol.IsAdmin("alice", nil) || !pol.IsAdmin("bob", []string{"platform-admins"}) || pol.Actions["MESH0150"] != webhook.ActionAudit {
		t.Errorf("the rendered policy lost values: %+v", pol)
	}
	// A changed policy rolls the pods.
	if deployment(t, c, "meshguard").Spec.Template.Annotations["checksum/policy"] == deployment(t, render(t, "meshguard", "meshguard"), "meshguard").Spec.Template.Annotations["checksum/policy"] {
		t.Errorf("the policy checksum annotation does not change with the policy")
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown certificate mode", []string{"--set", "certificates.mode=vault"}, "/certificates/mode"},
		{"a failure policy that is not Fail or Ignore", []string{"--set", "webhook.failurePolicy=Sometimes"}, "/webhook/failurePolicy"},
		{"a timeout above 30 seconds", []string{"--set", "webhook.timeoutSeconds=60"}, "/webhook/timeoutSeconds"},
		{"a misspelt value", []string{"--set", "replicas=3"}, "additional properties 'replicas' not allowed"},
		{"an exemption without a reason or expiry", []string{"--set", "policy.exemptions[0].name=x", "--set", "policy.exemptions[0].codes={MESH0150}", "--set", "policy.exemptions[0].namespaces={a}"}, "missing properties 'reason', 'expires'"},
		{"an unknown policy mode", []string{"--set", "policy.mode=off"}, "/policy/mode"},
		{"an API server port above 65535", []string{"--set", "ownNetworkPolicy.apiServer.ports={70000}"}, "/ownNetworkPolicy/apiServer/ports/0"},
		{"a misspelt NetworkPolicy value", []string{"--set", "ownNetworkPolicy.webhookSources={}"}, "additional properties 'webhookSources' not allowed"},
	} {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			_, stderr, err := helm(t, append([]string{"template", "meshguard", chartDir}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template accepted %v", tc.args)
			}
			if !strings.Contains(stderr, "values don't meet the specifications of the schema") || !strings.Contains(stderr, tc.want) {
				t.Errorf("the error does not name the problem (%q):\n%s", tc.want, stderr)
			}
		})
	}
}

// matchConditionsEqual compares match conditions by name and by expression
// with runs of white space collapsed (the chart folds long expressions).
func matchConditionsEqual(a, b []admissionregistrationv1.MatchCondition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || strings.Join(strings.Fields(a[i].Expression), " ") != strings.Join(strings.Fields(b[i].Expression), " ") {
			return false
		}
	}
	return true
}

// checkPostureRBAC: with the background audit on (the chart's default), the
// ClusterRole can read every kind the catalog covers (Binding aside: it
// cannot be listed), and write the report kinds of exactly one format.
func checkPostureRBAC(t *testing.T, cr rbacv1.ClusterRole) {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	can := func(group, resource string, verbs ...string) bool {
		for _, verb := range verbs {
			ok := false
			for _, r := range cr.Rules {
				if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) && len(r.ResourceNames) == 0 {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	if !can("openreports.io", "reports", "create") && !can("wgpolicyk8s.io", "policyreports", "create") {
		return // the background audit is off in this variant
	}
	for _, k := range posture.BackgroundKinds(cat.Kinds()) {
		if !can(k.Group, k.Resource, "get", "list", "watch") {
			t.Errorf("the background audit cannot read %s/%s", k.Group, k.Resource)
		}
	}
	if can("openreports.io", "reports", "create") == can("wgpolicyk8s.io", "policyreports", "create") {
		t.Error("the ClusterRole writes the reports of both formats or neither")
	}
	for _, r := range []string{"reports", "clusterreports", "policyreports", "clusterpolicyreports"} {
		for _, g := range []string{"openreports.io", "wgpolicyk8s.io"} {
			if can(g, r, "delete") || can(g, r, "list") {
				t.Errorf("the ClusterRole may list or delete %s.%s", r, g)
			}
		}
	}
}
