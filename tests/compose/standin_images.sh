#!/usr/bin/env bash
# Test support only: build local stand-ins for the registry images that compose.yaml and our
# Dockerfiles name, on machines where no image registry is reachable (this CI). Each tag is
# tried with `docker pull` first and built only when the pull fails; an existing tag is kept,
# so the (slow) build happens once per machine. The shipped Dockerfiles stay standard.
#
# Stand-ins: debian:bookworm-slim (debootstrap minbase), python:3.11-slim-bookworm (Debian's
# python3 3.11 laid out like the official image: python/pip in /usr/local/bin, no
# EXTERNALLY-MANAGED marker), redis:7-bookworm (Debian's redis-server 7.0, user redis 999:999,
# /data owned by it). Every stand-in trusts the CA bundle in $SSL_CERT_FILE, so pip and apt
# inside builds pass through this machine's HTTPS proxy the way the host does.
set -euo pipefail

ROOTFS_TAG=onionpost-standin/bookworm-rootfs:latest
WORK=${STANDIN_WORKDIR:-/var/tmp/onionpost-standin}
CA_BUNDLE=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}

log() { echo "standin: $*" >&2; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

pulled() { timeout 60 docker pull --quiet "$1" >/dev/null 2>&1; }

# The Debian mirror apt uses here (first non-security "debian" URI in apt's sources).
debian_mirror() {
    local uri
    uri=$(grep -hoE '^(URIs:|deb)[[:space:]]+[^[:space:]]+' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# Host-side pip settings that reach the network (index URLs, proxies) carried into builds.
pip_env_lines() {
    local var value
    for var in PIP_INDEX_URL HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
        value=${!var:-}
        [ -n "$value" ] && echo "ENV $var=$value"
    done
    value=$(pip config get global.index-url 2>/dev/null || true)
    if [ -n "$value" ] && [ -z "${PIP_INDEX_URL:-}" ]; then echo "ENV PIP_INDEX_URL=$value"; fi
    return 0
}

build_rootfs() {
    have_image "$ROOTFS_TAG" && return 0
    local mirror dir
    mirror=$(debian_mirror)
    dir="$WORK/rootfs"
    rm -rf "$dir" && mkdir -p "$dir"
    log "debootstrap bookworm from $mirror (a few minutes, once per machine)"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; return 1; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
        "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* \
        "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
    tar -C "$dir" -c . | docker import - "$ROOTFS_TAG" >/dev/null
    rm -rf "$dir"
}

# Build context in a temp dir: Dockerfile on stdin-like string plus the CA bundle.
build_tag() {
    local tag=$1 dockerfile=$2 ctx
    ctx=$(mktemp -d "$WORK/ctx.XXXXXX")
    cp "$CA_BUNDLE" "$ctx/host-ca.crt"
    printf '%s\n' "$dockerfile" >"$ctx/Dockerfile"
    log "building stand-in $tag"
    docker build --quiet --tag "$tag" "$ctx" >/dev/null
    rm -rf "$ctx"
}

debian_slim() {
    local mirror
    mirror=$(debian_mirror)
    build_tag debian:bookworm-slim "FROM $ROOTFS_TAG
RUN printf 'Types: deb\nURIs: $mirror\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: ${mirror%/debian*}/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > /etc/apt/sources.list.d/debian.sources \\
 && rm -f /etc/apt/sources.list \\
 && printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\n' > /etc/dpkg/dpkg.cfg.d/docker \\
 && printf 'APT::Install-Recommends \"false\";\n' > /etc/apt/apt.conf.d/docker-no-recommends \\
 && printf 'DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true\"; };\nAPT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true\"; };\nDir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n' > /etc/apt/apt.conf.d/docker-clean
COPY host-ca.crt /usr/local/share/ca-certificates/onionpost-host-ca.crt
RUN apt-get update && apt-get install -y ca-certificates \\
 && update-ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*
CMD [\"bash\"]"
}

python_slim() {
    build_tag python:3.11-slim-bookworm "FROM debian:bookworm-slim
$(pip_env_lines)
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update && apt-get install -y python3 python3-venv python3-pip \\
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3 /usr/local/bin/python \\
 && ln -s /usr/bin/python3 /usr/local/bin/python3 \\
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
CMD [\"python3\"]"
}

redis_bookworm() {
    build_tag redis:7-bookworm "FROM debian:bookworm-slim
RUN groupadd -r -g 999 redis && useradd -r -g redis -u 999 -d /data redis \\
 && apt-get update && apt-get install -y redis-server \\
 && rm -rf /var/lib/apt/lists/* && mkdir /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
EXPOSE 6379
CMD [\"redis-server\"]"
}

ensure() {
    local tag=$1 builder=$2
    have_image "$tag" && { log "$tag present"; return 0; }
    pulled "$tag" && { log "$tag pulled"; return 0; }
    build_rootfs
    "$builder"
}

main() {
    mkdir -p "$WORK"
    ensure debian:bookworm-slim debian_slim
    ensure python:3.11-slim-bookworm python_slim
    ensure redis:7-bookworm redis_bookworm
}

main "$@"
