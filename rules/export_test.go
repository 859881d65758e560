package rules

// FactsOf returns the $facts binding the engine computes for a request
// (nil when no rule applies to the object's kind), for the facts
// equivalence test of package rules_test.
func (e *Engine) FactsOf(req *Request) (map[string]any, error) {
	p, err := e.prepare(req)
	if err != nil || p == nil {
		return nil, err
	}
	return p.facts, nil
}
