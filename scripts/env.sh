# Shared by scripts/* and .ci/run: one build cache outside the checkout, and
# the system packages the workspace needs.

# Reuse one target directory across checkouts and runs (CI clones afresh).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strand/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Debian packages the build needs: the desktop app (Slint) finds fonts
# with fontconfig, and fonts-dejavu-core gives its headless renderer
# (tests, screenshots) the same fonts on every machine. iptables puts the
# relay tests' network namespaces behind NAT (hole punching). The BLE transport
# talks to BlueZ over D-Bus (bluer and btleplug link libdbus). systemd gives
# the service test `systemd-analyze verify`. dbus-daemon gives the notification
# test a private bus, and gnome-keyring the desktop keyring test a Secret Service.
# The simulator's plan test runs its jobs under GNU parallel.
STRAND_SYSTEM_PACKAGES=(pkg-config libfontconfig1-dev fonts-dejavu-core iptables libdbus-1-dev systemd dbus-daemon gnome-keyring parallel)

# Whether Debian package $1 is installed: for this machine's architecture
# (or architecture-independent) unless it names one (`libdbus-1-dev:arm64`).
# With arm64 added for phone builds, `dpkg-query -W libdbus-1-dev` would
# also answer for the arm64 package alone.
package_installed() {
    local p=$1 native
    case "$p" in
        *:*) dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ;;
        *)
            native=$(dpkg --print-architecture)
            dpkg-query -W -f='${Status} ${Architecture}\n' "$p" 2>/dev/null \
                | grep -Eq "install ok installed ($native|all)$"
            ;;
    esac
}

# Installs the packages named (by default STRAND_SYSTEM_PACKAGES) that are
# missing, from Debian's archive.
ensure_system_packages() {
    local missing=()
    local wanted=("$@")
    [ "${#wanted[@]}" -gt 0 ] || wanted=("${STRAND_SYSTEM_PACKAGES[@]}")
    for p in "${wanted[@]}"; do
        package_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing system packages: ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

# A script's scratch directory, removed on exit. Processes still using
# it go first: those named (daemons the script started) and any whose
# working directory or root lies under it (a scheduler's job, a chroot's
# daemon), asked to stop, then killed after 10 s, since one still writing
# makes rm fail with "Directory not empty". The directory is then
# removed, unless a file system is still mounted under it (rm would go
# into a bind mount of the same file system, --one-file-system or not).
# One that cannot go is reported, not failed on: the script's own work
# has passed or failed by then.
remove_scratch() {
    local dir p q at alive
    dir=$(realpath -m "$1")
    shift
    local pids=("$@")
    for q in /proc/[0-9]*; do
        p=${q#/proc/}
        [ "$p" = "$$" ] && continue
        for at in "$(readlink "$q/cwd" 2>/dev/null)" "$(readlink "$q/root" 2>/dev/null)"; do
            case "$at" in
                "$dir" | "$dir"/*) pids+=("$p") && break ;;
            esac
        done
    done
    if ((${#pids[@]})); then
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for _ in $(seq 1 100); do
            alive=0
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
            ((alive)) || break
            sleep 0.1
        done
        if ((alive)); then
            for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
            sleep 1
        fi
    fi
    if awk -v d="$dir/" 'index($5, d) == 1 { m = 1 } END { exit !m }' /proc/self/mountinfo; then
        echo "$(basename "$0"): $dir still has a file system mounted under it: left in place" >&2
        return 0
    fi
    rm -rf --one-file-system "$dir" 2>/dev/null \
        || { sleep 1; rm -rf --one-file-system "$dir" 2>/dev/null; } \
        || echo "$(basename "$0"): could not remove $dir" >&2
}

# Makes room for a build: with less than $1 GiB (default 30) free where
# the target directory lives, its incremental caches go first (a build
# with CARGO_INCREMENTAL=0 never reads them), then, if that is not
# enough, the whole cache (it is only a cache: the build starts over).
# A cache is only removed if cargo marked it as one (CACHEDIR.TAG).
make_room() {
    local need=${1:-30} at
    free_gib() {
        at=$CARGO_TARGET_DIR
        while [ ! -d "$at" ]; do at=$(dirname "$at"); done
        df -Pk "$at" | awk 'NR == 2 { print int($4 / 1048576) }'
    }
    [ "$(free_gib)" -ge "$need" ] && return 0
    [ -f "$CARGO_TARGET_DIR/CACHEDIR.TAG" ] || {
        echo "only $(free_gib) GiB free for $CARGO_TARGET_DIR (not a cargo cache: left alone)" >&2
        return 0
    }
    echo "only $(free_gib) GiB free: removing incremental caches in $CARGO_TARGET_DIR" >&2
    rm -rf "$CARGO_TARGET_DIR"/*/incremental
    [ "$(free_gib)" -ge "$need" ] && return 0
    echo "only $(free_gib) GiB free: removing the build cache $CARGO_TARGET_DIR" >&2
    rm -rf --one-file-system "$CARGO_TARGET_DIR"
    echo "$(free_gib) GiB free" >&2
}
