package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// meshguard judges with the semantics of the Istio that runs: behaviour the
// rules depend on changed between releases. The version comes from
// --istio-version, else from istiod per revision (detected by `meshguard
// serve` and `audit --cluster`, Config.RevisionVersions), else the newest
// supported release's semantics apply. The README's "Istio version
// differences" table lists every switch.

// Supported Istio minor versions (1.x). Newer minors get the newest known
// semantics; older ones are refused.
const (
	MinIstioMinor = 22
	MaxIstioMinor = 29
)

// IstioVersion is an Istio release line, 1.<Minor>.
type IstioVersion struct {
	Minor int
}

func (v IstioVersion) String() string { return "1." + strconv.Itoa(v.Minor) }

// NewestIstioVersion is the default: the newest supported release line.
func NewestIstioVersion() IstioVersion { return IstioVersion{Minor: MaxIstioMinor} }

// ParseIstioVersion reads "1.26", "1.26.3", "v1.27.0", "1.28.0-beta.1" or an
// image tag such as "1.27.2-distroless". Versions before 1.22 are refused;
// a minor newer than the newest known is kept (its semantics are the newest
// known ones).
func ParseIstioVersion(s string) (IstioVersion, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	parts := strings.SplitN(t, ".", 3)
	if len(parts) < 2 {
		return IstioVersion{}, fmt.Errorf("%q is not an Istio version such as 1.26 or 1.27.3", s)
	}
	major, err1 := strconv.Atoi(parts[0])
	minorText := parts[1]
	if i := strings.IndexAny(minorText, "-+_"); i >= 0 {
		minorText = minorText[:i]
	}
	minor, err2 := strconv.Atoi(minorText)
	if err1 != nil || err2 != nil || major != 1 {
		return IstioVersion{}, fmt.Errorf("%q is not an Istio version such as 1.26 or 1.27.3", s)
	}
	if minor < MinIstioMinor {
		return IstioVersion{}, fmt.Errorf("Istio %d.%d is not supported (meshguard knows 1.%d to 1.%d)", major, minor, MinIstioMinor, MaxIstioMinor)
	}
	return IstioVersion{Minor: minor}, nil
}

// ExactInjectValues: since 1.27 the injector reads sidecar.istio.io/inject
// as exactly "true" or "false"; any other value falls back to the namespace
// default (pkg/kube/inject/inject.go injectRequired). Up to 1.26 the value
// was lower-cased and y/yes/true/on meant inject, anything else opt out.
func (v IstioVersion) ExactInjectValues() bool { return v.Minor >= 27 }

// NativeSidecarsDefault: since 1.27 the injector makes istio-proxy a native
// sidecar (an init container with restartPolicy Always) by default where the
// node supports it (features.EnableNativeSidecars).
func (v IstioVersion) NativeSidecarsDefault() bool { return v.Minor >= 27 }

// AmbientEnablementSelectors: since 1.27 istio-cni decides ambient
// enrollment by its configurable enablementSelectors; before, by the
// istio.io/dataplane-mode labels of the pod and namespace. The default
// selectors give the same answer.
func (v IstioVersion) AmbientEnablementSelectors() bool { return v.Minor >= 27 }

// BypassInboundCaptureAnnotation: istio-cni reads the pod annotation
// ambient.istio.io/bypass-inbound-capture since 1.24 (absent from cni/ at
// 1.23.0); earlier releases capture inbound traffic whatever it says.
func (v IstioVersion) BypassInboundCaptureAnnotation() bool { return v.Minor >= 24 }

// DNSCaptureAnnotation: istio-cni reads the pod annotation
// ambient.istio.io/dns-capture since 1.25 (absent from cni/ at 1.24.0).
func (v IstioVersion) DNSCaptureAnnotation() bool { return v.Minor >= 25 }

// Agentgateway: istiod deploys Gateways of the istio-agentgateway class
// with the agentgateway injection template (an agentgateway container of
// image <hub>/agentgateway, running as the proxy UID) since 1.29
// (manifests/charts/istio-control/istio-discovery/files/agentgateway.yaml,
// absent at 1.28.0).
func (v IstioVersion) Agentgateway() bool { return v.Minor >= 29 }

// VersionDifference is one row of the README's "Istio version differences".
type VersionDifference struct {
	Behaviour string
	Since     string
	Meshguard string
	Codes     []string
}

// VersionDifferences are the behaviours the rules depend on that changed
// between the supported releases.
func VersionDifferences() []VersionDifference {
	return []VersionDifference{
		{
			Behaviour: "sidecar.istio.io/inject values: only exactly \"true\" and \"false\" count; any other value falls back to the namespace default (before: lower-cased, y/yes/true/on inject, anything else opts out)",
			Since:     "1.27",
			Meshguard: "MESH0110 judges the opt-out as the running version reads it; MESH0118 reports any value other than \"true\"/\"false\" (it changes meaning on upgrade)",
			Codes:     []string{"MESH0110", "MESH0118"},
		},
		{
			Behaviour: "istio-proxy injected as a native sidecar (init container with restartPolicy Always) by default",
			Since:     "1.27",
			Meshguard: "both shapes are Istio's proxy everywhere (MESH0112, MESH0140, MESH0150)",
			Codes:     []string{"MESH0112"},
		},
		{
			Behaviour: "ambient enrollment decided by istio-cni's enablementSelectors (defaults: pod label istio.io/dataplane-mode=ambient, or the namespace label unless the pod says none)",
			Since:     "1.27",
			Meshguard: "the default selectors, which give the labels' earlier answer",
			Codes:     []string{"MESH0110", "MESH0111"},
		},
		{
			Behaviour: "boolean annotations (istio.io/dry-run; ambient.istio.io/bypass-inbound-capture and dns-capture) parsed with Go's strconv.ParseBool: 1, t, T, TRUE, true, True count as true",
			Since:     "every supported release (the ambient annotations since 1.24)",
			Meshguard: "the same parser (MESH0024, MESH0127, and dry-run policies in the authorization facts)",
			Codes:     []string{"MESH0024", "MESH0127"},
		},
		{
			Behaviour: "istio-cni honours the pod annotations ambient.istio.io/bypass-inbound-capture (since 1.24) and ambient.istio.io/dns-capture (since 1.25); earlier releases ignore them and capture",
			Since:     "1.24 / 1.25",
			Meshguard: "MESH0127 reports each annotation only for the releases that act on it",
			Codes:     []string{"MESH0127"},
		},
		{
			Behaviour: "istiod deploys agentgateway Gateways (class istio-agentgateway): a pod whose only container is agentgateway (image HUB/agentgateway, run as the proxy UID, labelled sidecar.istio.io/inject: \"false\")",
			Since:     "1.29",
			Meshguard: "such a container in the deployed shape (an agentgateway image from the proxy registries, no command, args --config {} or none, no added capability, not privileged), alone in its pod, is Istio's proxy: no MESH0110, MESH0111, MESH0140, MESH0141; labels are not trusted",
			Codes:     []string{"MESH0110", "MESH0111", "MESH0140", "MESH0141"},
		},
	}
}

// versionFor returns the semantics for a pod injected by revision rev:
// --istio-version, else the revision's detected version, else the default
// revision's, else the newest.
func (c *compiledConfig) versionFor(rev string) IstioVersion {
	if c.istioVersion != nil {
		return *c.istioVersion
	}
	if rev == "" {
		rev = "default"
	}
	if v, ok := c.revisionVersions[rev]; ok {
		return v
	}
	if v, ok := c.revisionVersions["default"]; ok {
		return v
	}
	return NewestIstioVersion()
}

// InjectorVersions is implemented by contexts that know the Istio version of
// each injector revision (and tag), from the app.kubernetes.io/version (or
// operator.istio.io/version) label Istio's charts put on the injector's
// MutatingWebhookConfiguration.
type InjectorVersions interface {
	InjectorVersions() map[string]string
}

// VersionsFromWebhooks maps each revision and tag of the injector's
// MutatingWebhookConfigurations to its Istio version.
func VersionsFromWebhooks(configs []Object) map[string]string {
	out := map[string]string{}
	for _, c := range configs {
		if k := str(c, "kind"); k != "" && k != "MutatingWebhookConfiguration" {
			continue
		}
		l := stringMap(mapAt(c, "metadata")["labels"])
		v := l["app.kubernetes.io/version"]
		if v == "" {
			v = l["operator.istio.io/version"]
		}
		if _, err := ParseIstioVersion(v); err != nil {
			continue
		}
		for _, k := range []string{"istio.io/tag", "istio.io/rev"} {
			if r := l[k]; r != "" {
				if _, seen := out[r]; !seen {
					out[r] = v
				}
			}
		}
	}
	return out
}

// VersionsFromIstiod maps the revision of each istiod Deployment (label
// app=istiod; istio.io/rev, "default" when absent) to its Istio version: the
// app.kubernetes.io/version or operator.istio.io/version label Istio's charts
// write, else the tag of its discovery container's image
// (docker.io/istio/pilot:1.26.3-distroless). A Deployment without a
// readable version is left out; of two for one revision the first is kept.
func VersionsFromIstiod(deployments []Object) map[string]string {
	out := map[string]string{}
	for _, d := range deployments {
		if k := str(d, "kind"); k != "" && k != "Deployment" {
			continue
		}
		l := stringMap(mapAt(d, "metadata")["labels"])
		if l["app"] != "istiod" {
			continue
		}
		rev := l["istio.io/rev"]
		if rev == "" {
			rev = "default"
		}
		if _, seen := out[rev]; seen {
			continue
		}
		v := ""
		for _, k := range []string{"app.kubernetes.io/version", "operator.istio.io/version"} {
			if _, err := ParseIstioVersion(l[k]); err == nil {
				v = l[k]
				break
			}
		}
		if v == "" {
			v = istiodImageTag(d)
		}
		if v != "" {
			out[rev] = v
		}
	}
	return out
}

// istiodImageTag is the tag of the image of istiod's discovery container
// when it reads as an Istio version ("1.26.3" of pilot:1.26.3-distroless),
// else "".
func istiodImageTag(deploy Object) string {
	for _, raw := range listAt(mapAt(mapAt(mapAt(deploy, "spec"), "template"), "spec"), "containers") {
		c, _ := raw.(map[string]any)
		if str(c, "name") != "discovery" {
			continue
		}
		image := str(c, "image")
		if i := strings.IndexByte(image, '@'); i >= 0 {
			image = image[:i]
		}
		slash := strings.LastIndexByte(image, '/')
		colon := strings.LastIndexByte(image, ':')
		if colon <= slash {
			return ""
		}
		tag := image[colon+1:]
		if _, err := ParseIstioVersion(tag); err == nil {
			return tag
		}
	}
	return ""
}

// MergeInjectorVersions merges the versions read from the injector's
// webhook configurations with those read from istiod's Deployments. The
// webhook configuration's label wins for a revision both name: it belongs to
// the configuration that routes the revision's pods to an injector, and
// istiod's image tag may be a custom build's; istiod only fills revisions no
// webhook configuration labels (charts before 1.24, istioctl installs
// without the label).
func MergeInjectorVersions(webhooks, istiods map[string]string) map[string]string {
	if len(istiods) == 0 {
		return webhooks
	}
	out := make(map[string]string, len(webhooks)+len(istiods))
	for k, v := range istiods {
		out[k] = v
	}
	for k, v := range webhooks {
		out[k] = v
	}
	return out
}

// IstioVersionsText renders detected versions as "default=1.26, canary=1.27"
// (sorted by revision), "" when there are none.
func IstioVersionsText(vs map[string]string) string {
	keys := make([]string, 0, len(vs))
	for k := range vs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v, err := ParseIstioVersion(vs[k])
		if err != nil {
			continue
		}
		parts = append(parts, k+"="+v.String())
	}
	return strings.Join(parts, ", ")
}

// InjectorVersions implements InjectorVersions from the snapshot's webhook
// configurations.
func (s *Snapshot) InjectorVersions() map[string]string {
	return VersionsFromWebhooks(s.webhooks)
}

// IstiodDeployments implements IstiodDeployments.
func (s *Snapshot) IstiodDeployments() []Object { return s.istiods }

// IstiodDeployments is implemented by contexts that hold istiod's
// Deployments (label app=istiod), the second source of the Istio release
// per revision. The engine reads only those in the control-plane
// namespaces and the root namespace: a Deployment labelled app=istiod in a
// tenant's namespace never sets the semantics meshguard judges with.
type IstiodDeployments interface {
	IstiodDeployments() []Object
}

// InjectorVersions returns the Istio release of each revision the context
// knows: the injector's webhook configurations' labels and, for revisions
// they do not label, istiod's Deployments in the control-plane namespaces
// and the root namespace.
func (e *Engine) InjectorVersions(ctx Context) map[string]string {
	return injectorVersions(e.cfg, ctx)
}

func injectorVersions(cfg *compiledConfig, ctx Context) map[string]string {
	var webhooks, istiods map[string]string
	if iv, ok := ctx.(InjectorVersions); ok {
		webhooks = iv.InjectorVersions()
	}
	if id, ok := ctx.(IstiodDeployments); ok {
		var trusted []Object
		for _, d := range id.IstiodDeployments() {
			ns := str(mapAt(d, "metadata"), "namespace")
			if cfg.controlPlane[ns] || ns == cfg.RootNamespace {
				trusted = append(trusted, d)
			}
		}
		if len(trusted) > 0 {
			istiods = VersionsFromIstiod(trusted)
		}
	}
	return MergeInjectorVersions(webhooks, istiods)
}

// istioVersionFor returns the semantics for a pod injected by revision rev:
// --istio-version, else the revision's version the context knows (the
// injector's webhook configuration), else Config.RevisionVersions, else the
// newest supported release.
func (e *engine) istioVersionFor(rev string) IstioVersion {
	if e.cfg.istioVersion != nil {
		return *e.cfg.istioVersion
	}
	if vs := injectorVersions(e.cfg, e.ctx); len(vs) > 0 {
		for _, r := range []string{rev, "default"} {
			if r == "" {
				continue
			}
			if v, err := ParseIstioVersion(vs[r]); err == nil {
				return v
			}
		}
	}
	return e.cfg.versionFor(rev)
}

// compileVersions validates --istio-version and the detected revision
// versions.
func (c *Config) compileVersions() (*IstioVersion, map[string]IstioVersion, error) {
	var global *IstioVersion
	if c.IstioVersion != "" {
		v, err := ParseIstioVersion(c.IstioVersion)
		if err != nil {
			return nil, nil, fmt.Errorf("--istio-version: %w", err)
		}
		global = &v
	}
	revs := map[string]IstioVersion{}
	keys := make([]string, 0, len(c.RevisionVersions))
	for k := range c.RevisionVersions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, rev := range keys {
		v, err := ParseIstioVersion(c.RevisionVersions[rev])
		if err != nil {
			return nil, nil, fmt.Errorf("istiod revision %q: %w", rev, err)
		}
		if rev == "" {
			rev = "default"
		}
		revs[rev] = v
	}
	return global, revs, nil
}

// injectingRevision is the revision whose injector decides for a pod: the
// namespace's istio-injection label means the default revision, its
// istio.io/rev label that revision, else the pod's own istio.io/rev label.
func injectingRevision(ns Namespace, labels map[string]string) string {
	if _, ok := ns.Labels[labelInjection]; ok {
		return "default"
	}
	if rev, ok := ns.Labels[labelRev]; ok {
		return rev
	}
	return labels[labelRev]
}

// parseBoolAnnotation reads a boolean annotation as Istio does
// (strconv.ParseBool); ok is false when absent or not a boolean.
func parseBoolAnnotation(annotations map[string]string, key string) (value, present, ok bool) {
	raw, present := annotations[key]
	if !present {
		return false, false, false
	}
	v, err := strconv.ParseBool(raw)
	return v, true, err == nil
}
