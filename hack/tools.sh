#!/usr/bin/env bash
# Builds the pinned control-plane tools from source through the Go module proxy
# (no release downloads are reachable here) and links them into bin/:
#   kube-apiserver, kubectl  from k8s.io/kubernetes   (test/tools/kube/go.mod)
#   etcd                     from go.etcd.io/etcd/server/v3 (test/tools/etcd/go.mod)
# Binaries are cached outside the clone, keyed by version, so a fresh clone on
# the same machine (CI) reuses them: $MESHGUARD_TOOLS_CACHE, default
# ~/.cache/meshguard/tools. Go's own build cache also survives between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MESHGUARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshguard/tools}
bin="$root/bin"
mkdir -p "$bin"

GO=${GO:-go}

version_of() { # module dir, module path
  (cd "$1" && "$GO" list -m -f '{{.Version}}' "$2")
}

build() { # name, module dir, module path, package=binary...
  local name=$1 dir=$2 mod=$3; shift 3
  local ver; ver=$(version_of "$root/$dir" "$mod")
  local out="$cache/$name-$ver"
  local pkgs=() bins=() missing=0
  for spec in "$@"; do
    pkgs+=("${spec%%=*}"); bins+=("${spec#*=}")
    [ -x "$out/${spec#*=}" ] || missing=1
  done
  if [ "$missing" = 1 ]; then
    echo "tools: building $name $ver from source (first time only; several minutes)" >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    for i in "${!pkgs[@]}"; do
      (cd "$root/$dir" && GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 "$GO" build -trimpath -o "$out.tmp/${bins[$i]}" "${pkgs[$i]}")
    done
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  for b in "${bins[@]}"; do ln -sf "$out/$b" "$bin/$b"; done
}

build kube test/tools/kube k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver=kube-apiserver k8s.io/kubernetes/cmd/kubectl=kubectl
build etcd test/tools/etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3=etcd
echo "tools: $(ls "$bin" | tr '\n' ' ')" >&2
