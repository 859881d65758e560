package webhook

import (
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// AdmissionReview versions the handler accepts; the response uses the request's.
var (
	reviewV1      = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")
	reviewV1beta1 = schema.GroupVersionKind{Group: "admission.k8s.io", Version: "v1beta1", Kind: "AdmissionReview"}
)

// decodeReview decodes an AdmissionReview (admission.k8s.io/v1 or v1beta1,
// which have the same shape) in one pass. The request's object and oldObject,
// when they are JSON objects, are decoded straight into the maps the rules
// evaluate (without metadata.managedFields) and handed over as
// *unstructured.Unstructured in RawExtension.Object; RawExtension.Raw is
// their bytes in body (not a copy: the request must not outlive body).
// Anything else in object/oldObject is left in Raw for the handler to reject.
//
// Field names are case-sensitive and unknown fields are ignored, as in the
// Kubernetes JSON serializer controller-runtime uses; a review without a
// request decodes to an empty request, as there.
func decodeReview(body []byte, d *jsonReader) (admission.Request, schema.GroupVersionKind, error) {
	var req admission.Request
	var apiVersion, kind string
	*d = jsonReader{data: body, stack: d.stack[:0], heapLimit: d.heapLimit, more: d.more}
	if d.peek() != '{' {
		if d.peek() == 0 {
			return req, schema.GroupVersionKind{}, d.unexpected("")
		}
		return req, schema.GroupVersionKind{}, d.typeError("AdmissionReview", "object")
	}
	err := d.members("AdmissionReview", func(key string) (err error) {
		switch key {
		case "apiVersion":
			apiVersion, err = d.stringValue("apiVersion")
		case "kind":
			kind, err = d.stringValue("kind")
		case "request":
			// A null request leaves the request empty, as in controller-runtime.
			err = d.members("request", func(key string) error { return decodeRequestMember(d, key, &req.AdmissionRequest) })
		default:
			err = d.skip()
		}
		return err
	})
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return req, schema.GroupVersionKind{}, err
	}
	gvk := schema.FromAPIVersionAndKind(apiVersion, kind)
	switch {
	case apiVersion == "" && kind == "":
		gvk = reviewV1
	case gvk == reviewV1, gvk == reviewV1beta1:
	default:
		return req, gvk, fmt.Errorf("expected an admission.k8s.io/v1 AdmissionReview, got %s %s", apiVersion, kind)
	}
	return req, gvk, nil
}

func decodeRequestMember(d *jsonReader, key string, r *admissionv1.AdmissionRequest) (err error) {
	var s string
	switch key {
	case "uid":
		s, err = d.stringValue("request.uid")
		r.UID = types.UID(s)
	case "kind":
		err = decodeGVK(d, "request.kind", &r.Kind)
	case "resource":
		err = decodeGVR(d, "request.resource", &r.Resource)
	case "subResource":
		r.SubResource, err = d.stringValue("request.subResource")
	case "requestKind":
		if d.peek() == 'n' {
			r.RequestKind = nil
			_, err = d.literal()
			return err
		}
		r.RequestKind = &metav1.GroupVersionKind{}
		err = decodeGVK(d, "request.requestKind", r.RequestKind)
	case "requestResource":
		if d.peek() == 'n' {
			r.RequestResource = nil
			_, err = d.literal()
			return err
		}
		r.RequestResource = &metav1.GroupVersionResource{}
		err = decodeGVR(d, "request.requestResource", r.RequestResource)
	case "requestSubResource":
		r.RequestSubResource, err = d.stringValue("request.requestSubResource")
	case "name":
		r.Name, err = d.stringValue("request.name")
	case "namespace":
		r.Namespace, err = d.stringValue("request.namespace")
	case "operation":
		s, err = d.stringValue("request.operation")
		r.Operation = admissionv1.Operation(s)
	case "userInfo":
		err = decodeUserInfo(d, &r.UserInfo)
	case "object":
		err = decodeObjectMember(d, &r.Object)
	case "oldObject":
		err = decodeObjectMember(d, &r.OldObject)
	case "dryRun":
		switch d.peek() {
		case 't', 'f':
			var v any
			v, err = d.literal()
			b := v == true
			r.DryRun = &b
		case 'n':
			r.DryRun = nil
			_, err = d.literal()
		default:
			err = d.typeError("request.dryRun", "bool")
		}
	case "options":
		r.Options = runtime.RawExtension{}
		if d.peek() == 'n' {
			_, err = d.literal()
			return err
		}
		r.Options.Raw, err = d.rawValue()
	default:
		err = d.skip()
	}
	return err
}

// decodeObjectMember decodes object or oldObject: a JSON object into a map
// (RawExtension.Object) and its bytes (Raw); null leaves both as they were; any
// other value only sets Raw, which the handler rejects.
func decodeObjectMember(d *jsonReader, ext *runtime.RawExtension) error {
	if d.peek() == 'n' {
		// As RawExtension.UnmarshalJSON: null leaves a duplicate member's
		// earlier value in place.
		_, err := d.literal()
		return err
	}
	*ext = runtime.RawExtension{}
	switch d.peek() {
	case '{':
		start := d.pos
		m, err := d.object(objectKubernetes)
		if err != nil {
			return err
		}
		ext.Raw = d.data[start:d.pos]
		ext.Object = &unstructured.Unstructured{Object: m}
		return nil
	}
	raw, err := d.rawValue()
	ext.Raw = raw
	return err
}

func decodeGVK(d *jsonReader, field string, gvk *metav1.GroupVersionKind) error {
	return d.members(field, func(key string) (err error) {
		switch key {
		case "group":
			gvk.Group, err = d.stringValue(field + ".group")
		case "version":
			gvk.Version, err = d.stringValue(field + ".version")
		case "kind":
			gvk.Kind, err = d.stringValue(field + ".kind")
		default:
			err = d.skip()
		}
		return err
	})
}

func decodeGVR(d *jsonReader, field string, gvr *metav1.GroupVersionResource) error {
	return d.members(field, func(key string) (err error) {
		switch key {
		case "group":
			gvr.Group, err = d.stringValue(field + ".group")
		case "version":
			gvr.Version, err = d.stringValue(field + ".version")
		case "resource":
			gvr.Resource, err = d.stringValue(field + ".resource")
		default:
			err = d.skip()
		}
		return err
	})
}

func decodeUserInfo(d *jsonReader, u *authenticationv1.UserInfo) error {
	return d.members("request.userInfo", func(key string) (err error) {
		switch key {
		case "username":
			u.Username, err = d.stringValue("request.userInfo.username")
		case "uid":
			u.UID, err = d.stringValue("request.userInfo.uid")
		case "groups":
			u.Groups, err = decodeStrings(d, "request.userInfo.groups")
		case "extra":
			if d.peek() == 'n' {
				u.Extra = nil
				_, err = d.literal()
				return err
			}
			if u.Extra == nil {
				u.Extra = map[string]authenticationv1.ExtraValue{}
			}
			err = d.members("request.userInfo.extra", func(k string) error {
				v, err := decodeStrings(d, "request.userInfo.extra")
				u.Extra[k] = v
				return err
			})
		default:
			err = d.skip()
		}
		return err
	})
}

// decodeStrings decodes an array of strings; null is nil.
func decodeStrings(d *jsonReader, field string) ([]string, error) {
	switch d.peek() {
	case 'n':
		_, err := d.literal()
		return nil, err
	case '[':
	default:
		return nil, d.typeError(field, "[]string")
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++
	out := []string{}
	if d.peek() == ']' {
		d.pos++
		d.depth--
		return out, nil
	}
	for {
		s, err := d.stringValue(field)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			return out, nil
		default:
			return nil, d.unexpected("after array element")
		}
	}
}
