#!/usr/bin/env bash
# Provides kube-apiserver and etcd for the integration tests, in the envtest layout
# (a folder holding both binaries), and prints that folder on its last line of stdout.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, when it holds both binaries (users with setup-envtest).
#   2. The cache folder ($AIO_ASSETS_CACHE, default ~/.cache/azure-image-operator/control-plane),
#      shared by every clone on the machine.
#   3. Debian's packages: etcd from `etcd-server`; kube-apiserver built from the bookworm source
#      package `kubernetes` (1.20.2), fetched with a private apt configuration so the system's
#      sources are left alone.
#
# Idempotent: a complete cache is reused as is; a half-built one is finished.
set -euo pipefail

LOG_TAG=control-plane
. "$(dirname "$0")/lib.sh"

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS does not hold executable kube-apiserver and etcd"
fi

cache="${AIO_ASSETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azure-image-operator/control-plane}"
bin="$cache/bin"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
  log "using cached binaries in $bin"
  echo "$bin"
  exit 0
fi

command -v apt-get >/dev/null || die "no KUBEBUILDER_ASSETS, no cache at $bin, and no apt-get to build one: set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd (setup-envtest provides one)"

mkdir -p "$bin" "$cache/work"
log "provisioning into $cache (this takes about 10 minutes once)"

need_pkgs=()
for p in etcd-server golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then apt_install "${need_pkgs[@]}"; fi

etcd_path="$(command -v etcd || true)"
[ -n "$etcd_path" ] || etcd_path=/usr/bin/etcd
[ -x "$etcd_path" ] || die "etcd-server is installed but $etcd_path is missing"
cp -f "$etcd_path" "$bin/etcd"
log "etcd: $("$bin/etcd" --version | head -n1)"

if [ ! -x "$bin/kube-apiserver" ]; then
  apt_dir="$cache/work/apt"
  mkdir -p "$apt_dir/sources.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$cache/work/src"
  cat >"$apt_dir/sources.d/bookworm-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/sources.d"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  src_root="$(find "$cache/work/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
  if [ -z "$src_root" ]; then
    log "fetching the bookworm source package 'kubernetes' (about 34 MB)"
    apt-get "${apt_opts[@]}" update -qq || die "apt-get update with the private deb-src configuration failed"
    (cd "$cache/work/src" && apt-get "${apt_opts[@]}" source --download-only kubernetes >&2) \
      || die "apt-get source --download-only kubernetes failed"
    dsc="$(ls "$cache/work/src"/kubernetes_*.dsc | head -n1)"
    command -v dpkg-source >/dev/null || die "dpkg-source (package dpkg-dev) is needed to unpack $dsc"
    (cd "$cache/work/src" && dpkg-source --no-check -x "$dsc" >&2) || die "unpacking $dsc failed"
    src_root="$(find "$cache/work/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
  fi
  [ -n "$src_root" ] || die "the kubernetes source tree was not found under $cache/work/src"

  # The vendored reflect2 1.0.1 faults at the first request on Go >= 1.18; Debian's 1.0.2 does not.
  reflect2_src=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$reflect2_src" ] || die "$reflect2_src is missing (package golang-github-modern-go-reflect2-dev)"
  vend="$src_root/vendor/github.com/modern-go/reflect2"
  rm -rf "$vend" && mkdir -p "$vend"
  (cd "$reflect2_src" && find . -maxdepth 1 -type f ! -name go.mod ! -name go.sum -exec cp {} "$vend/" \;)

  log "building kube-apiserver in $src_root (about 8 minutes on 2 cores)"
  mkdir -p "$src_root/.go/src/k8s.io" "$cache/work/home"
  ln -sfn ../../.. "$src_root/.go/src/k8s.io/kubernetes"
  (cd "$src_root" && GOPATH="$src_root/.go" CGO_ENABLED=0 HOME="$cache/work/home" \
      make WHAT=cmd/kube-apiserver >&2) || die "building kube-apiserver failed (see the output above)"
  built="$src_root/_output/local/bin/linux/amd64/kube-apiserver"
  [ -x "$built" ] || built="$(find "$src_root/_output" -type f -name kube-apiserver | head -n1)"
  [ -x "$built" ] || die "the build finished but produced no kube-apiserver binary"
  cp -f "$built" "$bin/kube-apiserver.tmp" && mv -f "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
  rm -rf "$cache/work/src" "$cache/work/home"
fi
log "kube-apiserver: $("$bin/kube-apiserver" --version)"
echo "$bin"
