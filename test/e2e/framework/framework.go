// Package framework runs a real Kubernetes control plane for meshguard's
// end-to-end tests: kube-apiserver and etcd built from source by `make tools`
// (hack/tools.sh) into bin/, started with controller-runtime's envtest, with
// Istio's CRDs installed from the istio.io/api module, a kubeconfig file for
// the real kubectl, and a helper that runs bin/kubectl.
//
// Start-up costs seconds, so a test package starts one control plane in its
// TestMain (see Main) and its tests share it, each in its own namespaces.
//
// Skip rules: when bin/kube-apiserver is missing, the tests are skipped with a
// message saying how to build it, unless MESHGUARD_E2E=required (as `make
// test` sets it), in which case the package fails. A control plane that is
// present but does not start is always a failure.
package framework

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"istio.io/api/label"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// EnvE2E is the environment variable that makes missing control-plane
// binaries a failure instead of a skip when set to "required".
const EnvE2E = "MESHGUARD_E2E"

// ModulePath is the Go module the repository root holds.
const ModulePath = "github.com/meshguard/meshguard"

// IstioAPIModule is the module whose kubernetes/customresourcedefinitions.gen.yaml
// holds Istio's CRDs.
const IstioAPIModule = "istio.io/api"

// istioCRDFile is the CRD file's path inside the istio.io/api module.
const istioCRDFile = "kubernetes/customresourcedefinitions.gen.yaml"

// Istio label names the tests use, from the istio.io/api module (which this
// package also reads the CRDs from).
var (
	// LabelDataplaneMode enrolls a namespace in ambient mode ("ambient").
	LabelDataplaneMode = label.IoIstioDataplaneMode.Name
	// LabelRev enrolls a namespace in a sidecar revision.
	LabelRev = label.IoIstioRev.Name
)

// Options tune Start. The zero value starts a control plane from the
// repository's bin/ with the Istio CRDs installed.
type Options struct {
	// BinDir holds kube-apiserver, etcd and kubectl. Default: <repo>/bin.
	BinDir string
	// CRDPaths are extra CRD files or directories to install besides Istio's.
	CRDPaths []string
	// NoIstioCRDs skips installing Istio's CRDs.
	NoIstioCRDs bool
	// APIServerArgs are extra kube-apiserver flags ("name" -> values).
	APIServerArgs map[string][]string
	// EtcdArgs are extra etcd flags ("name" -> values); they replace envtest's
	// defaults of the same name (for example "unsafe-no-fsync": {"false"}).
	EtcdArgs map[string][]string
	// StartTimeout bounds the start of each component. Default 60s (the
	// first start on a loaded 2-core machine can be slow).
	StartTimeout time.Duration
	// Logger receives controller-runtime's (and envtest's) logs. Default: discarded.
	Logger logr.Logger
}

// Env is a running control plane.
type Env struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// KubeconfigPath is a kubeconfig file for Config, for kubectl and for
	// code that loads kubeconfigs (`meshguard audit --cluster --kubeconfig`).
	KubeconfigPath string
	// BinDir holds kube-apiserver, etcd and kubectl.
	BinDir string
	// Root is the repository root.
	Root string
	// StartupTime is how long the control plane took to start, CRDs included.
	StartupTime time.Duration

	env *envtest.Environment
	dir string
}

// RepoRoot returns the root of the meshguard repository: the nearest directory
// at or above the working directory (a test's package directory) whose go.mod
// declares ModulePath.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePathOf(data) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod declaring module %s at or above the working directory", ModulePath)
		}
		dir = parent
	}
}

func modulePathOf(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Binaries are the control-plane binaries a BinDir must hold.
var Binaries = []string{"kube-apiserver", "etcd", "kubectl"}

// MissingBinaries returns the binaries of Binaries that are not executable files in dir.
func MissingBinaries(dir string) []string {
	var missing []string
	for _, b := range Binaries {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	return missing
}

// IstioCRDPath returns the path of Istio's CRD file inside the istio.io/api
// module, as pinned by the repository's go.mod, downloading the module into
// the module cache (with checksum verification) if it is not there yet.
func IstioCRDPath(root string) (string, error) {
	dir, err := moduleDir(root, IstioAPIModule)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, filepath.FromSlash(istioCRDFile))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("istio CRDs: %w", err)
	}
	return p, nil
}

// moduleDir returns the module cache directory of a module required by the
// repository's go.mod.
func moduleDir(root, module string) (string, error) {
	goBin, err := goCommand()
	if err != nil {
		return "", err
	}
	var m struct {
		Path, Version, Dir string
		Error              *struct{ Err string }
	}
	for _, args := range [][]string{{"list", "-m", "-json", module}, {"mod", "download", "-json", module}} {
		cmd := exec.Command(goBin, args...)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		m.Dir, m.Error = "", nil
		if err := json.Unmarshal(out, &m); err != nil {
			return "", fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("go %s: %s", strings.Join(args, " "), m.Error.Err)
		}
		if m.Dir != "" {
			return m.Dir, nil
		}
		// Not in the module cache yet: download it, then read its directory.
	}
	return "", fmt.Errorf("module %s %s: not in the module cache after go mod download", module, m.Version)
}

func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // fallback when go is not on PATH
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("the go command is not on PATH (needed to locate the istio.io/api module)")
	}
	return p, nil
}

// Start starts etcd and kube-apiserver from the bin directory, installs the
// CRDs and writes a kubeconfig file. Call Stop when done.
func Start(opts Options) (*Env, error) {
	began := time.Now()
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if opts.BinDir == "" {
		opts.BinDir = filepath.Join(root, "bin")
	}
	if missing := MissingBinaries(opts.BinDir); len(missing) > 0 {
		return nil, fmt.Errorf("%s: missing %s: run `make tools`", opts.BinDir, strings.Join(missing, ", "))
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	ctrllog.SetLogger(opts.Logger)

	crdPaths := append([]string(nil), opts.CRDPaths...)
	if !opts.NoIstioCRDs {
		p, err := IstioCRDPath(root)
		if err != nil {
			return nil, err
		}
		crdPaths = append(crdPaths, p)
	}
	dir, err := os.MkdirTemp("", "meshguard-e2e-")
	if err != nil {
		return nil, err
	}
	existing := false
	te := &envtest.Environment{
		// Never download anything, never reuse a cluster from the environment:
		// the binaries are the ones `make tools` built.
		DownloadBinaryAssets:     false,
		UseExistingCluster:       &existing,
		BinaryAssetsDirectory:    opts.BinDir,
		ControlPlaneStartTimeout: opts.StartTimeout,
		ControlPlaneStopTimeout:  30 * time.Second,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              crdPaths,
			ErrorIfPathMissing: true,
		},
	}
	api := te.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(opts.BinDir, "kube-apiserver")
	for name, values := range opts.APIServerArgs {
		api.Configure().Set(name, values...)
	}
	// Explicit paths: envtest keeps paths that are already set, so neither
	// KUBEBUILDER_ASSETS nor TEST_ASSET_* can swap the binaries.
	te.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(opts.BinDir, "etcd")}
	for name, values := range opts.EtcdArgs {
		te.ControlPlane.Etcd.Configure().Set(name, values...)
	}
	te.ControlPlane.KubectlPath = filepath.Join(opts.BinDir, "kubectl")

	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start control plane (%s): %w", opts.BinDir, err)
	}
	e := &Env{Config: cfg, BinDir: opts.BinDir, Root: root, env: te, dir: dir}
	e.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.KubeconfigPath, te.KubeConfig, 0o600); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	e.StartupTime = time.Since(began)
	return e, nil
}

// Stop stops kube-apiserver and etcd and removes their data and the
// kubeconfig. It is safe to call more than once.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	err := e.env.Stop()
	e.env = nil
	if rmErr := os.RemoveAll(e.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}
