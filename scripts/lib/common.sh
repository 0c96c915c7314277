# Shared by scripts/run and scripts/test: install what a fresh machine lacks.
# Sourced, not executed.

# Debian packages the build and the tests need. cmake: the opus crate builds libopus
# from source with it; pkg-config: -sys crates find system libraries with it; ffmpeg
# and espeak-ng: audio/ tests make their fixtures (and compare durations) with them.
DORAN_APT_PACKAGES=(cmake pkg-config build-essential ffmpeg espeak-ng)

# Each line carries the seconds since the script started, so a CI log shows where the
# time went.
log() { printf '\033[1m==> [%5ss] %s\033[0m\n' "$SECONDS" "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
    local missing=()
    for p in "${DORAN_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

install_rust_tools() {
    if ! command -v cargo >/dev/null; then
        echo "cargo is missing: install Rust (rustup) first" >&2
        exit 1
    fi
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true
    if ! cargo nextest --version >/dev/null 2>&1; then
        log "installing cargo-nextest"
        cargo install cargo-nextest --locked
    fi
}

install_deps() {
    install_apt_packages
    install_rust_tools
}
