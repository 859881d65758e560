package rules

import "errors"

// FixtureAdminGroup makes the requester of a fixture AdmissionReview a
// meshguard admin.
const FixtureAdminGroup = "meshguard-admins"

// FixtureRequest builds the request for a fixture document as the webhook
// would: an AdmissionReview is the webhook's request (its object, or its
// oldObject on DELETE, its operation, namespace and requester), anything else
// a manifest, judged post-injection when post is set. Shared by the catalog
// tests (package rules_test) and the differential test.
func FixtureRequest(doc map[string]any, snap *Snapshot, post bool) (*Request, error) {
	req := &Request{Object: doc, Context: snap, PostInjection: post}
	if doc["kind"] != "AdmissionReview" {
		return req, nil
	}
	r, _ := doc["request"].(map[string]any)
	if r == nil {
		return nil, errors.New("AdmissionReview without request")
	}
	req.Admission = true
	req.Object, _ = r["object"].(map[string]any)
	req.OldObject, _ = r["oldObject"].(map[string]any)
	req.Operation, _ = r["operation"].(string)
	if req.Operation == "DELETE" {
		req.Object = req.OldObject
	}
	req.DefaultNamespace, _ = r["namespace"].(string)
	req.PostInjection = req.Object != nil && req.Object["kind"] == "Pod" && req.Operation == "CREATE"
	if ui, ok := r["userInfo"].(map[string]any); ok {
		req.User = &User{}
		req.User.Username, _ = ui["username"].(string)
		groups, _ := ui["groups"].([]any)
		for _, g := range groups {
			if s, ok := g.(string); ok {
				req.User.Groups = append(req.User.Groups, s)
				req.User.Admin = req.User.Admin || s == FixtureAdminGroup
			}
		}
	}
	return req, nil
}
