#!/usr/bin/env bash
# `make up` runs this first: is this machine able to build and run the stack?
# Checks the Docker Engine, Compose >= 2.24, buildx >= 0.17, free disk where
# Docker keeps its data, and that the ports the stack publishes are free
# (skipped when the stack already runs: then they are its own). Prints one
# line per check and, for each problem, what to install or do. Exit 1 on any
# problem, so nothing starts half-way.
#   usage: preflight.sh PORT...
set -uo pipefail

MIN_ENGINE="24.0"
MIN_COMPOSE="2.24"
MIN_BUILDX="0.17"
MIN_FREE_GB="${PREFLIGHT_MIN_FREE_GB:-10}"
PROJECT="${COMPOSE_PROJECT_NAME:-forestops}"
problems=0

ok() { printf 'ok    %s\n' "$1"; }
problem() {
    printf 'FAIL  %s\n      fix: %s\n' "$1" "$2"
    problems=$((problems + 1))
}
# version_ge A B: A >= B, comparing dotted versions.
version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}
# The first dotted version in the text (without a leading v).
first_version() {
    grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' <<<"$1" | head -n 1
}

if ! command -v docker >/dev/null 2>&1; then
    problem "docker is not installed" \
        "install Docker Engine ${MIN_ENGINE}+ with the Compose and buildx plugins (Debian/Ubuntu: Docker's packages docker-ce docker-compose-plugin docker-buildx-plugin)"
    exit 1
fi

if engine=$(docker version --format '{{.Server.Version}}' 2>/dev/null) && [ -n "$engine" ]; then
    if version_ge "$(first_version "$engine")" "$MIN_ENGINE"; then
        ok "Docker Engine $engine"
    else
        problem "Docker Engine $engine is older than $MIN_ENGINE" "upgrade Docker Engine (package docker-ce)"
    fi
else
    problem "the Docker daemon does not answer" \
        "start it (sudo systemctl start docker) and make sure you may use it (sudo usermod -aG docker \$USER, then log in again)"
fi

compose=$(docker compose version --short 2>/dev/null || true)
if [ -z "$compose" ]; then
    problem "the Compose plugin is missing" "install Compose ${MIN_COMPOSE}+ (package docker-compose-plugin)"
elif version_ge "$(first_version "$compose")" "$MIN_COMPOSE"; then
    ok "Compose $compose"
else
    problem "Compose $compose is older than $MIN_COMPOSE" "upgrade Compose (package docker-compose-plugin)"
fi

buildx=$(docker buildx version 2>/dev/null || true)
buildx_version=$(first_version "${buildx#* }")
if [ -z "$buildx_version" ]; then
    problem "the buildx plugin is missing" "install buildx ${MIN_BUILDX}+ (package docker-buildx-plugin)"
elif version_ge "$buildx_version" "$MIN_BUILDX"; then
    ok "buildx $buildx_version"
else
    problem "buildx $buildx_version is older than $MIN_BUILDX" "upgrade buildx (package docker-buildx-plugin)"
fi

root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || true)
[ -d "$root" ] || root=.
free_kb=$(df -Pk "$root" | awk 'NR == 2 {print $4}')
if [ -n "$free_kb" ] && [ "$free_kb" -ge $((MIN_FREE_GB * 1024 * 1024)) ]; then
    ok "$((free_kb / 1024 / 1024)) GB free for Docker ($root)"
else
    problem "only $((${free_kb:-0} / 1024 / 1024)) GB free for Docker ($root); the images and data need ${MIN_FREE_GB} GB" \
        "free disk space (docker system prune removes unused images) or grow the disk"
fi

if [ -n "$(docker compose -p "$PROJECT" ps --quiet 2>/dev/null)" ]; then
    ok "ports: the stack already runs and holds them"
else
    busy=0
    for port in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            problem "port $port is already in use" \
                "stop what listens there (sudo ss -ltnp 'sport = :$port' shows it; a local stack stops with make down)"
            busy=$((busy + 1))
        fi
    done
    [ "$#" -eq 0 ] || [ "$busy" -gt 0 ] || ok "ports $* are free"
fi

if [ "$problems" -gt 0 ]; then
    echo "preflight: $problems problem(s); fix them, then run make up again" >&2
    exit 1
fi
echo "preflight: this machine can run the stack"
