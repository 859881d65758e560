package certs

import (
	"context"
	"fmt"
	"net/http"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// certManager waits for cert-manager's Certificate to be Ready and the
// mounted Secret's files to hold a valid pair, then keeps reading the
// Certificate to report (in the logs) when it stops being Ready.
type certManager struct {
	*readiness
	o     *Options
	files Files
	key   types.NamespacedName
	c     client.Reader
	// afterReady is the reason the Certificate or the files were last not
	// usable after the certificate was first served; "" when they are.
	afterReady string
}

func newCertManager(o *Options, f Files) *certManager {
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.CertificateName}
	return &certManager{
		readiness: newReadiness(fmt.Sprintf("waiting to read cert-manager Certificate %s", key)),
		o:         o,
		files:     f,
		key:       key,
	}
}

// Setup adds the loop that reads the Certificate. It reads one object by
// name (RBAC: get on certificates.cert-manager.io in the namespace), with a
// client of its own whose scheme knows cert-manager's types.
func (s *certManager) Setup(mgr manager.Manager, log logr.Logger) error {
	s.log = log.WithName("certificates").WithValues("mode", ModeCertManager, "certificate", s.key.String())
	scheme := runtime.NewScheme()
	if err := cmapi.AddToScheme(scheme); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("certificates: client: %w", err)
	}
	s.c = c
	return mgr.Add(runnable(s.run))
}

func (s *certManager) run(ctx context.Context) error {
	tick := time.NewTicker(s.o.PollInterval)
	defer tick.Stop()
	for {
		s.check(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *certManager) check(ctx context.Context, now time.Time) {
	reason := s.certificateReason(ctx)
	if reason == "" {
		if _, err := loadPair(s.files, now); err != nil {
			reason = fmt.Sprintf("Certificate %s is Ready but the mounted Secret is not usable yet: %v", s.key, err)
		}
	}
	if !s.isReady() {
		if reason != "" {
			s.notReady(reason)
			return
		}
		leaf, _ := loadPair(s.files, now)
		s.markReady("serving certificate ready", "dir", s.files.Dir, "notAfter", leaf.NotAfter.UTC(), "dnsNames", leaf.DNSNames)
		return
	}
	// Once serving, a Certificate that is being re-issued does not take the
	// replica out of the Service (all replicas would go at once and, with
	// failurePolicy Fail, block the cluster): certwatcher keeps serving the
	// loaded certificate, and the reason is logged.
	if reason != s.afterReady {
		if reason != "" {
			s.log.Info("serving certificate not renewable: still serving the loaded certificate", "reason", reason)
		} else {
			s.log.Info("Certificate is Ready again")
		}
		s.afterReady = reason
	}
}

// certificateReason is why the Certificate is not Ready, "" when it is.
func (s *certManager) certificateReason(ctx context.Context) string {
	var crt cmapi.Certificate
	err := s.c.Get(ctx, s.key, &crt)
	switch {
	case meta.IsNoMatchError(err) || (apierrors.IsNotFound(err) && isMissingResource(err)):
		return "the cert-manager API (certificates.cert-manager.io/v1) is not served: install cert-manager, or use --cert-mode self-signed"
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("Certificate %s not found (the chart renders it in cert-manager mode)", s.key)
	case err != nil:
		return fmt.Sprintf("read Certificate %s: %v", s.key, err)
	}
	for _, c := range crt.Status.Conditions {
		if c.Type != cmapi.CertificateConditionReady {
			continue
		}
		if c.Status == cmmeta.ConditionTrue {
			if crt.Spec.SecretName != "" && crt.Spec.SecretName != s.o.SecretName {
				return fmt.Sprintf("Certificate %s writes Secret %q, but meshguard serves Secret %q (--cert-secret)", s.key, crt.Spec.SecretName, s.o.SecretName)
			}
			return ""
		}
		msg := fmt.Sprintf("Certificate %s is not Ready (%s)", s.key, c.Status)
		if c.Reason != "" {
			msg += ": " + c.Reason
		}
		if c.Message != "" {
			msg += ": " + c.Message
		}
		return msg
	}
	return fmt.Sprintf("Certificate %s has no Ready condition yet: is cert-manager running?", s.key)
}

// isMissingResource tells a NotFound for the resource type (the API is not
// served) from one for the object.
func isMissingResource(err error) bool {
	var st apierrors.APIStatus
	if se, ok := err.(apierrors.APIStatus); ok {
		st = se
	} else {
		return false
	}
	d := st.Status().Details
	return d == nil || d.Name == ""
}

func (s *certManager) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// Check reports, once serving, an expired certificate (nothing useful is
// served any more); before, the reason the certificate is not served.
func (s *certManager) Check(req *http.Request) error {
	if err := s.readiness.Check(req); err != nil {
		return err
	}
	return servedCertValid(s.files, time.Now())
}
