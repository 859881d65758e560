package rules

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The injector annotations that replace the proxy's image, bootstrap or
// volumes (RULES.md MESH0115, MESH0116; istio.io/api annotation/annotations.yaml).
const (
	annProxyImage        = "sidecar.istio.io/proxyImage"
	annBootstrapOverride = "sidecar.istio.io/bootstrapOverride"
	annUserVolume        = "sidecar.istio.io/userVolume"
	annUserVolumeMount   = "sidecar.istio.io/userVolumeMount"

	proxyContainerName = "istio-proxy"
	// autoImage is the injector's placeholder: a declared istio-proxy with
	// image "auto" takes the injected image (webhook.go AutoImage).
	autoImage = "auto"
)

// proxyFacts computes what MESH0115 and MESH0116 need of a pod or template
// whose container types workloadFacts has checked:
//
//   - proxyImageOverrides[]: {source ("annotation" or "container"), ref, image,
//     text} for the sidecar.istio.io/proxyImage annotation naming an image that
//     is not an allowed proxy image, and for every istio-proxy container (or
//     native sidecar) whose image is not one. "auto" and an absent image are
//     the injector's placeholders only while the injector will still run: in a
//     template and in a Pod manifest before admission. On a Pod seen after
//     admission (the webhook's CREATE, a live cluster) and on every Pod UPDATE
//     (the injector runs only on CREATE) "auto" is a literal image name.
//   - proxyCustomizations[]: {annotation, hostPath, text} for
//     sidecar.istio.io/bootstrapOverride, each volume of
//     sidecar.istio.io/userVolume (hostPath: the entry is a hostPath volume) and
//     each mount of sidecar.istio.io/userVolumeMount.
//
// The annotations act only when the injector runs, so on a Pod UPDATE they
// add no finding (the proxy's image is judged from the container instead).
func (e *engine) proxyFacts(spec map[string]any, annotations map[string]string, isPod, postInjection bool, req *Request) (imageOverrides []ProxyImageOverrideFacts, customizations []ProxyCustomizationFacts) {
	podUpdate := isPod && req.Operation == "UPDATE"
	// placeholdersLiteral: the injector will not replace "auto" or an absent image.
	placeholdersLiteral := isPod && (postInjection || podUpdate)
	var overrides []ProxyImageOverrideFacts
	if v, ok := annotations[annProxyImage]; ok && !podUpdate && strings.TrimSpace(v) != "" && !e.cfg.isProxyImage(strings.TrimSpace(v)) {
		overrides = append(overrides, ProxyImageOverrideFacts{
			Source: "annotation", Ref: "annotation " + annProxyImage, Image: v,
			Text: fmt.Sprintf("annotation %s is %s, not an allowed Istio proxy image (the injector runs it as istio-proxy and as the init container)", annProxyImage, quote(v)),
		})
	}
	var oldImages map[string]string
	if podUpdate && req.OldObject != nil {
		oldImages = proxyContainerImages(mapAt(req.OldObject, "spec"))
	}
	for _, list := range []struct{ field, word string }{{"containers", "container"}, {"initContainers", "init container"}} {
		for _, raw := range listAt(spec, list.field) {
			c, _ := raw.(map[string]any) // types were checked by workloadFacts
			if str(c, "name") != proxyContainerName {
				continue
			}
			image := str(c, "image")
			if e.cfg.isProxyImage(image) || !placeholdersLiteral && (image == autoImage || image == "") {
				continue
			}
			ref := quotedRef(list.word, proxyContainerName)
			var text string
			old, hadOld := oldImages[list.field]
			switch {
			case podUpdate && hadOld && old != image:
				text = fmt.Sprintf("%s changes image from %s to %s on a running pod", ref, quote(old), quote(image))
			case placeholdersLiteral:
				text = fmt.Sprintf("%s runs image %s", ref, quote(image))
			default:
				text = fmt.Sprintf("%s declares image %s", ref, quote(image))
			}
			switch {
			case image == autoImage:
				text += ` ("auto" is replaced only when the injector injects a new pod, so here it is a literal image name)`
			case placeholdersLiteral:
				text += ", not an allowed Istio proxy image"
			default:
				text += ", not an allowed Istio proxy image (the injector keeps a declared image)"
			}
			overrides = append(overrides, ProxyImageOverrideFacts{Source: "container", Ref: ref, Image: image, Text: text})
		}
	}

	var custom []ProxyCustomizationFacts
	if !podUpdate {
		if v, ok := annotations[annBootstrapOverride]; ok {
			custom = append(custom, ProxyCustomizationFacts{
				Annotation: annBootstrapOverride,
				Text:       fmt.Sprintf("annotation %s replaces the proxy's Envoy bootstrap with ConfigMap %s", annBootstrapOverride, quote(v)),
			})
		}
		if v, ok := annotations[annUserVolume]; ok {
			custom = append(custom, userVolumeFacts(v)...)
		}
		if v, ok := annotations[annUserVolumeMount]; ok {
			custom = append(custom, userVolumeMountFacts(v)...)
		}
	}
	return overrides, custom
}

// proxyContainerImages returns the image of the istio-proxy container in each
// container list of a pod spec, for comparing an UPDATE with its old object.
func proxyContainerImages(spec map[string]any) map[string]string {
	out := map[string]string{}
	for _, field := range []string{"containers", "initContainers"} {
		for _, raw := range listAt(spec, field) {
			if c, ok := raw.(map[string]any); ok && str(c, "name") == proxyContainerName {
				out[field] = str(c, "image")
			}
		}
	}
	return out
}

// annotationEntry is one entry of a userVolume or userVolumeMount annotation:
// the injector ranges over the decoded JSON, so an object gives one entry per
// key (the key is the volume's name) and an array one per element (its index).
type annotationEntry struct {
	name  string
	value map[string]any
}

// annotationEntries decodes a userVolume/userVolumeMount annotation as the
// injector's fromJSON does (encoding/json). ok is false when the value is not
// a JSON object or array, which the injector renders as nothing.
func annotationEntries(v string) (entries []annotationEntry, ok bool) {
	var decoded any
	if err := json.Unmarshal([]byte(v), &decoded); err != nil {
		return nil, false
	}
	switch d := decoded.(type) {
	case map[string]any:
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			m, _ := d[k].(map[string]any)
			entries = append(entries, annotationEntry{name: k, value: m})
		}
	case []any:
		for i, x := range d {
			m, _ := x.(map[string]any)
			name := strconv.Itoa(i)
			if n, isStr := m["name"].(string); isStr && n != "" {
				name = n
			}
			entries = append(entries, annotationEntry{name: name, value: m})
		}
	default:
		return nil, false
	}
	return entries, true
}

// fieldFold returns the value of the key that equals name ignoring case: the
// injector decodes its rendered template with encoding/json, which matches
// field names case-insensitively, so "HostPath" is a hostPath volume too.
func fieldFold(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.EqualFold(k, name) {
			return m[k], true
		}
	}
	return nil, false
}

func userVolumeFacts(v string) []ProxyCustomizationFacts {
	entries, ok := annotationEntries(v)
	if !ok {
		return []ProxyCustomizationFacts{{
			Annotation: annUserVolume,
			Text:       fmt.Sprintf("annotation %s is set (to a value that is not a JSON object or array)", annUserVolume),
		}}
	}
	var out []ProxyCustomizationFacts
	for _, en := range entries {
		kind := volumeKind(en.value)
		text := fmt.Sprintf("annotation %s adds %svolume %s to the pod", annUserVolume, kind, quote(en.name))
		hp, isHostPath := fieldFold(en.value, "hostPath")
		if isHostPath {
			p, _ := fieldFold(asMap(hp), "path")
			ps, _ := p.(string)
			text = fmt.Sprintf("annotation %s adds %svolume %s with host path %s", annUserVolume, kind, quote(en.name), quote(ps))
		}
		out = append(out, ProxyCustomizationFacts{Annotation: annUserVolume, HostPath: isHostPath, Text: text})
	}
	return out
}

// volumeKind names a volume's source for messages ("secret ", "hostPath "):
// the first field other than name, or "" when it has none.
func volumeKind(v map[string]any) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		if !strings.EqualFold(k, "name") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	return keys[0] + " "
}

func userVolumeMountFacts(v string) []ProxyCustomizationFacts {
	entries, ok := annotationEntries(v)
	if !ok {
		return []ProxyCustomizationFacts{{
			Annotation: annUserVolumeMount,
			Text:       fmt.Sprintf("annotation %s is set (to a value that is not a JSON object or array)", annUserVolumeMount),
		}}
	}
	var out []ProxyCustomizationFacts
	for _, en := range entries {
		text := fmt.Sprintf("annotation %s mounts volume %s into the proxy", annUserVolumeMount, quote(en.name))
		if p, ok := fieldFold(en.value, "mountPath"); ok {
			if ps, isStr := p.(string); isStr {
				text += " at " + quote(ps)
			}
		}
		out = append(out, ProxyCustomizationFacts{Annotation: annUserVolumeMount, Text: text})
	}
	return out
}

// annSidecarStatus is the injector's record of what it added to a pod.
const annSidecarStatus = "sidecar.istio.io/status"

// templatesWithProxy are the injection templates of Istio's charts that add
// an istio-proxy container; grpc-simple and custom templates need not.
var templatesWithProxy = map[string]bool{"sidecar": true, "gateway": true, "kube-gateway": true, "waypoint": true, "grpc-agent": true}

// sidecarStatusFacts judges sidecar.istio.io/status against what the
// injector writes (pkg/kube/inject webhook.go getInjectionStatus, the same
// from 1.22 to 1.29): a JSON object of the names of the init containers,
// containers, volumes and image pull secrets of the pod it produced, and the
// revision. It is forged or stale (MESH0129) when it is not such an object,
// when it names a container or init container the pod does not have,
// or when the pod has no istio-proxy container while its injection templates
// (inject.istio.io/templates, "sidecar" when absent) include one that adds
// it; grpc-simple and custom templates add none, and the injector writes the
// status for them too. text says why; "" when it is consistent or absent.
func sidecarStatusFacts(ann map[string]string, spec map[string]any, hasIstioProxy bool) SidecarStatusFacts {
	raw, ok := ann[annSidecarStatus]
	out := SidecarStatusFacts{Present: ok}
	if !ok {
		return out
	}
	forged := func(text string) SidecarStatusFacts {
		out.Forged, out.Text = true, text
		return out
	}
	var status map[string]any
	if err := json.Unmarshal([]byte(raw), &status); err != nil || status == nil {
		return forged("annotation " + annSidecarStatus + " is not the injector's status (a JSON object listing the containers and volumes it added)")
	}
	have := map[string]map[string]bool{}
	names := func(list []any, key string) map[string]bool {
		m := map[string]bool{}
		for _, x := range list {
			if xm, ok := x.(map[string]any); ok {
				m[str(xm, key)] = true
			}
		}
		return m
	}
	have["initContainers"] = names(listAt(spec, "initContainers"), "name")
	have["containers"] = names(listAt(spec, "containers"), "name")
	words := map[string]string{"initContainers": "init container", "containers": "container"}
	var missing []string
	namesProxy := false
	for _, field := range []string{"initContainers", "containers", "volumes", "imagePullSecrets"} {
		v, present := status[field]
		if !present || v == nil {
			continue
		}
		list, isList := v.([]any)
		if !isList {
			return forged("annotation " + annSidecarStatus + " is not the injector's status (" + field + " is not a list of names)")
		}
		for _, x := range list {
			n, isStr := x.(string)
			if !isStr {
				return forged("annotation " + annSidecarStatus + " is not the injector's status (" + field + " is not a list of names)")
			}
			if n == proxyContainerName && (field == "containers" || field == "initContainers") {
				namesProxy = true
			}
			// Volumes and pull secrets are only type-checked: hand-trimmed
			// kube-inject output often drops the injected volumes.
			if have[field] != nil && !have[field][n] {
				missing = append(missing, words[field]+" "+quote(n))
			}
		}
	}
	if len(missing) > 0 {
		list := strings.Join(missing, ", ")
		if n := len(missing); n > 1 {
			list = strings.Join(missing[:n-1], ", ") + " and " + missing[n-1]
		}
		return forged("annotation " + annSidecarStatus + " lists " + list + ", which the pod does not have")
	}
	if hasIstioProxy {
		return out
	}
	templates := []string{"sidecar"}
	if t := splitList(ann[annInjectTemplates]); len(t) > 0 {
		templates = t
	}
	for _, t := range templates {
		if templatesWithProxy[t] || namesProxy {
			return forged("annotation " + annSidecarStatus + " marks the pod as injected, but it has no istio-proxy container")
		}
	}
	return out
}
