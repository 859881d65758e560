package rules

import (
	"fmt"
	"strings"
)

// identityFacts adds the facts of MESH0143 (a container that can switch to
// the proxy UID or GID at runtime) and MESH0144 (a container whose UID is
// left to its image) to one container's facts cf:
//
//   - uidUnset: no runAsUser in the container or pod securityContext, so the
//     image's USER decides, which admission cannot see (it may be 1337);
//     uidUnsetText says so, "" when a runAsUser is set.
//   - becomeProxyText: why the container can become the proxy's UID or GID,
//     "" when it cannot. A process running as root that keeps CAP_SETUID or
//     CAP_SETGID (both are in the container runtimes' default set) can
//     setuid(1337) or setgid(1337); "root" is runAsUser 0, or no runAsUser
//     without runAsNonRoot: true (container value, else the pod's). With
//     allowPrivilegeEscalation not false (the default), no_new_privs is not
//     set and a setuid binary in the image (su, sudo, one owned by 1337)
//     changes the UID on exec. Capability names are normalised as the
//     runtimes do (case, CAP_ prefix), drop ALL drops both, and an add
//     restores what a drop removed.
//   - becomeProxyExplicit: the container is explicitly root (runAsUser 0)
//     and keeps SETUID or SETGID, rather than leaving its user to the image
//     or only allowing escalation (MESH0143 is Medium then, Low otherwise).
//
// hasUser and runAsUser are the effective runAsUser (container, else pod);
// the pod securityContext's types were checked by the caller.
func identityFacts(cf *ContainerFacts, ref, cpath string, sc, podSC map[string]any, hasUser bool, runAsUser int64) error {
	for _, f := range []struct {
		m    map[string]any
		path string
		key  string
	}{
		{sc, cpath + ".securityContext", "runAsNonRoot"},
		{sc, cpath + ".securityContext", "allowPrivilegeEscalation"},
	} {
		if v, bad := wrongType(f.m, f.key, "boolean"); bad {
			return typeError(f.path, f.key, "boolean", v)
		}
	}
	caps := mapAt(sc, "capabilities")
	if v, bad := wrongType(caps, "drop", "array"); bad {
		return typeError(cpath+".securityContext.capabilities", "drop", "array", v)
	}
	dropped := map[string]bool{}
	for j, d := range listAt(caps, "drop") {
		s, ok := d.(string)
		if !ok {
			return fmt.Errorf("%s.securityContext.capabilities.drop[%d]: expected string, got %s", cpath, j, jsonType(d))
		}
		dropped[normalizeCap(s)] = true
	}
	added := map[string]bool{}
	for _, a := range listAt(caps, "add") {
		if s, ok := a.(string); ok { // the caller checked the type
			added[normalizeCap(s)] = true
		}
	}
	privileged := boolAt(sc, "privileged") // every capability, whatever is dropped
	keeps := func(c string) bool { return privileged || added[c] || added["ALL"] || !dropped[c] && !dropped["ALL"] }

	nonRoot, nonRootSet := sc["runAsNonRoot"].(bool)
	if !nonRootSet {
		nonRoot = boolAt(podSC, "runAsNonRoot")
	}
	var reasons []string
	explicitRoot := false
	root := ""
	switch {
	case hasUser && runAsUser == 0:
		root = "runs as root (runAsUser 0)"
	case !hasUser && !nonRoot:
		root = "may run as root (no runAsUser, and runAsNonRoot is not true)"
	}
	if root != "" {
		var kept []string
		for _, c := range []string{"SETUID", "SETGID"} {
			if keeps(c) {
				kept = append(kept, c)
			}
		}
		if len(kept) > 0 {
			word := " and keeps capability "
			if len(kept) > 1 {
				word = " and keeps capabilities "
			}
			reasons = append(reasons, root+word+strings.Join(kept, " and ")+", so it can switch to the proxy's UID or GID")
			explicitRoot = hasUser
		}
	}
	if ape, set := sc["allowPrivilegeEscalation"].(bool); !set || ape {
		reasons = append(reasons, "does not set allowPrivilegeEscalation: false, so setuid binaries can change its UID")
	}
	text := ""
	if len(reasons) > 0 {
		text = ref + " " + strings.Join(reasons, ", and ")
	}
	cf.UIDUnset = !hasUser
	cf.UIDUnsetText = ""
	if !hasUser {
		cf.UIDUnsetText = ref + " sets no runAsUser (neither does the pod securityContext), so its image's USER decides"
	}
	cf.BecomeProxyText = text
	cf.BecomeProxyExplicit = explicitRoot
	return nil
}
