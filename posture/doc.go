// Package posture is the background audit of `meshguard serve`: on the
// leader, it judges every object of the kinds the rule catalog covers with
// the same rules and the same context as admission (the webhook's informer
// caches; no second copy of the cluster) and keeps the findings in policy
// report objects (package reports): one Report per namespace and a
// ClusterReport, in OpenReports or wgpolicyk8s format.
//
// The unit of work is a scope: a namespace (its objects and the Namespace
// itself) or the cluster scope (""). A scope is re-judged, debounced and
// coalesced in a rate-limited workqueue:
//
//   - when one of its objects is created, changed or deleted;
//   - when context it read during its last judgment changes. Every read the
//     rules make goes through a recording rules.Context that registers the
//     scope as a dependent of what it read (a namespace's labels, the
//     PeerAuthentications or AuthorizationPolicies of a namespace, the pods or
//     Services of a namespace, the webhook configurations) before reading
//     it, so a change to any of them re-judges exactly the scopes that read
//     it: a namespace's labels re-judge that namespace and the scopes whose
//     DestinationRules point at its hosts; a mesh-wide PeerAuthentication
//     re-judges every scope (they all read the root namespace's policies);
//     an AuthorizationPolicy re-judges the scopes whose RequestAuthentications
//     read its namespace's policies. The recording is sound by
//     construction: the rules can read context only through rules.Context;
//   - on every full resync (Options.Interval), which also re-reads the stored
//     reports and repairs any that someone else changed or deleted.
//
// A report is written only when its content changes: the desired report is
// built by reports.Build, results already stored keep their timestamps, and
// the content is compared with the stored report before anything is written.
// Reports have fixed names, so a restart finds and keeps them (no
// duplicates, no rewrites). A judgment whose context could not be read
// (a cache not synced, an Istio API being discovered) writes nothing and is
// retried with backoff: a report never says "clean" on a guess.
package posture
