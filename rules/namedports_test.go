package rules

import (
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestResolveNamedPort checks named-port resolution against the endpoints
// controllers' FindPort: the protocol must match (TCP by default), and init
// containers count only when restartable (sidecar containers).
func TestResolveNamedPort(t *testing.T) {
	var pods []Object
	for _, doc := range []string{
		// The name on UDP and on TCP: the protocol decides.
		`{metadata: {name: dns, labels: {app: a}}, spec: {containers: [{name: c, ports: [{name: p, containerPort: 5353, protocol: UDP}, {name: p, containerPort: 15000}]}]}}`,
		// A restartable init container serves the name; a plain one has exited.
		`{metadata: {name: side, labels: {app: b}}, spec: {initContainers: [{name: s, restartPolicy: Always, ports: [{name: p, containerPort: 15001}]}], containers: [{name: c}]}}`,
		`{metadata: {name: init, labels: {app: c}}, spec: {initContainers: [{name: i, ports: [{name: p, containerPort: 15004}]}], containers: [{name: c}]}}`,
		// A container's port wins over a sidecar's of the same name.
		`{metadata: {name: both, labels: {app: d}}, spec: {initContainers: [{name: s, restartPolicy: Always, ports: [{name: p, containerPort: 15002}]}], containers: [{name: c, ports: [{name: p, containerPort: 8080}]}]}}`,
	} {
		var o Object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, o)
	}
	for _, tc := range []struct {
		app, protocol string
		want          []namedPortHit
	}{
		{"a", "", []namedPortHit{{pod: "dns", port: 15000}}},
		{"a", "TCP", []namedPortHit{{pod: "dns", port: 15000}}},
		{"a", "UDP", []namedPortHit{{pod: "dns", port: 5353}}},
		{"a", "SCTP", []namedPortHit{}},
		{"b", "", []namedPortHit{{pod: "side", port: 15001}}},
		{"c", "", []namedPortHit{}},
		{"d", "", []namedPortHit{{pod: "both", port: 8080}}},
	} {
		got := resolveNamedPort(pods, labelsMatch(map[string]string{"app": tc.app}), "p", tc.protocol)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("app=%s protocol %q: got %+v, want %+v", tc.app, tc.protocol, got, tc.want)
		}
	}
}
