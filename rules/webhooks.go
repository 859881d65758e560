package rules

import (
	"fmt"
	"sort"
)

// WebhookBackend is a Service that the API server calls as an admission
// webhook, resolved to the pod ports it reaches.
type WebhookBackend struct {
	// Webhook is the webhook configuration's name.
	Webhook string
	// Service is the Service name (in the namespace asked for).
	Service string
	// Selector is the Service's pod selector.
	Selector map[string]string
	// Ports are the pod (target) ports the API server reaches, as strings:
	// numbers, or port names when the Service targets a named port.
	Ports []string
}

// WebhookBackends is implemented by contexts that know the cluster's admission
// webhooks. A PERMISSIVE port-level exception limited to such a port exists to
// let the API server (which is not in the mesh) reach the webhook: STRICT
// there would break the webhook, meshguard's own included.
type WebhookBackends interface {
	WebhookBackends(namespace string) []WebhookBackend
}

// ResolveWebhookBackends resolves the Service references of webhook
// configurations (decoded objects) in one namespace through the given Services
// (decoded objects; nil when unknown). Contexts use it to implement WebhookBackends.
func ResolveWebhookBackends(configs []Object, namespace string, service func(ns, name string) Object) []WebhookBackend {
	var out []WebhookBackend
	for _, cfg := range configs {
		_, cfgName := objKey(cfg)
		for _, wh := range listAt(cfg, "webhooks") {
			ref := mapAt(asMap(wh), "clientConfig", "service")
			if ref == nil || str(ref, "namespace") != namespace {
				continue
			}
			port := int64(443)
			if p, ok := intAt(ref, "port"); ok {
				port = p
			}
			svc := service(namespace, str(ref, "name"))
			if svc == nil {
				continue
			}
			b := WebhookBackend{Webhook: cfgName, Service: str(ref, "name"), Selector: stringMap(mapAt(svc, "spec")["selector"])}
			for _, sp := range listAt(svc, "spec", "ports") {
				spm := asMap(sp)
				if p, _ := intAt(spm, "port"); p != port {
					continue
				}
				switch t := spm["targetPort"].(type) {
				case string:
					if t != "" {
						b.Ports = append(b.Ports, t)
						continue
					}
					b.Ports = append(b.Ports, fmt.Sprint(port))
				default:
					if n, ok := intAt(spm, "targetPort"); ok && n != 0 {
						b.Ports = append(b.Ports, fmt.Sprint(n))
					} else {
						b.Ports = append(b.Ports, fmt.Sprint(port))
					}
				}
			}
			if len(b.Ports) > 0 {
				out = append(out, b)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Webhook+out[i].Service < out[j].Webhook+out[j].Service })
	return out
}

// webhookPortFor returns the webhook backend a workload PeerAuthentication's
// port exception serves, if any: the Service's selector and the policy's
// selector must agree (one contains the other) and the port must be one the API
// server reaches.
func (e *engine) webhookPortFor(namespace string, paSelector map[string]string, port string) (WebhookBackend, bool) {
	wb, ok := e.ctx.(WebhookBackends)
	if !ok || len(paSelector) == 0 {
		return WebhookBackend{}, false
	}
	for _, b := range wb.WebhookBackends(namespace) {
		if len(b.Selector) == 0 || !(covers(b.Selector, paSelector) || covers(paSelector, b.Selector)) {
			continue
		}
		for _, p := range b.Ports {
			if p == port {
				return b, true
			}
		}
	}
	return WebhookBackend{}, false
}
