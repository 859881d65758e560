package e2e_test

import (
	"fmt"
	"strings"
)

const (
	fixNetAdmin = "Remove NET_ADMIN (and ALL) from capabilities.add"
	fixNetRaw   = "Remove NET_RAW from capabilities.add"
	fixGuard    = "Ask a meshguard admin"
)

// bypassPodSpec is a pod spec with one container adding a capability.
func bypassPodSpec(cap string) string {
	return fmt.Sprintf(`containers:
      - name: app
        image: registry.example.com/shop/app:1.0
        securityContext: {capabilities: {add: [%q]}}`, cap)
}

// bypassWorkload renders kind with a pod template whose container adds cap,
// indented for the kind's template path.
func bypassWorkload(kind, cap string) string {
	spec := bypassPodSpec(cap)
	tmpl := func(indent string) string {
		return strings.ReplaceAll(fmt.Sprintf("metadata: {labels: {app: w}}\nspec:\n  %s", strings.ReplaceAll(spec, "\n      ", "\n    ")), "\n", "\n"+indent)
	}
	switch kind {
	case "Pod":
		return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: w, namespace: \"{{ns}}\"}\nspec:\n  %s\n", strings.ReplaceAll(spec, "\n      ", "\n    "))
	case "PodTemplate":
		return "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: w, namespace: \"{{ns}}\"}\ntemplate:\n  " + tmpl("  ") + "\n"
	case "CronJob":
		return "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: w, namespace: \"{{ns}}\"}\nspec:\n  schedule: \"0 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        " +
			strings.Replace(tmpl("        "), "spec:\n", "spec:\n          restartPolicy: Never\n", 1) + "\n"
	case "Job":
		return "apiVersion: batch/v1\nkind: Job\nmetadata: {name: w, namespace: \"{{ns}}\"}\nspec:\n  template:\n    " +
			strings.Replace(tmpl("    "), "spec:\n", "spec:\n      restartPolicy: Never\n", 1) + "\n"
	case "ReplicationController":
		return "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: w, namespace: \"{{ns}}\"}\nspec:\n  selector: {app: w}\n  template:\n    " + tmpl("    ") + "\n"
	default: // apps/v1 kinds
		extra := ""
		if kind == "StatefulSet" {
			extra = "  serviceName: w\n"
		}
		return fmt.Sprintf("apiVersion: apps/v1\nkind: %s\nmetadata: {name: w, namespace: \"{{ns}}\"}\nspec:\n%s  selector: {matchLabels: {app: w}}\n  template:\n    %s\n", kind, extra, tmpl("    "))
	}
}

// cleanDeployment is a Deployment without findings, for UPDATE attempts.
const cleanDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/web:1.0}
`

const addNetAdminJSONPatch = `[{"op":"add","path":"/spec/template/spec/containers/0/securityContext","value":{"capabilities":{"add":["NET_ADMIN"]}}}]`
const addNetAdminMergePatch = `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example.com/shop/web:1.0","securityContext":{"capabilities":{"add":["NET_ADMIN"]}}}]}}}}`

// bypassHeldCases are the forms that already held when the suite was
// written: every workload kind, every way to write an UPDATE, server-side
// apply, server-side dry runs, ephemeral containers, capability spellings,
// YAML tricks, managed NetworkPolicies and exemptions. They must stay held.
func bypassHeldCases() []bypassCase {
	var cs []bypassCase
	for _, kind := range []string{"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController", "PodTemplate"} {
		cs = append(cs, bypassCase{
			Name:     "a " + kind + " adding NET_ADMIN",
			Manifest: bypassWorkload(kind, "NET_ADMIN"),
			Code:     "MESH0150", Fix: fixNetAdmin, Contains: []string{`container "app" adds capability "NET_ADMIN"`},
		})
	}
	for _, typ := range []struct{ name, patch string }{{"json", addNetAdminJSONPatch}, {"merge", addNetAdminMergePatch}, {"strategic", addNetAdminMergePatch}} {
		cs = append(cs, bypassCase{
			Name:  "a " + typ.name + " patch adding NET_ADMIN to a Deployment",
			Setup: cleanDeployment,
			Args:  []string{"patch", "deployment", "web", "-n", "{{ns}}", "--type=" + typ.name, "-p", typ.patch},
			Code:  "MESH0150", Fix: fixNetAdmin,
		})
	}
	netAdminDeployment := strings.Replace(cleanDeployment, "image: registry.example.com/shop/web:1.0}", "image: registry.example.com/shop/web:1.0, securityContext: {capabilities: {add: [NET_ADMIN]}}}", 1)
	cs = append(cs,
		bypassCase{Name: "a replace (PUT) adding NET_ADMIN to a Deployment", Setup: cleanDeployment, Manifest: netAdminDeployment,
			Args: []string{"replace", "-f", "-"}, Code: "MESH0150", Fix: fixNetAdmin},
		bypassCase{Name: "a server-side apply with --force-conflicts adding NET_ADMIN", Setup: cleanDeployment, Manifest: netAdminDeployment,
			Args: []string{"apply", "--server-side", "--force-conflicts", "--field-manager=tenant", "-f", "-"}, Code: "MESH0150", Fix: fixNetAdmin},
		bypassCase{Name: "a server-side dry run adding NET_ADMIN", Manifest: netAdminDeployment,
			Args: []string{"apply", "--dry-run=server", "-f", "-"}, Code: "MESH0150", Fix: fixNetAdmin},
		bypassCase{Name: "an ephemeral container with NET_ADMIN added by patch", Setup: injectedPod("{{ns}}", "reviews"),
			Args: []string{"patch", "pod", "reviews", "-n", "{{ns}}", "--subresource=ephemeralcontainers", "--type=strategic", "-p",
				`{"spec":{"ephemeralContainers":[{"name":"debugger","image":"busybox:1.36","targetContainerName":"app","securityContext":{"capabilities":{"add":["NET_ADMIN"]}}}]}}`},
			Code: "MESH0150", Fix: fixNetAdmin, Contains: []string{`ephemeral container "debugger"`}},
		bypassCase{Name: "an ephemeral container with NET_RAW added by PUT", Setup: injectedPod("{{ns}}", "reviews"),
			Manifest: strings.Replace(injectedPod("{{ns}}", "reviews"), "  containers:\n", "  ephemeralContainers:\n  - {name: sniff, image: busybox:1.36, securityContext: {capabilities: {add: [NET_RAW]}}}\n  containers:\n", 1),
			Args:     []string{"replace", "--subresource=ephemeralcontainers", "-f", "-"},
			Code:     "MESH0151", Fix: fixNetRaw, Contains: []string{`ephemeral container "sniff"`}},
	)
	for _, spelling := range []string{"net_admin", "CAP_NET_ADMIN", " NET_ADMIN ", "net_admın", "cap_Net_Admin"} {
		cs = append(cs, bypassCase{
			Name:     fmt.Sprintf("NET_ADMIN spelled %q", spelling),
			Manifest: bypassWorkload("Deployment", spelling),
			Code:     "MESH0150", Fix: fixNetAdmin,
		})
	}
	cs = append(cs,
		bypassCase{Name: "NET_ADMIN through a YAML anchor and alias", Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: anchors, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: anchors}}
  template:
    metadata: {labels: {app: anchors}}
    spec:
      initContainers:
      - name: setup
        image: registry.example.com/shop/setup:1.0
        securityContext: &caps {capabilities: {add: [NET_ADMIN]}}
      containers:
      - name: app
        image: registry.example.com/shop/app:1.0
        securityContext: *caps
`, Code: "MESH0150", Fix: fixNetAdmin, Contains: []string{`container "app" adds capability "NET_ADMIN"`}},
		// The API server keeps the last of duplicate JSON keys when field
		// validation is off; meshguard judges what it stores.
		bypassCase{Name: "NET_ADMIN in the last of duplicate JSON keys with field validation off", Manifest: `{"apiVersion":"apps/v1","kind":"Deployment",
"metadata":{"name":"dup","namespace":"{{ns}}"},
"spec":{"selector":{"matchLabels":{"app":"dup"}},"template":{"metadata":{"labels":{"app":"dup"}},"spec":{"containers":[
{"name":"app","image":"registry.example.com/shop/app:1.0","securityContext":{},"securityContext":{"capabilities":{"add":["NET_ADMIN"]}}}]}}}}`,
			Args: []string{"create", "--validate=false", "-f", "-"}, Code: "MESH0150", Fix: fixNetAdmin},
		bypassCase{Name: "a tenant patching a managed NetworkPolicy open", Args: []string{"patch", "networkpolicy", "mesh-default-deny", "-n", "{{ns}}", "--type=json",
			"-p", `[{"op":"add","path":"/spec/ingress","value":[{}]}]`}, Code: "MESH0215", Fix: "Leave the managed policies to meshguard"},
		bypassCase{Name: "a tenant removing the managed label of a NetworkPolicy", Args: []string{"label", "networkpolicy", "mesh-default-deny", "-n", "{{ns}}", "meshguard.io/managed-"},
			Code: "MESH0215", Fix: "Leave the managed policies to meshguard"},
		bypassCase{Name: "a tenant deleting a managed NetworkPolicy", Args: []string{"delete", "networkpolicy", "mesh-default-deny", "-n", "{{ns}}"},
			Code: "MESH0215", Fix: "Leave the managed policies to meshguard"},
		bypassCase{Name: "a tenant deleting every NetworkPolicy with one deletecollection call", Args: []string{"delete", "--raw", "/apis/networking.k8s.io/v1/namespaces/{{ns}}/networkpolicies"},
			Code: "MESH0215", Fix: "Leave the managed policies to meshguard"},
		bypassCase{Name: "an object exemption outside the namespaces the admin allows", Manifest: strings.Replace(bypassWorkload("Deployment", "NET_RAW"),
			"metadata: {name: w, namespace: \"{{ns}}\"}", "metadata: {name: w, namespace: \"{{ns}}\", annotations: {meshguard.io/exempt: MESH0151, meshguard.io/exempt-reason: packet capture}}", 1),
			Code: "MESH0151", Fix: fixNetRaw},
		bypassCase{Name: "an admin exemption used outside its namespaces", Manifest: bypassWorkload("Deployment", "NET_RAW"), Code: "MESH0151", Fix: fixNetRaw},
		bypassCase{Name: "a Critical finding under an object exemption where object exemptions are allowed", Exempt: true, Manifest: strings.Replace(bypassWorkload("Deployment", "NET_ADMIN"),
			"metadata: {name: w, namespace: \"{{ns}}\"}", "metadata: {name: w, namespace: \"{{ns}}\", annotations: {meshguard.io/exempt: MESH0150, meshguard.io/exempt-reason: capture tool}}", 1),
			Code: "MESH0150", Fix: fixNetAdmin},
	)
	return cs
}

// bypassSubresourceCases change labels and annotations through subresources
// instead of a normal UPDATE.
func bypassSubresourceCases() []bypassCase {
	ambientPod := `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: "{{ns}}", labels: {app: web}}
spec:
  containers:
  - {name: app, image: registry.example.com/shop/web:1.0}
`
	binding := func(path string) bypassCase {
		return bypassCase{
			Name:  "a Binding through " + path + " that copies capture opt-outs onto the pod",
			Setup: injectedPod("{{ns}}", "reviews"),
			Manifest: `{"apiVersion":"v1","kind":"Binding","metadata":{"name":"reviews","namespace":"{{ns}}",
"annotations":{"traffic.sidecar.istio.io/excludeOutboundIPRanges":"0.0.0.0/0"}},"target":{"apiVersion":"v1","kind":"Node","name":"node-1"}}`,
			Args: []string{"create", "--raw", path, "-f", "-"},
			Code: "MESH0117", Fix: "Set Istio and meshguard labels and annotations on the Pod or its template",
			Contains: []string{`sets annotation traffic.sidecar.istio.io/excludeOutboundIPRanges="0.0.0.0/0"`},
		}
	}
	return []bypassCase{
		{Name: "a namespaces/status patch setting meshguard.io/mode", Args: []string{"patch", "namespace", "{{ns}}", "--subresource=status", "--type=merge",
			"-p", `{"metadata":{"labels":{"meshguard.io/mode":"audit"}}}`}, Code: "MESH0106", Fix: fixGuard, Contains: []string{bypassTenant}},
		{Name: "a namespaces/status patch setting meshguard.io/netpol-profile=none", Args: []string{"patch", "namespace", "{{ns}}", "--subresource=status", "--type=merge",
			"-p", `{"metadata":{"labels":{"meshguard.io/netpol-profile":"none"}}}`}, Code: "MESH0105", Fix: "Remove the meshguard.io/netpol-profile label"},
		{Name: "an admin removing istio-injection through namespaces/status", Admin: true, Args: []string{"patch", "namespace", "{{ns}}", "--subresource=status", "--type=json",
			"-p", `[{"op":"remove","path":"/metadata/labels/istio-injection"}]`}, Code: "MESH0102", Fix: "Revert the enrollment labels"},
		{Name: "a namespaces/finalize PUT setting meshguard.io/mode", Manifest: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"{{ns}}",
"labels":{"istio-injection":"enabled","meshguard.io/mode":"audit","kubernetes.io/metadata.name":"{{ns}}"}},"spec":{"finalizers":["kubernetes"]}}`,
			Args: []string{"replace", "--raw", "/api/v1/namespaces/{{ns}}/finalize", "-f", "-"}, Code: "MESH0106", Fix: fixGuard},
		{Name: "a pods/status patch setting istio.io/dataplane-mode=none in an ambient namespace", NSLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
			Setup: ambientPod, Args: []string{"patch", "pod", "web", "-n", "{{ns}}", "--subresource=status", "--type=merge",
				"-p", `{"metadata":{"labels":{"istio.io/dataplane-mode":"none"}}}`}, Code: "MESH0111", Fix: "Remove the istio.io/dataplane-mode=none label"},
		binding("/api/v1/namespaces/{{ns}}/pods/reviews/binding"),
		binding("/api/v1/namespaces/{{ns}}/bindings"),
	}
}

// bypassSkippedPathCases prove that what the webhook configuration's
// matchConditions skip cannot carry a weakening into a running pod: a
// ReplicaSet or Job that claims a controller owner is not sent to meshguard,
// but every pod it would run is.
func bypassSkippedPathCases() []bypassCase {
	owned := func(kind, apiVersion, ownerKind, ownerAPI string) string {
		return strings.Replace(bypassWorkload(kind, "NET_ADMIN"), "metadata: {name: w, namespace: \"{{ns}}\"}",
			fmt.Sprintf("metadata:\n  name: w\n  namespace: \"{{ns}}\"\n  ownerReferences: [{apiVersion: %s, kind: %s, name: forged, uid: 6b0c1c0e-0000-4000-8000-00000000f00d, controller: true}]", ownerAPI, ownerKind), 1) +
			fmt.Sprintf(`---
apiVersion: v1
kind: Pod
metadata:
  name: w-pod
  namespace: "{{ns}}"
  ownerReferences: [{apiVersion: %s, kind: %s, name: w, uid: 6b0c1c0e-0000-4000-8000-00000000beef, controller: true}]
spec:
  %s
`, apiVersion, kind, strings.ReplaceAll(bypassPodSpec("NET_ADMIN"), "\n      ", "\n    "))
	}
	return []bypassCase{
		{Name: "a ReplicaSet forging a Deployment owner cannot run a pod with NET_ADMIN", Manifest: owned("ReplicaSet", "apps/v1", "Deployment", "apps/v1"),
			Code: "MESH0150", Fix: fixNetAdmin, Contains: []string{"Pod/{{ns}}/w-pod"}},
		{Name: "a Job forging a CronJob owner cannot run a pod with NET_ADMIN", Manifest: owned("Job", "batch/v1", "CronJob", "batch/v1"),
			Code: "MESH0150", Fix: fixNetAdmin, Contains: []string{"Pod/{{ns}}/w-pod"}},
		{Name: "an UPDATE that only adds a finalizer cannot carry a template change", Setup: cleanDeployment,
			Args: []string{"patch", "deployment", "web", "-n", "{{ns}}", "--type=json", "-p",
				`[{"op":"add","path":"/metadata/finalizers","value":["example.com/hold"]},{"op":"add","path":"/spec/template/spec/containers/0/securityContext","value":{"capabilities":{"add":["NET_ADMIN"]}}}]`},
			Code: "MESH0150", Fix: fixNetAdmin},
	}
}

// bypassWorkloadStateCases use the state of the cluster: a namespace flipped
// under running pods, an object being deleted.
func bypassWorkloadStateCases() []bypassCase {
	return []bypassCase{
		{
			Name:     "a namespace switched from ambient back to sidecar under pods without a proxy",
			NSLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
			Setup: `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: "{{ns}}", labels: {app: web}}
spec:
  containers:
  - {name: app, image: registry.example.com/shop/web:1.0}
---
apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: "{{ns}}", labels: {app: worker}}
spec:
  securityContext: {runAsUser: 1337}
  containers:
  - {name: app, image: registry.example.com/shop/worker:1.0}
`,
			Args: []string{"label", "namespace", "{{ns}}", "istio.io/dataplane-mode-", "istio-injection=enabled"},
			Code: "MESH0107", Fix: "Restart or redeploy the named pods",
			Contains: []string{`pod "web" (MESH0112`, `pod "worker" (MESH0112`, `MESH0140 container "app" runs as UID 1337`},
		},
		{
			Name: "a PodTemplate being deleted, held by a finalizer, given NET_ADMIN",
			Setup: `apiVersion: v1
kind: PodTemplate
metadata: {name: held, namespace: "{{ns}}", finalizers: [example.com/hold]}
template:
  metadata: {labels: {app: held}}
  spec:
    containers:
    - {name: app, image: registry.example.com/shop/app:1.0}
`,
			Prepare: [][]string{{"delete", "podtemplate", "held", "-n", "{{ns}}", "--wait=false"}},
			Args: []string{"patch", "podtemplate", "held", "-n", "{{ns}}", "--type=json", "-p",
				`[{"op":"add","path":"/template/spec/containers/0/securityContext","value":{"capabilities":{"add":["NET_ADMIN"]}}}]`},
			Code: "MESH0150", Fix: fixNetAdmin,
		},
	}
}
