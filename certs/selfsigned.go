package certs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// FieldOwner is the field manager of meshguard's writes to the Secret and
// the webhook configurations.
const FieldOwner = "meshguard"

// selfSigned keeps the CA and serving certificate in a Secret through
// cert-controller's rotator and mirrors the Secret into the directory.
type selfSigned struct {
	*readiness
	o     *Options
	files Files
	key   types.NamespacedName
	// rotatorReady is the rotator's IsReady: closed once the certificate is
	// in the directory and the CA was injected into the webhook configurations.
	rotatorReady chan struct{}
	readOnly     bool
	served       []byte // the certificate last seen in the Secret, to log renewals
}

func newSelfSigned(o *Options, f Files) *selfSigned {
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.SecretName}
	return &selfSigned{
		readiness:    newReadiness(fmt.Sprintf("waiting for the certificate in Secret %s", key)),
		o:            o,
		files:        f,
		key:          key,
		rotatorReady: make(chan struct{}),
	}
}

// Setup creates the Secret when it is missing (the rotator only updates it),
// adds the rotator, and adds a Secret watch that writes the Secret's files
// into the directory and decides readiness.
func (s *selfSigned) Setup(mgr manager.Manager, log logr.Logger) error {
	s.log = log.WithName("certificates").WithValues("mode", ModeSelfSigned, "secret", s.key.String())
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("certificates: client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.ensureSecret(ctx, c); err != nil {
		return err
	}
	// A missing directory is created; a read-only one is reported by the writes.
	_ = os.MkdirAll(s.files.Dir, 0o700)

	var webhooks []rotator.WebhookInfo
	if n := s.o.ValidatingWebhookConfiguration; n != "" {
		webhooks = append(webhooks, rotator.WebhookInfo{Name: n, Type: rotator.Validating})
	}
	if n := s.o.MutatingWebhookConfiguration; n != "" {
		webhooks = append(webhooks, rotator.WebhookInfo{Name: n, Type: rotator.Mutating})
	}
	cr := &rotator.CertRotator{
		SecretKey:      s.key,
		CertDir:        s.files.Dir,
		CertName:       s.files.CertName,
		KeyName:        s.files.KeyName,
		CAName:         "meshguard-ca",
		CAOrganization: "meshguard",
		DNSName:        s.o.DNSName(),
		ExtraDNSNames:  s.o.extraDNSNames(),
		IsReady:        s.rotatorReady,
		Webhooks:       webhooks,
		FieldOwner:     FieldOwner,
		// Every replica serves, so every replica must see the CA injected to
		// turn ready; concurrent updates are resolved by resourceVersion.
		RequireLeaderElection:  false,
		CaCertDuration:         s.o.CAValidity,
		ServerCertDuration:     s.o.CertValidity,
		LookaheadInterval:      s.o.RenewBefore,
		RotationCheckFrequency: s.o.CheckInterval,
		ControllerName:         s.o.ControllerName,
	}
	if err := rotator.AddRotator(mgr, cr); err != nil {
		return fmt.Errorf("certificates: add rotator: %w", err)
	}

	// The rotator's own cache is private; this one holds only the Secret.
	sc, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{s.key.Namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Field: fields.OneTermEqualSelector("metadata.name", s.key.Name)},
		},
	})
	if err != nil {
		return fmt.Errorf("certificates: secret cache: %w", err)
	}
	if err := mgr.Add(runnable(sc.Start)); err != nil {
		return err
	}
	return mgr.Add(runnable(func(ctx context.Context) error { return s.run(ctx, sc) }))
}

func (s *selfSigned) ensureSecret(ctx context.Context, c client.Client) error {
	var sec corev1.Secret
	err := c.Get(ctx, s.key, &sec)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("certificates: get Secret %s: %w", s.key, err)
	}
	sec = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.key.Namespace, Name: s.key.Name, Labels: map[string]string{
			"app.kubernetes.io/name": "meshguard", "app.kubernetes.io/managed-by": "meshguard",
		}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{s.files.CertName: {}, s.files.KeyName: {}},
	}
	if s.files.CertName == corev1.TLSCertKey && s.files.KeyName == corev1.TLSPrivateKeyKey {
		sec.Type = corev1.SecretTypeTLS
	}
	if err := c.Create(ctx, &sec, client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("certificates: create Secret %s: %w", s.key, err)
	}
	s.log.Info("created the certificate Secret; the rotator fills it")
	return nil
}

// run mirrors the Secret into the directory on every change and decides
// readiness: the directory holds the Secret's certificate and the rotator
// reports the CA injected.
func (s *selfSigned) run(ctx context.Context, sc cache.Cache) error {
	if !sc.WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("certificates: Secret %s: cache did not sync", s.key)
	}
	inf, err := sc.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return fmt.Errorf("certificates: watch Secret %s: %w", s.key, err)
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return fmt.Errorf("certificates: watch Secret %s: %w", s.key, err)
	}
	// Until ready, the directory (a mounted Secret the kubelet updates) and
	// the rotator are also checked every second.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	rotatorReady := s.rotatorReady
	for {
		s.sync(ctx, sc)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-rotatorReady:
			rotatorReady = nil
		case <-tick.C:
			if s.isReady() {
				tick.Stop()
			}
		}
	}
}

// Check reports, once serving, an expired certificate file (the rotator
// failed to renew it); before, the reason the certificate is not served.
func (s *selfSigned) Check(req *http.Request) error {
	if err := s.readiness.Check(req); err != nil {
		return err
	}
	return servedCertValid(s.files, time.Now())
}

func (s *selfSigned) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

func (s *selfSigned) sync(ctx context.Context, sc cache.Cache) {
	var sec corev1.Secret
	if err := sc.Get(ctx, s.key, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			s.notReady(fmt.Sprintf("Secret %s does not exist (meshguard creates it at start-up)", s.key))
		} else {
			s.notReady(fmt.Sprintf("read Secret %s: %v", s.key, err))
		}
		return
	}
	cert, key, ca := sec.Data[s.files.CertName], sec.Data[s.files.KeyName], sec.Data[CAName]
	if len(cert) == 0 || len(key) == 0 || !isPEMCertificate(ca) {
		s.notReady(fmt.Sprintf("waiting for the rotator to issue the CA and serving certificate into Secret %s", s.key))
		return
	}
	leaf, err := parsePair(cert, key)
	if err != nil {
		s.notReady(fmt.Sprintf("Secret %s does not hold a usable certificate and key: %v", s.key, err))
		return
	}
	err = writeFiles(s.files.Dir, []namedData{{CAName, ca, 0o644}, {s.files.KeyName, key, 0o600}, {s.files.CertName, cert, 0o644}})
	switch {
	case errors.Is(err, errReadOnly):
		if !s.readOnly {
			s.readOnly = true
			s.log.Info("the certificate directory is read-only (a mounted Secret): the kubelet keeps it current", "dir", s.files.Dir, "error", err.Error())
		}
	case err != nil:
		s.log.Error(err, "write the certificate files", "dir", s.files.Dir)
	}
	if !filesHold(s.files, cert, key) {
		s.notReady(fmt.Sprintf("waiting for %s to hold the certificate from Secret %s (a mounted Secret is refreshed by the kubelet)", s.files.Dir, s.key))
		return
	}
	if string(s.served) != string(cert) {
		if s.served != nil {
			s.log.Info("serving certificate renewed", "notAfter", leaf.NotAfter.UTC(), "dnsNames", leaf.DNSNames)
		}
		s.served = cert
	}
	select {
	case <-s.rotatorReady:
	default:
		s.notReady(fmt.Sprintf("waiting for the CA to be injected into the webhook configurations (validating %q, mutating %q)",
			s.o.ValidatingWebhookConfiguration, s.o.MutatingWebhookConfiguration))
		return
	}
	s.markReady("serving certificate ready", "dir", s.files.Dir, "notAfter", leaf.NotAfter.UTC(), "dnsNames", leaf.DNSNames)
}
