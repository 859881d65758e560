package audit

import (
	"context"

	"github.com/meshguard/meshguard/rules"
)

// ClusterObjects is what ListCluster read.
type ClusterObjects struct {
	// Objects are every object listed, as decoded JSON (float64 numbers).
	Objects []rules.Object
	// Unavailable are the kinds the cluster does not serve.
	Unavailable []UnavailableKind
	// Errors are the lists that failed (forbidden, expired continue token).
	Errors []InputError
}

// ListCluster lists every object of the given kinds that the cluster serves,
// paged, with the same discovery and paging as RunCluster, and holds them in
// memory (for callers that need every object at once, such as the
// allowed-traffic graph). The error is for a cluster that cannot be asked at
// all (discovery fails); a failed list is in ClusterObjects.Errors.
func ListCluster(ctx context.Context, cl *ClusterClients, kinds []rules.KindInfo, pageSize int64) (*ClusterObjects, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	resolved, unavailable, err := resolveKinds(ctx, cl.Discovery, kinds)
	if err != nil {
		return nil, err
	}
	out := &ClusterObjects{Unavailable: unavailable}
	for _, k := range resolved {
		kl := KindListing{Group: k.info.Group, Version: k.version, Kind: k.info.Kind, Resource: k.info.Resource}
		if err := listPaged(ctx, cl.Dynamic, k.gvr(), pageSize, "", &kl, func(obj rules.Object) { out.Objects = append(out.Objects, obj) }); err != nil {
			out.Errors = append(out.Errors, listError(k, err))
		}
	}
	return out, nil
}

// ClusterDocument returns a cluster object as a Document located with
// ClusterLocation, as RunCluster reports it.
func ClusterDocument(obj rules.Object) Document { return clusterDocument(obj) }
