package e2e_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// TestResilienceClientCA runs `meshguard serve --client-ca-file` (issue 10,
// item 3). Direct HTTPS calls to /validate on 127.0.0.1 are refused at the
// TLS handshake without a client certificate, or with one another CA signed,
// and answered with one the client CA signed. Then a control plane of its own
// (kube-apiserver started with an AdmissionConfiguration whose
// kubeConfigFile gives it the client certificate for this webhook, as the
// chart README documents) calls the webhook through a registered
// configuration: its dry-run apply of a Deployment adding NET_ADMIN is denied
// with MESH0150. The shared control plane, which has no such credentials,
// gets the same call refused (failurePolicy Fail turns that into a denial
// naming the failed call), so the denial above came through the certificate.
func TestResilienceClientCA(t *testing.T) {
	shared := framework.Shared(t) // also the skip rules: the control planes need `make tools`
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	serving, err := framework.WriteServingCerts(filepath.Join(dir, "serving"))
	if err != nil {
		t.Fatal(err)
	}
	clientCA := newClientCertCA(t, "meshguard e2e webhook client CA")
	apiServerCert, apiServerKey := clientCA.issue(t, "kube-apiserver")
	other := newClientCertCA(t, "another CA")
	strangerCert, strangerKey := other.issue(t, "a pod")
	caFile := filepath.Join(dir, "client-ca.crt")
	writeFile(t, caFile, clientCA.pem)

	port, err := framework.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	hostPort := fmt.Sprintf("127.0.0.1:%d", port)

	// The API server's webhook client credentials: a kubeconfig whose user
	// is named after the webhook's host and port, referenced from the
	// AdmissionConfiguration of both webhook admission plugins.
	apiCert, apiKey := filepath.Join(dir, "apiserver-client.crt"), filepath.Join(dir, "apiserver-client.key")
	writeFile(t, apiCert, apiServerCert)
	writeFile(t, apiKey, apiServerKey)
	kubeConfigFile := filepath.Join(dir, "webhook-kubeconfig.yaml")
	writeFile(t, kubeConfigFile, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
users:
- name: %q
  user:
    client-certificate: %s
    client-key: %s
`, hostPort, apiCert, apiKey)))
	admissionConfig := filepath.Join(dir, "admission-configuration.yaml")
	writeFile(t, admissionConfig, []byte(fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
`, kubeConfigFile)))
	began := time.Now()
	env, err := framework.Start(framework.Options{
		NoIstioCRDs:   true,
		APIServerArgs: map[string][]string{"admission-control-config-file": {admissionConfig}},
	})
	if err != nil {
		t.Fatalf("start a control plane with webhook client credentials: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the control plane: %v", err)
		}
	})
	t.Logf("control plane with webhook client credentials started in %s", time.Since(began).Round(100*time.Millisecond))

	healthPort, err := framework.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	o := webhook.NewOptions()
	o.Host = "127.0.0.1"
	o.Port = port
	o.CertDir = serving.Dir
	o.ClientCAFile = caFile
	o.MetricsAddr = "0"
	o.HealthAddr = fmt.Sprintf("127.0.0.1:%d", healthPort)
	o.GracefulShutdown = 5 * time.Second
	logPath := filepath.Join(dir, "meshguard.log")
	_, done := runInProcess(t, env.Config, o, logPath)
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	if !poll(60*time.Second, 100*time.Millisecond, func() bool {
		select {
		case err := <-done:
			t.Fatalf("meshguard serve exited before it was ready: %v\n%s", err, tail(logPath, 40))
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("/readyz did not turn OK within 60s; last: %s\n%s", last, tail(logPath, 40))
	}

	const ns = "e2e-client-ca"
	review := admissionReviewFor(t, deploymentYAML(ns, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}}))
	stranger, err := tls.X509KeyPair(strangerCert, strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	apiServer, err := tls.X509KeyPair(apiServerCert, apiServerKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client *tls.Certificate
	}{
		{"without a client certificate", nil},
		{"with a client certificate another CA signed", &stranger},
	} {
		t.Run("a direct call "+tc.name+" is refused", func(t *testing.T) {
			answer, err := postWithClientCert(port, serving.Pool, tc.client, review)
			if err == nil {
				t.Fatalf("meshguard answered: %s", answer)
			}
			t.Logf("refused: %v", err)
		})
	}
	t.Run("a direct call with a client certificate the client CA signed is answered", func(t *testing.T) {
		answer, err := postWithClientCert(port, serving.Pool, &apiServer, review)
		if err != nil {
			t.Fatal(err)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(answer, &out); err != nil {
			t.Fatalf("decode the answer: %v: %s", err, answer)
		}
		if out.Response == nil || out.Response.Allowed || out.Response.Result == nil || !strings.Contains(out.Response.Result.Message, "MESH0150") {
			t.Fatalf("want a MESH0150 denial, got %s", answer)
		}
	})

	t.Run("the API server calls the webhook with its configured client certificate", func(t *testing.T) {
		cat, err := rules.DefaultCatalog()
		if err != nil {
			t.Fatal(err)
		}
		vwc := webhook.ValidatingConfiguration(cat, webhook.ConfigOptions{
			Name: "meshguard-e2e-client-ca", URL: "https://" + hostPort, CABundle: serving.CAPEM,
			ExcludeNamespaces: append(rules.DefaultSystemNamespaces(), ownNamespace),
		})
		b, err := yaml.Marshal(vwc)
		if err != nil {
			t.Fatal(err)
		}
		mustKubectl(t, ctx, env, namespaceYAML(ns, nil), "apply", "-f", "-")
		mustKubectl(t, ctx, env, string(b), "apply", "-f", "-")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			kubectl(t, ctx, env, "", "delete", "validatingwebhookconfiguration", vwc.Name, "--ignore-not-found")
		})
		bad := deploymentYAML(ns, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}})
		var res framework.KubectlResult
		if !poll(30*time.Second, 200*time.Millisecond, func() bool {
			res = kubectl(t, ctx, env, bad, "apply", "--dry-run=server", "-f", "-")
			return res.ExitCode != 0 && strings.Contains(res.Stderr, "MESH0150")
		}) {
			t.Fatalf("the API server's apply was not denied with MESH0150 within 30s:\n%s\nmeshguard log:\n%s", res, tail(logPath, 20))
		}
		if strings.Contains(res.Stderr, "failed calling webhook") {
			t.Errorf("the API server could not call the webhook:\n%s", res)
		}
	})

	t.Run("an API server without webhook client credentials is refused", func(t *testing.T) {
		cat, err := rules.DefaultCatalog()
		if err != nil {
			t.Fatal(err)
		}
		const label = "meshguard.io/e2e-client-ca"
		vwc := webhook.ValidatingConfiguration(cat, webhook.ConfigOptions{
			Name: "meshguard-e2e-client-ca", URL: "https://" + hostPort, CABundle: serving.CAPEM,
			FailurePolicy: "Fail",
		})
		// Only this test's namespace: the shared control plane serves other tests.
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}}
		}
		b, err := yaml.Marshal(vwc)
		if err != nil {
			t.Fatal(err)
		}
		mustKubectl(t, ctx, shared, namespaceYAML(ns, map[string]string{label: "true"}), "apply", "-f", "-")
		mustKubectl(t, ctx, shared, string(b), "apply", "-f", "-")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			kubectl(t, ctx, shared, "", "delete", "validatingwebhookconfiguration", vwc.Name, "--ignore-not-found")
		})
		bad := deploymentYAML(ns, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}})
		var res framework.KubectlResult
		if !poll(30*time.Second, 200*time.Millisecond, func() bool {
			res = kubectl(t, ctx, shared, bad, "apply", "--dry-run=server", "-f", "-")
			return res.ExitCode != 0 && strings.Contains(res.Stderr, "failed calling webhook")
		}) {
			t.Fatalf("the call of an API server without client credentials was not refused within 30s:\n%s", res)
		}
		if strings.Contains(res.Stderr, "MESH0150") {
			t.Errorf("meshguard answered an API server without client credentials:\n%s", res)
		}
		t.Logf("refused: %s", strings.TrimSpace(res.Stderr))
	})
}

// postWithClientCert POSTs a review to /validate over a new TLS connection
// verified for 127.0.0.1, presenting client (nil: none), and returns the
// answer's body; an answer other than 200 is an error.
func postWithClientCert(port int, roots *x509.CertPool, client *tls.Certificate, review []byte) ([]byte, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if client != nil {
		// Sent even when the server does not list its issuer among the CAs
		// it accepts (Go's client would otherwise send no certificate).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d%s", port, webhook.ValidatePath), "application/json", bytes.NewReader(review))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return body, nil
}

// clientCertCA is a throwaway CA for client certificates.
type clientCertCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newClientCertCA(t *testing.T, name string) *clientCertCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &clientCertCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a client certificate and its key, in PEM.
func (ca *clientCertCA) issue(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func randomSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
