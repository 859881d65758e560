package rules

import (
	"regexp"
	"strings"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"github.com/kyverno/kyverno-json/pkg/apis/policy/v1alpha1"
	"github.com/kyverno/kyverno-json/pkg/core/compilers/jp"
	"github.com/kyverno/kyverno-json/pkg/core/message"
)

// A finding's offending items (Finding.Items) are what grandfathering
// compares between an object and its previous version: "every item of the
// new finding was already there". A message that lists its items is written
// {{ join('; ', LIST) }}REST; its items are then LIST's elements, each
// followed by the rendered REST, taken from the list itself rather than by
// splitting the message text, in which a user's own strings (a host, a
// name) could hold "; " and forge an item. Any other message is one item.

// firstPlaceholder is kyverno-json's template syntax: the first {{ ... }}.
var firstPlaceholder = regexp.MustCompile(`^\s*{{(.*?)}}`)

// itemizer evaluates an itemized message's list and rest.
type itemizer struct {
	list parsing.ASTNode
	rest message.Message
}

// newItemizer returns the itemizer of a message that starts with
// {{ join('; ', LIST) }}, or nil.
func newItemizer(m *v1alpha1.Message) *itemizer {
	if m == nil {
		return nil
	}
	orig := m.Original()
	loc := firstPlaceholder.FindStringSubmatchIndex(orig)
	if loc == nil {
		return nil
	}
	stmt := strings.TrimSpace(orig[loc[2]:loc[3]])
	inner, ok := strings.CutPrefix(stmt, "join('; ',")
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil
	}
	ast, err := parsing.NewParser().Parse(strings.TrimSpace(strings.TrimSuffix(inner, ")")))
	if err != nil {
		return nil
	}
	return &itemizer{list: ast, rest: message.Parse(orig[loc[1]:])}
}

// items returns the offending items of a failed assertion whose formatted
// message is msg. When the list cannot be evaluated as a list of strings
// (it then could not have been joined either), the message is the one item.
func (a *assertion) items(resource any, bindings binding.Bindings, msg string) []string {
	if a.itemized == nil {
		return []string{msg}
	}
	v, err := jp.Execute(a.itemized.list, resource, bindings, a.jpOptions...)
	list, ok := v.([]any)
	if err != nil || !ok {
		return []string{msg}
	}
	rest := a.itemized.rest.Format(resource, bindings, a.jpOptions...)
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return []string{msg}
		}
		out = append(out, s+rest)
	}
	return out
}
