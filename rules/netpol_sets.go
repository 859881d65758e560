package rules

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// NetworkPolicy rules are judged by what they admit, not by how they are
// spelled (issue 9): the ports a rule admits are a set of port ranges per
// protocol, its ipBlock peers a set of address ranges per family, and a
// selector either names some objects or matches every one. "Everything" is
// then compared as a set:
//
//   - every port: the ports list is empty, or the TCP ranges it admits cover
//     1-65535 (an entry without a port number admits every port of its
//     protocol, TCP by default). TCP is what the mesh carries and what Istio
//     captures, so a rule open on every TCP port is open for every mesh
//     service whatever it says about UDP or SCTP.
//   - every address: the union of the ipBlocks of a direction, each CIDR minus
//     its excepts, covers every IPv4 address or every IPv6 address (a
//     single-stack cluster has no other). A literal /0 counts with or without
//     except, as RULES.md MESH0212 says.
//   - every namespace: a namespaceSelector whose requirements all match every
//     namespace: none; kubernetes.io/metadata.name Exists (the API server sets
//     it on every namespace); NotIn (every namespace but the listed ones);
//     DoesNotExist on any other key (every namespace without that label, which
//     meshguard cannot prove some namespace has). Pods alike, except that no
//     pod label is known to exist on every pod.

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi int64 }

// admitsEveryTCPPort reports whether a rule's ports admit every TCP port, and
// how: "" for an empty list, else a phrase for the message.
func admitsEveryTCPPort(ports []any) (bool, string) {
	if len(ports) == 0 {
		return true, ""
	}
	var tcp []portRange
	protocolOnly := true
	for _, p := range ports {
		pm := asMap(p)
		proto := strings.ToUpper(str(pm, "protocol"))
		if proto == "" {
			proto = "TCP"
		}
		if proto != "TCP" {
			continue
		}
		if _, has := pm["port"]; !has || pm["port"] == nil {
			tcp = append(tcp, portRange{1, 65535})
			continue
		}
		protocolOnly = false
		port, ok := intAt(pm, "port")
		if !ok {
			continue // a named port admits only the ports of that name
		}
		end := port
		if e, ok := intAt(pm, "endPort"); ok && e > port {
			end = e
		}
		tcp = append(tcp, portRange{port, end})
	}
	if !coversAllPorts(tcp) {
		return false, ""
	}
	if protocolOnly {
		return true, "its ports carry no port number, so every port"
	}
	return true, "its port ranges cover every TCP port 1-65535"
}

func coversAllPorts(rs []portRange) bool {
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	next := int64(1)
	for _, r := range rs {
		if r.lo > next {
			return false
		}
		if r.hi+1 > next {
			next = r.hi + 1
		}
		if next > 65535 {
			return true
		}
	}
	return false
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ lo, hi netip.Addr }

// prefixRange returns the first and last address of a prefix.
func prefixRange(p netip.Prefix) addrRange {
	p = p.Masked()
	return addrRange{p.Addr(), lastAddr(p)}
}

// subtract removes r from each range.
func subtract(rs []addrRange, r addrRange) []addrRange {
	var out []addrRange
	for _, x := range rs {
		if x.lo.Is4() != r.lo.Is4() || r.hi.Less(x.lo) || x.hi.Less(r.lo) {
			out = append(out, x)
			continue
		}
		if x.lo.Less(r.lo) {
			out = append(out, addrRange{x.lo, r.lo.Prev()})
		}
		if r.hi.Less(x.hi) {
			out = append(out, addrRange{r.hi.Next(), x.hi})
		}
	}
	return out
}

// rangesCover reports whether the ranges of one family cover all of it.
func rangesCover(rs []addrRange, v4 bool) bool {
	var fam []addrRange
	for _, r := range rs {
		if r.lo.Is4() == v4 {
			fam = append(fam, r)
		}
	}
	sort.Slice(fam, func(i, j int) bool { return fam[i].lo.Less(fam[j].lo) })
	next := netip.IPv6Unspecified()
	last := netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	if v4 {
		next, last = netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255")
	}
	for _, r := range fam {
		if next.Less(r.lo) {
			return false
		}
		if r.hi == last {
			return true
		}
		if !r.hi.Less(next) {
			next = r.hi.Next()
		}
	}
	return false
}

// ipBlockRanges returns the ranges an ipBlock admits (its CIDR minus its
// excepts); invalid CIDRs admit nothing (the API server rejects them).
func ipBlockRanges(block map[string]any) []addrRange {
	p, err := netip.ParsePrefix(str(block, "cidr"))
	if err != nil {
		return nil
	}
	rs := []addrRange{prefixRange(p)}
	for _, e := range listAt(block, "except") {
		s, _ := e.(string)
		if ep, err := netip.ParsePrefix(s); err == nil {
			rs = subtract(rs, prefixRange(ep))
		}
	}
	return rs
}

// everyAddress reports which families a set of ranges covers, as a phrase
// ("every IPv4 address", "every IPv4 and IPv6 address"), or "".
func everyAddress(rs []addrRange) string {
	v4, v6 := rangesCover(rs, true), rangesCover(rs, false)
	switch {
	case v4 && v6:
		return "every IPv4 and IPv6 address"
	case v4:
		return "every IPv4 address"
	case v6:
		return "every IPv6 address"
	}
	return ""
}

// selectorMatchesAll reports whether a label selector matches every
// namespace (namespaces true) or every pod, and a description of the
// requirements that make it so ("" for an empty selector).
func selectorMatchesAll(sel map[string]any, namespaces bool) (bool, string) {
	if len(mapAt(sel, "matchLabels")) > 0 {
		return false, ""
	}
	var why []string
	for _, e := range listAt(sel, "matchExpressions") {
		em := asMap(e)
		key, op := str(em, "key"), str(em, "operator")
		var vals []string
		for _, v := range listAt(em, "values") {
			if s, ok := v.(string); ok {
				vals = append(vals, s)
			}
		}
		switch {
		case op == "Exists" && namespaces && key == "kubernetes.io/metadata.name":
			why = append(why, key+" Exists")
		case op == "NotIn":
			why = append(why, fmt.Sprintf("%s NotIn [%s]", key, strings.Join(vals, ", ")))
		case op == "DoesNotExist" && !(namespaces && key == "kubernetes.io/metadata.name"):
			why = append(why, key+" DoesNotExist")
		default:
			return false, ""
		}
	}
	return true, strings.Join(why, ", ")
}

// netpolPeerFacts appends, for one direction in effect: the rules that admit
// every source (or destination) on every port, the ipBlock peers whose union
// covers every address, and the peers that admit every pod of every
// namespace.
func netpolPeerFacts(spec map[string]any, dir, peers string, on bool, allowAll, anyIP, allNS []string) ([]string, []string, []string, error) {
	if !on {
		return allowAll, anyIP, allNS, nil
	}
	anyIPFrom := len(anyIP)
	var union []addrRange
	var pieces []string
	for i, r := range listAt(spec, dir) {
		rm := asMap(r)
		at := fmt.Sprintf("spec.%s[%d]", dir, i)
		ps := listAt(rm, peers)
		var ruleRanges []addrRange
		var rulePieces []string
		for j, p := range ps {
			pm, ok := p.(map[string]any)
			if !ok {
				return nil, nil, nil, fmt.Errorf("%s.%s[%d]: expected object, got %s", at, peers, j, jsonType(p))
			}
			pat := fmt.Sprintf("%s.%s[%d]", at, peers, j)
			if block := mapAt(pm, "ipBlock"); block != nil {
				if err := checkType(block, pat+".ipBlock", "except", "array"); err != nil {
					return nil, nil, nil, err
				}
				cidr := str(block, "cidr")
				if pr, perr := netip.ParsePrefix(cidr); perr == nil && pr.Bits() == 0 {
					anyIP = append(anyIP, fmt.Sprintf("%s.ipBlock.cidr %s", pat, cidr))
				}
				rs := ipBlockRanges(block)
				ruleRanges = append(ruleRanges, rs...)
				if len(rs) > 0 {
					rulePieces = append(rulePieces, fmt.Sprintf("%s.ipBlock %s", pat, cidr))
				}
			}
			if nsSel, has := pm["namespaceSelector"]; has {
				nsAll, nsWhy := selectorMatchesAll(asMap(nsSel), true)
				podAll, podWhy := selectorMatchesAll(mapAt(pm, "podSelector"), false)
				if nsAll && podAll {
					if nsWhy == "" && podWhy == "" {
						allNS = append(allNS, pat)
					} else {
						var how []string
						if nsWhy != "" {
							how = append(how, "namespaceSelector "+nsWhy+" matches every namespace")
						}
						if podWhy != "" {
							how = append(how, "podSelector "+podWhy+" matches every pod")
						}
						allNS = append(allNS, fmt.Sprintf("%s (%s)", pat, strings.Join(how, ", ")))
					}
				}
			}
		}
		union = append(union, ruleRanges...)
		pieces = append(pieces, rulePieces...)
		portsAll, portsWhy := admitsEveryTCPPort(listAt(rm, "ports"))
		if !portsAll {
			continue
		}
		peersWhy := ""
		if len(ps) > 0 {
			every := everyAddress(ruleRanges)
			if every == "" {
				continue
			}
			peersWhy = fmt.Sprintf("its ipBlocks cover %s", every)
		}
		switch {
		case peersWhy == "" && portsWhy == "":
			allowAll = append(allowAll, at)
		case peersWhy == "":
			allowAll = append(allowAll, fmt.Sprintf("%s (%s)", at, portsWhy))
		case portsWhy == "":
			allowAll = append(allowAll, fmt.Sprintf("%s (%s)", at, peersWhy))
		default:
			allowAll = append(allowAll, fmt.Sprintf("%s (%s, and %s)", at, peersWhy, portsWhy))
		}
	}
	// Pieces that only together cover every address (a literal /0 is
	// already listed as it is).
	if len(anyIP) == anyIPFrom {
		if every := everyAddress(union); every != "" {
			anyIP = append(anyIP, fmt.Sprintf("%s (together %s)", strings.Join(pieces, " with "), every))
		}
	}
	return allowAll, anyIP, allNS, nil
}

// selectsEveryPod reports whether a podSelector selects every pod of the
// namespace: empty, or only NotIn and DoesNotExist requirements.
func selectsEveryPod(sel map[string]any) bool {
	all, _ := selectorMatchesAll(sel, false)
	return all
}
