package webhook

import (
	"context"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/meshguard/meshguard/rules"
)

// istiodDeployments keeps istiod's Deployments (label app=istiod), the
// second source of the Istio release per revision after the injector's
// webhook configurations (rules.MergeInjectorVersions): charts before 1.24
// and istioctl installs do not label the webhook configuration. It is a
// cache of its own, restricted to that label, so it neither widens nor
// narrows the manager's Deployment informer (which the background audit and
// the NetworkPolicy intent read in full). Until it has synced, or when
// meshguard may not list Deployments, it contributes nothing: the webhook
// configurations' labels and --istio-version still decide.
type istiodDeployments struct {
	cache  cache.Cache
	synced atomic.Bool
	mu     sync.Mutex // serializes prepare
	objs   atomic.Pointer[[]rules.Object]
}

// newIstiodDeployments builds the cache from the manager's configuration,
// watching only the namespaces whose istiod counts (the engine ignores
// Deployments labelled app=istiod anywhere else).
func newIstiodDeployments(mgr manager.Manager, namespaces []string) (*istiodDeployments, error) {
	nss := map[string]cache.Config{}
	for _, ns := range namespaces {
		nss[ns] = cache.Config{}
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), DefaultNamespaces: nss,
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: labels.SelectorFromSet(labels.Set{"app": "istiod"})},
		},
		// Only labels and the discovery container's image are read.
		DefaultTransform: func(obj any) (any, error) {
			if d, ok := obj.(*appsv1.Deployment); ok {
				d.ManagedFields, d.Annotations, d.Status = nil, nil, appsv1.DeploymentStatus{}
				spec := d.Spec.Template.Spec
				d.Spec = appsv1.DeploymentSpec{}
				for _, c := range spec.Containers {
					d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
				}
			}
			return obj, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return &istiodDeployments{cache: c}, nil
}

// NeedLeaderElection: every replica judges requests.
func (d *istiodDeployments) NeedLeaderElection() bool { return false }

// Start runs the cache until ctx ends. The objects the rules read are
// prepared once after the cache has synced and again on every change, so a
// request never lists or converts them.
func (d *istiodDeployments) Start(ctx context.Context) error {
	inf, err := d.cache.GetInformer(ctx, &appsv1.Deployment{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	changed := func(any) {
		if d.synced.Load() {
			d.prepare(ctx)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: changed, DeleteFunc: changed, UpdateFunc: func(_, n any) { changed(n) },
	}); err != nil {
		return err
	}
	go func() {
		if d.cache.WaitForCacheSync(ctx) {
			d.synced.Store(true)
			d.prepare(ctx)
		}
	}()
	return d.cache.Start(ctx)
}

// prepare converts the cached Deployments into what the rules read
// (labels, namespace, containers' names and images).
func (d *istiodDeployments) prepare(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var l appsv1.DeploymentList
	if err := d.cache.List(ctx, &l); err != nil {
		return // the last prepared set stays
	}
	objs := make([]rules.Object, 0, len(l.Items))
	for i := range l.Items {
		dep := &l.Items[i]
		lm := make(map[string]any, len(dep.Labels))
		for k, v := range dep.Labels {
			lm[k] = v
		}
		var cs []any
		for _, c := range dep.Spec.Template.Spec.Containers {
			cs = append(cs, map[string]any{"name": c.Name, "image": c.Image})
		}
		objs = append(objs, rules.Object{"kind": "Deployment", "metadata": map[string]any{"labels": lm, "namespace": dep.Namespace, "name": dep.Name},
			"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": cs}}}})
	}
	d.objs.Store(&objs)
}

// objects returns istiod's Deployments as prepared; nil until the cache has
// synced. The slice is shared and must not be modified.
func (d *istiodDeployments) objects() []rules.Object {
	if d == nil {
		return nil
	}
	if p := d.objs.Load(); p != nil {
		return *p
	}
	return nil
}
