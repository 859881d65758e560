package platform

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/rules"
)

// discoveryServer answers the API server's discovery with the given groups,
// or with 503 when groups is nil.
func discoveryServer(t *testing.T, groups []string) *rest.Config {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if groups == nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api":
			_, _ = w.Write([]byte(`{"kind":"APIVersions","versions":["v1"]}`))
		case "/apis":
			body := `{"kind":"APIGroupList","apiVersion":"v1","groups":[`
			for i, g := range groups {
				if i > 0 {
					body += ","
				}
				body += `{"name":"` + g + `","versions":[{"groupVersion":"` + g + `/v1","version":"v1"}],"preferredVersion":{"groupVersion":"` + g + `/v1","version":"v1"}}`
			}
			_, _ = w.Write([]byte(body + `]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		groups []string
		want   string
	}{
		{[]string{"apps", "security.openshift.io", "route.openshift.io"}, rules.PlatformOpenShift},
		{[]string{"apps", "security.istio.io"}, rules.PlatformKubernetes},
	} {
		got, err := Detect(discoveryServer(t, tc.groups))
		if err != nil || got != tc.want {
			t.Errorf("groups %v: %q, %v; want %q", tc.groups, got, err, tc.want)
		}
	}
	if _, err := Detect(discoveryServer(t, nil)); err == nil {
		t.Error("a discovery failure must be an error, not a guess")
	}
	// An explicit platform is never overridden.
	c := rules.NewConfig()
	c.Platform = rules.PlatformOpenShift
	if err := Resolve(discoveryServer(t, []string{"apps"}), c); err != nil || c.Platform != rules.PlatformOpenShift {
		t.Errorf("Resolve overrode --platform: %q %v", c.Platform, err)
	}
	c.Platform = ""
	if err := Resolve(discoveryServer(t, []string{"apps"}), c); err != nil || c.Platform != rules.PlatformKubernetes {
		t.Errorf("Resolve: %q %v", c.Platform, err)
	}
}
