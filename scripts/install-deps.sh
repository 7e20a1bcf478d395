#!/bin/sh
# Installs what zkprom's tests and demo need on a Debian machine, if missing:
# ZooKeeper and Prometheus from Debian's packages, and a Java runtime.
set -eu
need=""
[ -f /usr/share/java/zookeeper.jar ] || need="$need zookeeper"
command -v prometheus >/dev/null 2>&1 || need="$need prometheus"
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v java >/dev/null 2>&1 || need="$need default-jre-headless"
[ -n "$need" ] || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$need"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
