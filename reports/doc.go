// Package reports renders meshguard's findings as policy report objects, the
// shape that Policy Reporter, Kyverno's tooling and other report consumers
// read: OpenReports (openreports.io/v1alpha1 Report and ClusterReport, the
// default) or the older wgpolicyk8s.io/v1alpha2 PolicyReport and
// ClusterPolicyReport.
//
// Building a report is a pure function of the findings (Build, BuildAll): the
// same findings give the same report, byte for byte, apart from the
// timestamps of results that are new. `meshguard audit -o openreports`
// writes these objects as a YAML stream and `meshguard serve`'s background
// audit (package posture) writes the same objects into the cluster, so CI
// output and cluster output are the same.
//
// The shape of a report:
//
//   - One Report per namespace, named "meshguard", holding the findings of
//     every object in the namespace and of the Namespace object itself (so a
//     namespace's report is its whole posture and the ClusterReport does not
//     grow with the number of namespaces); one ClusterReport named
//     "meshguard" for the other cluster-scoped objects.
//   - One result per finding: policy is the catalog's policy name
//     (MESH0150-priv-net-admin), rule its code (MESH0150), severity its
//     severity in lower case, result "fail", message the rule's fix
//     (remediation), the object as the single subject (apiVersion, kind,
//     namespace, name; no uid or resourceVersion, so the subject is the same
//     offline and in the cluster and does not change with every update), source
//     "meshguard", and properties "title" (the rule's title) and "details"
//     (what is wrong, quoting the offending items).
//   - Results are ordered by subject (kind, namespace, name, apiVersion), then
//     code and details. A report holds at most MaxResults results (the most
//     severe are kept); summary.fail always counts every finding, and an
//     OpenReports report states the cap in configuration.limits.maxResults.
//   - Reports with no findings are kept, with an empty result list and a zero
//     summary: a namespace without a report has not been audited, one with an
//     empty report has been audited and is clean.
package reports
