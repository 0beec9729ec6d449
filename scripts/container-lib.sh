# shellcheck shell=bash
# Shared by scripts/container-test and scripts/fresh-test (sourced, not run): find a container
# engine that can run containers, and the base image the Dockerfile starts from.
#
#   find_engine          sets ENGINE (docker|podman) and ENGINE_VERSION; 1 = none can run (SKIP_REASON says why)
#   ensure_base_image    makes sure $BASE_IMAGE is there (pulls it, or builds the local stand-in)
#   engine_build SECS ARGS..  `build` with what the engine needs here, bounded in time
#
# Machines of this project's workplace keep helper scripts next to the repository in
# ../shared/scripts/container/ (engine-setup: rootful podman with the settings these machines need;
# base-image: a registry-free stand-in for python:3.11-slim). They are used when present and only
# then; elsewhere the engine is used as it is, and the base image is pulled from its registry.

LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_CONTAINER=${SHARED_CONTAINER:-$LIB_ROOT/../shared/scripts/container}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
ENGINE=""
ENGINE_VERSION=""
ENGINE_NOTE=""
SKIP_REASON=""

# now: seconds since the epoch with fractions; since T0: seconds elapsed, one decimal
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

find_engine() {
    local out log
    ENGINE="" ENGINE_NOTE="" SKIP_REASON=""
    # A `docker` that is podman's docker shim is podman: use it by its own name.
    if command -v docker >/dev/null 2>&1 && ! docker --version 2>/dev/null | grep -qi podman; then
        if timeout 15 docker info >/dev/null 2>&1; then
            ENGINE=docker
            ENGINE_VERSION=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo "?")
            return 0
        fi
        SKIP_REASON="docker: no daemon answers ('docker info' failed)"
    fi
    if [[ -x $SHARED_CONTAINER/engine-setup && -z ${CONTAINERS_CONF:-} ]]; then
        log=${TMPDIR:-/tmp}/engine-setup.$$.log
        if out=$(timeout 900 "$SHARED_CONTAINER/engine-setup" 2>"$log"); then
            eval "$out"
            ENGINE_NOTE="set up by $(cd "$SHARED_CONTAINER" && pwd)/engine-setup"
            rm -f "$log"
        else
            SKIP_REASON="${SKIP_REASON:+$SKIP_REASON; }engine-setup failed (log: $log)"
        fi
    fi
    if command -v podman >/dev/null 2>&1; then
        if timeout 30 podman info >/dev/null 2>&1; then
            ENGINE=podman
            ENGINE_VERSION=$(podman version --format '{{.Client.Version}}' 2>/dev/null || echo "?")
            return 0
        fi
        SKIP_REASON="${SKIP_REASON:+$SKIP_REASON; }podman: 'podman info' failed"
    fi
    [[ -n $SKIP_REASON ]] || SKIP_REASON="neither docker nor podman is installed"
    return 1
}

# The image reference as the engine stores it (podman keeps short names fully qualified).
base_ref() {
    if [[ $ENGINE == podman && $BASE_IMAGE != */* ]]; then
        printf 'docker.io/library/%s' "$BASE_IMAGE"
    else
        printf '%s' "$BASE_IMAGE"
    fi
}

# 0 = the base image is there (BASE_NOTE says how); 1 = it could not be had (BASE_NOTE says why).
BASE_NOTE=""
ensure_base_image() {
    local ref log
    ref=$(base_ref)
    if "$ENGINE" image inspect "$ref" >/dev/null 2>&1; then
        BASE_NOTE="$ref present"
        return 0
    fi
    log=${TMPDIR:-/tmp}/base-image.$$.log
    if [[ $ENGINE == podman && -x $SHARED_CONTAINER/base-image ]]; then
        if TAG=$ref timeout 1200 "$SHARED_CONTAINER/base-image" >"$log" 2>&1; then
            BASE_NOTE="$ref built by $(cd "$SHARED_CONTAINER" && pwd)/base-image (a local stand-in, no registry)"
            rm -f "$log"
            return 0
        fi
        BASE_NOTE="base-image failed (log: $log)"
        return 1
    fi
    if timeout 600 "$ENGINE" pull "$ref" >"$log" 2>&1; then
        BASE_NOTE="$ref pulled"
        rm -f "$log"
        return 0
    fi
    BASE_NOTE="$ref is not here and could not be pulled (log: $log)"
    return 1
}

# engine_build SECONDS ARGS... : `build` as each engine needs it here. podman: --format docker (the OCI
# format drops HEALTHCHECK and STOPSIGNAL), host network (no bridge needed for pip), and the base
# image as ensure_base_image left it (never pulled: there may be no registry).
engine_build() {
    local secs=$1
    shift
    if [[ $ENGINE == podman ]]; then
        timeout "$secs" podman build --format docker --network host --pull=never "$@"
    else
        timeout "$secs" docker build "$@"
    fi
}
