// Package platform detects the Kubernetes distribution meshguard runs on,
// for the semantics that depend on it (rules.Config.Platform).
package platform

import (
	"fmt"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/rules"
)

// openShiftGroup is served only by OpenShift's API server: the group of
// SecurityContextConstraints.
const openShiftGroup = "security.openshift.io"

// Detect returns rules.PlatformOpenShift when the cluster serves OpenShift's
// security API, rules.PlatformKubernetes otherwise. A discovery failure is an
// error, never a guess.
func Detect(cfg *rest.Config) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("detect the platform: %w", err)
	}
	groups, err := dc.ServerGroups()
	if err != nil {
		return "", fmt.Errorf("detect the platform (set --platform to skip detection): %w", err)
	}
	for _, g := range groups.Groups {
		if g.Name == openShiftGroup {
			return rules.PlatformOpenShift, nil
		}
	}
	return rules.PlatformKubernetes, nil
}

// Resolve sets c.Platform from the cluster when it is empty (auto).
func Resolve(cfg *rest.Config, c *rules.Config) error {
	if c.Platform != "" {
		return nil
	}
	p, err := Detect(cfg)
	if err != nil {
		return err
	}
	c.Platform = p
	return nil
}
