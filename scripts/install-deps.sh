#!/usr/bin/env bash
# Installs what shoal needs to build and test on Debian: libzmq and SQLite
# headers, git, and the validators the tests run over generated files (and,
# with --test, promtool, Chromium and curl).
# Idempotent: installs only what is missing.
set -euo pipefail

need_apt=()
pkg-config --exists libzmq 2>/dev/null || need_apt+=(libzmq3-dev)
pkg-config --exists libsodium 2>/dev/null || need_apt+=(libsodium-dev)  # the lean agent's digests and sealing
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
[ -f /usr/include/sqlite3.h ] || need_apt+=(libsqlite3-dev)
command -v git >/dev/null 2>&1 || need_apt+=(git)
if [ "${1:-}" = "--test" ]; then
    command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
    command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
    # The container and lab-host tests: podman with runc (daemonless), a Debian root file system for the image,
    # network namespaces, and systemd-analyze for the unit files.
    command -v podman >/dev/null 2>&1 || need_apt+=(podman)
    command -v runc >/dev/null 2>&1 || need_apt+=(runc)
    command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
    command -v newuidmap >/dev/null 2>&1 || need_apt+=(uidmap)
    command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
    command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
    command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
    # The run report is rendered in headless Chromium; the metrics endpoint is fetched with curl.
    command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
    command -v curl >/dev/null 2>&1 || need_apt+=(curl)
    # The live view's test runs `shoal create` on a terminal.
    command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # The prometheus package starts a server; the tests only need promtool.
    if [[ " ${need_apt[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
        $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

if [ "${1:-}" = "--test" ]; then
    missing_py=()
    python3 -c "import yamllint" 2>/dev/null || missing_py+=(yamllint)
    python3 -c "import jsonschema" 2>/dev/null || missing_py+=(jsonschema)
    python3 -c "import kubernetes_validate" 2>/dev/null || missing_py+=(kubernetes-validate)
    # Debian's podman-compose (1.0.3) predates `!reset`, --in-pod and depends_on conditions.
    command -v podman-compose >/dev/null 2>&1 || missing_py+=("podman-compose>=1.1")
    if [ ${#missing_py[@]} -gt 0 ]; then
        echo "installing (pip): ${missing_py[*]}"
        python3 -m pip install --quiet --disable-pip-version-check "${missing_py[@]}" \
            || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${missing_py[@]}"
    fi
fi

command -v terraform >/dev/null 2>&1 || echo "note: terraform is not installed; demo mode skips terraform init/validate/plan"
command -v kubectl >/dev/null 2>&1 || echo "note: kubectl is not installed; needed for real deployments only"
