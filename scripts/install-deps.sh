#!/bin/sh
# Installs what zkprom's tests and demo need on a Debian machine, if missing:
# ZooKeeper, Prometheus 2.42 and Alertmanager from Debian's packages, a JDK,
# Apache Curator and Chromium; and the current Prometheus 3.x, built from
# source (see below).
set -eu
need=""
# The server's classpath also needs the servlet API (AdminServer), an slf4j
# binding and netty (TLS): see internal/zktest.
for pair in zookeeper.jar:zookeeper servlet-api.jar:libservlet-api-java \
            slf4j-simple.jar:libslf4j-java netty-codec.jar:libnetty-java; do
  [ -f "/usr/share/java/${pair%%:*}" ] || need="$need ${pair#*:}"
done
# Debian's prometheus package has both prometheus and promtool.
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need="$need prometheus"
# The demo's Alertmanager.
command -v prometheus-alertmanager >/dev/null 2>&1 || need="$need prometheus-alertmanager"
# A JDK (the Curator interop test runs a single-file Java program) and
# Apache Curator's service discovery, the real client zkprom must work with.
command -v javac >/dev/null 2>&1 || need="$need default-jdk-headless"
[ -f /usr/share/java/curator-x-discovery.jar ] || need="$need libcurator-discovery-java"
# Headless Chromium: the status pages' tests look at them in a browser.
command -v chromium >/dev/null 2>&1 || need="$need chromium"
# The package test checks the units with systemd-analyze (a Debian machine
# has it; a container may not). dpkg-deb is part of dpkg, always there.
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
if [ -n "$need" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing:$need"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
fi

# The demo runs Debian's Prometheus only.
[ "${1:-}" = "--no-prometheus3" ] && exit 0

# Prometheus 3.x: Debian 12 packages only 2.42, so the version pinned in
# scripts/prometheus-version (a module version: v0.316.0 is Prometheus
# 3.16.0) is built from source with go install, once per machine, into
# $(go env GOPATH)/zkprom/prometheus-<version>/, where the test harness
# (internal/zktest) looks for it. The version is stamped into the binaries
# (go install alone leaves it empty in --version and the buildinfo API).
GO="${GO:-go}"
mod=$(cat "$(dirname "$0")/prometheus-version")
gopath=$("$GO" env GOPATH)
dir="${gopath%%:*}/zkprom/prometheus-$mod"
minor=${mod#v0.}; minor=${minor%%.*}
version="$((minor / 100)).$((minor % 100)).${mod##*.}"
stamped() { [ -x "$dir/$1" ] && "$dir/$1" --version 2>&1 | head -n 1 | grep -q "version $version "; }
stamped prometheus && stamped promtool && exit 0
echo "building Prometheus $version (module github.com/prometheus/prometheus@$mod) from source into $dir:"
echo "  Debian has no Prometheus 3.x, and the tests run against both 2.42 and 3.x. Compiling it and its"
echo "  dependencies takes 10-25 minutes on 2 cores, once per machine (cached after)."
GOBIN="$dir" "$GO" install -ldflags "-X github.com/prometheus/common/version.Version=$version" \
  "github.com/prometheus/prometheus/cmd/prometheus@$mod" "github.com/prometheus/prometheus/cmd/promtool@$mod"
