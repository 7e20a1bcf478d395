#!/bin/sh
# Installs what zkprom's tests and demo need on a Debian machine, if missing:
# ZooKeeper, Prometheus and Alertmanager from Debian's packages, a JDK,
# Apache Curator and Chromium.
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
[ -n "$need" ] || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$need"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
