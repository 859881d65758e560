package rules

// Namespace is what the rules know about a namespace.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	// Terminating is true once the namespace has a deletionTimestamp.
	Terminating bool
}

// Context is the cluster state a rule may need beyond the object under review.
// `meshguard audit` builds it from the manifests themselves (Snapshot); the
// webhook serves it from informer caches. Implementations must be safe for
// concurrent use and must not call the API server.
type Context interface {
	// Namespace returns the named namespace, if known.
	Namespace(name string) (Namespace, bool)
	// PeerAuthentications returns the PeerAuthentications in a namespace, oldest first.
	PeerAuthentications(namespace string) []Object
	// AuthorizationPolicies returns the AuthorizationPolicies in a namespace, oldest first.
	AuthorizationPolicies(namespace string) []Object
}

// NamespacePods is implemented by contexts that know the pods running in a
// namespace (the webhook's informer cache). A namespace's mesh-mode change is
// then judged against them (MESH0107).
type NamespacePods interface {
	// Pods returns the pods of a namespace as decoded objects (apiVersion and
	// kind set), and whether the pods are known at all.
	Pods(namespace string) ([]Object, bool)
}

// Object is a decoded Kubernetes object (JSON-compatible maps, float64 numbers).
type Object = map[string]any

// Snapshot is a Context held in memory. The zero value is empty and usable.
// It is not safe for concurrent writes; build it, then share it read-only.
type Snapshot struct {
	namespaces map[string]Namespace
	pas        map[string][]Object
	aps        map[string][]Object
	webhooks   []Object
	// istiods are istiod Deployments (label app=istiod), read for the Istio
	// release of their revision (VersionsFromIstiod).
	istiods  []Object
	services map[string]Object // namespace/name
	// serviceEntries and destinationRules are every ServiceEntry and
	// DestinationRule added.
	serviceEntries   []Object
	destinationRules []Object
	pods             map[string][]Object
	// netpols are the names of managed NetworkPolicies by namespace.
	netpols        map[string][]string
	netpolsUnknown bool
}

var (
	_ Context           = (*Snapshot)(nil)
	_ WebhookBackends   = (*Snapshot)(nil)
	_ InjectorRevisions = (*Snapshot)(nil)

	_ ManagedNetworkPolicies = (*Snapshot)(nil)
	_ NamespacePods          = (*Snapshot)(nil)
	_ ServiceEntries         = (*Snapshot)(nil)
	_ DestinationRules       = (*Snapshot)(nil)
)

// NewSnapshot returns an empty Snapshot.
func NewSnapshot() *Snapshot { return &Snapshot{} }

// Add records an object if it is context (a Namespace, Pod, PeerAuthentication,
// AuthorizationPolicy, Service, ServiceEntry, DestinationRule, webhook configuration, or a NetworkPolicy
// labelled meshguard.io/managed: "true"); other kinds are ignored. defaultNamespace is used for
// namespaced objects that do not name their namespace.
func (s *Snapshot) Add(obj Object, defaultNamespace string) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group := apiGroup(apiVersion)
	meta, _ := obj["metadata"].(map[string]any)
	ns := str(meta, "namespace")
	if ns == "" {
		ns = defaultNamespace
	}
	switch {
	case group == "" && kind == "Namespace":
		if s.namespaces == nil {
			s.namespaces = map[string]Namespace{}
		}
		name := str(meta, "name")
		_, terminating := meta["deletionTimestamp"]
		s.namespaces[name] = Namespace{
			Name:        name,
			Labels:      stringMap(meta["labels"]),
			Annotations: stringMap(meta["annotations"]),
			Terminating: terminating && meta["deletionTimestamp"] != nil,
		}
	case group == "" && kind == "Pod":
		if s.pods == nil {
			s.pods = map[string][]Object{}
		}
		s.pods[ns] = append(s.pods[ns], obj)
	case group == "security.istio.io" && kind == "PeerAuthentication":
		if s.pas == nil {
			s.pas = map[string][]Object{}
		}
		s.pas[ns] = append(s.pas[ns], obj)
	case group == "security.istio.io" && kind == "AuthorizationPolicy":
		if s.aps == nil {
			s.aps = map[string][]Object{}
		}
		s.aps[ns] = append(s.aps[ns], obj)
	case group == "admissionregistration.k8s.io" && (kind == "ValidatingWebhookConfiguration" || kind == "MutatingWebhookConfiguration"):
		s.webhooks = append(s.webhooks, obj)
	case group == "apps" && kind == "Deployment":
		if stringMap(meta["labels"])["app"] == "istiod" {
			s.istiods = append(s.istiods, obj)
		}
	case group == "networking.istio.io" && (kind == "ServiceEntry" || kind == "DestinationRule"):
		if str(meta, "namespace") == "" {
			// The alias rules name the ServiceEntry's namespace: a copy
			// carries the default one, the input is left as it is.
			m := make(map[string]any, len(meta)+1)
			for k, v := range meta {
				m[k] = v
			}
			m["namespace"] = ns
			c := make(Object, len(obj))
			for k, v := range obj {
				c[k] = v
			}
			c["metadata"] = m
			obj = c
		}
		if kind == "ServiceEntry" {
			s.serviceEntries = append(s.serviceEntries, obj)
		} else {
			s.destinationRules = append(s.destinationRules, obj)
		}
	case group == "" && kind == "Service":
		if s.services == nil {
			s.services = map[string]Object{}
		}
		s.services[ns+"/"+str(meta, "name")] = obj
	case group == "networking.k8s.io" && kind == "NetworkPolicy":
		if stringMap(meta["labels"])[labelNetpolManaged] != "true" {
			return
		}
		if s.netpols == nil {
			s.netpols = map[string][]string{}
		}
		s.netpols[ns] = append(s.netpols[ns], str(meta, "name"))
	}
}

// DestinationRules implements DestinationRules with the DestinationRules added.
func (s *Snapshot) DestinationRules() []Object { return s.destinationRules }

// ServiceEntries implements ServiceEntries with the ServiceEntries added.
func (s *Snapshot) ServiceEntries() []Object { return s.serviceEntries }

// Pods implements NamespacePods with the Pods added to the snapshot; they are
// known only when the snapshot holds any.
func (s *Snapshot) Pods(namespace string) ([]Object, bool) {
	return s.pods[namespace], s.pods != nil
}

// WebhookBackends implements WebhookBackends from the webhook configurations
// and Services added to the snapshot.
func (s *Snapshot) WebhookBackends(namespace string) []WebhookBackend {
	return ResolveWebhookBackends(s.webhooks, namespace, func(ns, name string) Object { return s.services[ns+"/"+name] })
}

// AddNamespace records a namespace directly.
func (s *Snapshot) AddNamespace(ns Namespace) {
	if s.namespaces == nil {
		s.namespaces = map[string]Namespace{}
	}
	s.namespaces[ns.Name] = ns
}

// Namespace implements Context.
func (s *Snapshot) Namespace(name string) (Namespace, bool) {
	ns, ok := s.namespaces[name]
	return ns, ok
}

// Namespaces returns every recorded namespace name.
func (s *Snapshot) Namespaces() []string {
	out := make([]string, 0, len(s.namespaces))
	for n := range s.namespaces {
		out = append(out, n)
	}
	return out
}

// PeerAuthentications implements Context.
func (s *Snapshot) PeerAuthentications(namespace string) []Object { return s.pas[namespace] }

// AuthorizationPolicies implements Context.
func (s *Snapshot) AuthorizationPolicies(namespace string) []Object { return s.aps[namespace] }

// emptyContext knows nothing.
type emptyContext struct{}

func (emptyContext) Namespace(string) (Namespace, bool)    { return Namespace{}, false }
func (emptyContext) PeerAuthentications(string) []Object   { return nil }
func (emptyContext) AuthorizationPolicies(string) []Object { return nil }
