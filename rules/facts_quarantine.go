package rules

import "strings"

// Quarantine keys (`meshguard quarantine`): the label on the workload, its
// pod template and its pods, and the annotations recording who, when and why.
const (
	labelQuarantined      = "meshguard.io/quarantined"
	annQuarantinePrefix   = "meshguard.io/quarantine-"
	labelQuarantinePolicy = "meshguard.io/quarantine"
)

// quarantineTamper lists what an UPDATE does to a quarantined workload's
// quarantine keys (MESH0108): the label on the object or its pod template,
// and the meshguard.io/quarantine-* annotations. Empty unless the object was
// quarantined before the request (the label on the old object).
func quarantineTamper(obj Object, info KindInfo, req *Request) []string {
	old := req.OldObject
	if req.Operation != "UPDATE" || old == nil {
		return nil
	}
	oldMeta, meta := mapAt(old, "metadata"), mapAt(obj, "metadata")
	if stringMap(oldMeta["labels"])[labelQuarantined] == "" {
		return nil
	}
	var out []any
	out = append(out, quarantineKeyChanges("label", "", stringMap(oldMeta["labels"]), stringMap(meta["labels"]))...)
	out = append(out, quarantineKeyChanges("annotation", "", stringMap(oldMeta["annotations"]), stringMap(meta["annotations"]))...)
	if len(info.PodTemplate) > 0 {
		ot, nt := mapAt(old, info.PodTemplate...), mapAt(obj, info.PodTemplate...)
		out = append(out, quarantineKeyChanges("label", "pod template ", stringMap(mapAt(mapAt(ot, "metadata"), "labels")), stringMap(mapAt(mapAt(nt, "metadata"), "labels")))...)
	}
	texts := make([]string, 0, len(out))
	for _, c := range out {
		texts = append(texts, c.(string))
	}
	return texts
}

// quarantineKeyChanges lists changes of the quarantine label and annotations.
func quarantineKeyChanges(what, where string, old, cur map[string]string) []any {
	return keyChanges(where+what, old, cur, func(k string) bool { return k == labelQuarantined || strings.HasPrefix(k, annQuarantinePrefix) })
}

// quarantineByMeshguard: the request comes from meshguard's own identity
// (the controller's service account).
func (e *engine) quarantineByMeshguard(req *Request) bool {
	return req.User != nil && req.User.Username != "" && req.User.Username == e.cfg.ControllerUsername
}
