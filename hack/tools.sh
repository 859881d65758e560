#!/usr/bin/env bash
# Builds the pinned control-plane tools from source through the Go module proxy
# (no release downloads are reachable here) and links them into bin/:
#   kube-apiserver, kubectl  from k8s.io/kubernetes   (test/tools/kube/go.mod)
#   etcd                     from go.etcd.io/etcd/server/v3 (test/tools/etcd/go.mod)
#   helm                     from helm.sh/helm/v3/cmd/helm (test/tools/helm/go.mod)
# Binaries are cached outside the clone, keyed by version, so a fresh clone on
# the same machine (CI) reuses them: $MESHGUARD_TOOLS_CACHE, default
# ~/.cache/meshguard/tools. Go's own build cache also survives between runs.
# A cached build is reused only if it was made with the same flags (.recipe).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MESHGUARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshguard/tools}
bin="$root/bin"
GO=${GO:-go}
mkdir -p "$bin"

version_of() { # module dir, module path
  (cd "$1" && "$GO" list -m -f '{{.Version}}' "$2")
}

build() { # name, module dir, module path, ldflags, package=binary...
  local name=$1 dir=$2 mod=$3 ldflags=$4; shift 4
  local ver; ver=$(version_of "$root/$dir" "$mod")
  local out="$cache/$name-$ver"
  local recipe="go build -trimpath -ldflags '$ldflags' $*"
  local pkgs=() bins=() missing=0
  for spec in "$@"; do
    pkgs+=("${spec%%=*}"); bins+=("${spec#*=}")
    [ -x "$out/${spec#*=}" ] || missing=1
  done
  [ "$(cat "$out/.recipe" 2>/dev/null)" = "$recipe" ] || missing=1
  if [ "$missing" = 1 ]; then
    echo "tools: building $name $ver from source (first time only; several minutes)" >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    for i in "${!pkgs[@]}"; do
      (cd "$root/$dir" && GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$out.tmp/${bins[$i]}" "${pkgs[$i]}")
    done
    printf '%s' "$recipe" > "$out.tmp/.recipe"
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  for b in "${bins[@]}"; do ln -sfn "$out/$b" "$bin/$b"; done
}

# Kubernetes stamps its version at link time (hack/lib/version.sh); without it
# the API server and kubectl report v0.0.0-master, which version checks (Helm's
# kubeVersion, kubectl's skew warning) misread.
kube_ver=$(version_of "$root/test/tools/kube" k8s.io/kubernetes)
kube_minor=${kube_ver#v*.}; kube_minor=${kube_minor%%.*}
kube_major=${kube_ver#v}; kube_major=${kube_major%%.*}
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_ver -X $pkg.gitMajor=$kube_major -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
done

build kube test/tools/kube k8s.io/kubernetes "${kube_ldflags# }" k8s.io/kubernetes/cmd/kube-apiserver=kube-apiserver k8s.io/kubernetes/cmd/kubectl=kubectl
build etcd test/tools/etcd go.etcd.io/etcd/server/v3 "" go.etcd.io/etcd/server/v3=etcd

# Helm stamps its own version and, like its release Makefile, the Kubernetes
# version it assumes when no cluster is asked (helm template, helm lint);
# unstamped it would assume v1.20.
helm_ver=$(version_of "$root/test/tools/helm" helm.sh/helm/v3)
helm_kube=$(version_of "$root/test/tools/helm" k8s.io/client-go)
helm_kube_minor=${helm_kube#v*.}; helm_kube_minor=${helm_kube_minor%%.*}
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_ver -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_kube_minor"
done
build helm test/tools/helm helm.sh/helm/v3 "$helm_ldflags" helm.sh/helm/v3/cmd/helm=helm
echo "tools: $(ls "$bin" | tr '\n' ' ')" >&2
