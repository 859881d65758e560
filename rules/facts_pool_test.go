package rules

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
)

// TestWorkloadFactsPoolConcurrent evaluates different workloads from many
// goroutines at once, as the webhook does, and checks that each gets the
// facts and findings it gets alone: pooled WorkloadFacts are never shared
// between evaluations and the maps Map returns hold nothing of them. Run
// with -race to check the pool's hand-over.
func TestWorkloadFactsPoolConcurrent(t *testing.T) {
	e, snap := benchEngine(t)
	var reqs []*Request
	for _, bc := range benchCases {
		obj, _ := loadBench(t, bc.file)
		reqs = append(reqs, &Request{Object: obj, Context: snap, PostInjection: bc.post})
	}
	type result struct{ facts, findings string }
	eval := func(req *Request) (result, error) {
		p, err := e.prepare(req)
		if err != nil {
			return result{}, err
		}
		facts, _ := json.Marshal(p.facts)
		fs, err := e.Evaluate(context.Background(), req)
		if err != nil {
			return result{}, err
		}
		findings, _ := json.Marshal(fs)
		return result{string(facts), string(findings)}, nil
	}
	want := make([]result, len(reqs))
	for i, r := range reqs {
		res, err := eval(r)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res
	}
	if want[0].facts == want[1].facts {
		t.Fatal("the Pod and the Deployment have the same facts: the test cannot tell them apart")
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				i := (g + n) % len(reqs)
				got, err := eval(reqs[i])
				if err != nil {
					errs <- err.Error()
					return
				}
				if got != want[i] {
					errs <- "goroutine got other facts or findings for " + benchCases[i].name
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}
