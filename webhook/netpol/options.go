package netpol

import (
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// ctrlOptions are the controller's options. Names are unique per process in
// controller-runtime; tests start several servers in one process.
func ctrlOptions(skipNameValidation bool) controller.Options {
	// A namespace that cannot be prepared (an admission policy, a quota) is
	// retried with backoff capped at 30s, so its pods wait seconds, not
	// controller-runtime's default of up to 16 minutes.
	return controller.Options{
		SkipNameValidation:      &skipNameValidation,
		MaxConcurrentReconciles: 2,
		RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 30*time.Second),
	}
}
