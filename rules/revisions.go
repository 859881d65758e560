package rules

import "sort"

// InjectorRevisions is implemented by contexts that know which Istio sidecar
// injector revisions and tags are installed (from the injector's
// MutatingWebhookConfigurations, labelled istio.io/rev or istio.io/tag).
// known is false when no injector configuration is visible at all, in which
// case no revision can be called unknown.
type InjectorRevisions interface {
	InjectorRevisions() (revisions []string, known bool)
}

// RevisionsFromWebhooks collects the istio.io/rev and istio.io/tag labels of
// MutatingWebhookConfigurations (decoded objects).
func RevisionsFromWebhooks(configs []Object) ([]string, bool) {
	set := map[string]bool{}
	known := false
	for _, c := range configs {
		if str(c, "kind") != "" && str(c, "kind") != "MutatingWebhookConfiguration" {
			continue
		}
		l := stringMap(mapAt(c, "metadata")["labels"])
		for _, k := range []string{"istio.io/rev", "istio.io/tag"} {
			if v := l[k]; v != "" {
				set[v] = true
				known = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out, known
}

// InjectorRevisions implements InjectorRevisions from the webhook
// configurations added to the snapshot.
func (s *Snapshot) InjectorRevisions() ([]string, bool) { return RevisionsFromWebhooks(s.webhooks) }

// revisionFacts says whether a revision names an installed injector: true,
// false, or nil when the context cannot tell.
// revisionKnownFact is revisionKnown as a typed fact.
func (e *engine) revisionKnownFact(rev string) NullBool {
	switch v := e.revisionKnown(rev).(type) {
	case bool:
		return NullBool{Value: v, Valid: true}
	}
	return NullBool{}
}

func (e *engine) revisionKnown(rev string) any {
	ir, ok := e.ctx.(InjectorRevisions)
	if !ok || rev == "" {
		return nil
	}
	revs, known := ir.InjectorRevisions()
	if !known {
		return nil
	}
	for _, r := range revs {
		if r == rev {
			return true
		}
	}
	return false
}
