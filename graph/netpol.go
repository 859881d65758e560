package graph

import (
	"fmt"
	"math/bits"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// bitset is a set of endpoint indexes.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i/64] |= 1 << (uint(i) % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(uint(i)%64)) != 0 }
func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}
func (b bitset) fill(n int) {
	for i := 0; i < n; i++ {
		b.set(i)
	}
}
func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// npRule is one ingress or egress rule of a NetworkPolicy, with the
// endpoints its peers select.
type npRule struct {
	ports []networkingv1.NetworkPolicyPort
	peers bitset // endpoints the peers select (every endpoint for a rule without peers)
}

// npPolicy is a NetworkPolicy prepared for one direction.
type npPolicy struct {
	ref   string
	rules []npRule
	// reason is the interned "admitted by" reason plus one (0: not yet interned).
	reason int32
}

// netpols holds the prepared NetworkPolicies, by the endpoints they select.
type netpols struct {
	ingress [][]*npPolicy // by endpoint: the policies restricting its ingress
	egress  [][]*npPolicy // by endpoint: the policies restricting its egress
}

func selector(sel *metav1.LabelSelector, field string) (labels.Selector, error) {
	if sel == nil {
		return labels.Nothing(), nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return s, nil
}

// prepareNetpols resolves every NetworkPolicy's selectors against the
// endpoints. outside is the index of the outside node: it is selected by a
// rule without peers, by an ipBlock peer (it stands for addresses outside
// the cluster) and by an empty namespaceSelector (every namespace, including
// those the input does not describe).
func (g *computation) prepareNetpols() error {
	n := len(g.eps)
	g.np.ingress = make([][]*npPolicy, n)
	g.np.egress = make([][]*npPolicy, n)
	for _, p := range g.in.netpols {
		ref := p.Namespace + "/" + p.Name
		podSel, err := selector(&p.Spec.PodSelector, "spec.podSelector")
		if err != nil {
			return fmt.Errorf("NetworkPolicy %s: %w", ref, err)
		}
		ingress, egress := false, len(p.Spec.Egress) > 0
		if len(p.Spec.PolicyTypes) == 0 {
			ingress = true
		}
		for _, t := range p.Spec.PolicyTypes {
			switch t {
			case networkingv1.PolicyTypeIngress:
				ingress = true
			case networkingv1.PolicyTypeEgress:
				egress = true
			}
		}
		var in, eg *npPolicy
		if ingress {
			in = &npPolicy{ref: ref}
			for i, r := range p.Spec.Ingress {
				peers, err := g.peerSet(p.Namespace, r.From, fmt.Sprintf("spec.ingress[%d].from", i))
				if err != nil {
					return fmt.Errorf("NetworkPolicy %s: %w", ref, err)
				}
				in.rules = append(in.rules, npRule{ports: r.Ports, peers: peers})
			}
		}
		if egress {
			eg = &npPolicy{ref: ref}
			for i, r := range p.Spec.Egress {
				peers, err := g.peerSet(p.Namespace, r.To, fmt.Sprintf("spec.egress[%d].to", i))
				if err != nil {
					return fmt.Errorf("NetworkPolicy %s: %w", ref, err)
				}
				eg.rules = append(eg.rules, npRule{ports: r.Ports, peers: peers})
			}
		}
		for i, ep := range g.eps {
			if ep.node.Kind == NodeOutside || ep.node.Namespace != p.Namespace || ep.node.Assumed {
				continue
			}
			if !podSel.Matches(labels.Set(ep.labels)) {
				continue
			}
			if in != nil {
				g.np.ingress[i] = append(g.np.ingress[i], in)
			}
			if eg != nil {
				g.np.egress[i] = append(g.np.egress[i], eg)
			}
		}
	}
	return nil
}

// peerSet returns the endpoints a rule's peers select.
func (g *computation) peerSet(ns string, peers []networkingv1.NetworkPolicyPeer, field string) (bitset, error) {
	n := len(g.eps)
	out := newBitset(n)
	if len(peers) == 0 {
		out.fill(n)
		return out, nil
	}
	for j, peer := range peers {
		at := fmt.Sprintf("%s[%d]", field, j)
		if peer.IPBlock != nil {
			block, err := netip.ParsePrefix(peer.IPBlock.CIDR)
			if err != nil {
				return nil, fmt.Errorf("%s.ipBlock.cidr: %w", at, err)
			}
			var except []netip.Prefix
			for k, e := range peer.IPBlock.Except {
				x, err := netip.ParsePrefix(e)
				if err != nil {
					return nil, fmt.Errorf("%s.ipBlock.except[%d]: %w", at, k, err)
				}
				except = append(except, x)
			}
			for i, ep := range g.eps {
				if ep.node.Kind == NodeOutside {
					out.set(i)
					continue
				}
				for _, ip := range ep.ips {
					if block.Contains(ip) && !containsAny(except, ip) {
						out.set(i)
						break
					}
				}
			}
			continue
		}
		podSel, nsSel := labels.Everything(), labels.Selector(nil)
		if peer.PodSelector != nil {
			s, err := selector(peer.PodSelector, at+".podSelector")
			if err != nil {
				return nil, err
			}
			podSel = s
		}
		if peer.NamespaceSelector != nil {
			s, err := selector(peer.NamespaceSelector, at+".namespaceSelector")
			if err != nil {
				return nil, err
			}
			nsSel = s
		}
		for i, ep := range g.eps {
			if ep.node.Kind == NodeOutside {
				if nsSel != nil && nsSel.Empty() && podSel.Empty() {
					out.set(i)
				}
				continue
			}
			if nsSel == nil && ep.node.Namespace != ns {
				continue
			}
			if nsSel != nil && !nsSel.Matches(labels.Set(ep.nsLabels)) {
				continue
			}
			if podSel.Matches(labels.Set(ep.labels)) {
				out.set(i)
			}
		}
	}
	return out, nil
}

func containsAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// portAdmitted reports whether a rule's ports admit a TCP port of the
// destination endpoint: no ports admits every port; an entry admits its
// protocol (TCP by default) on its number, its range up to endPort, the
// destination's container port of its name, or every port without a number.
func portAdmitted(ports []networkingv1.NetworkPolicyPort, port int, named map[string]int) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.String { // a named port
			if n, ok := named[p.Port.StrVal]; ok && n == port {
				return true
			}
			continue
		}
		lo := int(p.Port.IntVal)
		hi := lo
		if p.EndPort != nil && int(*p.EndPort) >= lo {
			hi = int(*p.EndPort)
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

// admits returns the first policy of a direction that admits the peer on
// the port, or nil and false when one restricts the direction and none admits.
// restricted is false when no policy selects the endpoint for the direction.
func admits(policies []*npPolicy, peer int, port int, named map[string]int) (by *npPolicy, ok, restricted bool) {
	if len(policies) == 0 {
		return nil, true, false
	}
	for _, p := range policies {
		for _, r := range p.rules {
			if r.peers.has(peer) && portAdmitted(r.ports, port, named) {
				return p, true, true
			}
		}
	}
	return nil, false, true
}

// refsOf lists the policies of a direction, for a denial.
func refsOf(policies []*npPolicy) []string {
	out := make([]string, 0, len(policies))
	for _, p := range policies {
		out = append(out, p.ref)
	}
	return out
}
